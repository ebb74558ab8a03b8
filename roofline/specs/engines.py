"""Serving-engine files (`engines/*.json`: vllm, trtllm, sglang, and older versions of an engine whose defaults
differ: vllm-v0, sglang-0.4.6) loaded into a frozen, validated `EngineSpec`.

An engine file says how a serving engine uses a GPU, each figure `{"value", "source", "note"}` like a GPU spec
file's, its `source` a key of the file's `sources` table (text with the URL and what it says):

- `kv_cache_rule`: how the KV cache is sized. "total_fraction" (vLLM's gpu_memory_utilization: fraction x
  total memory - weights - activations - runtime), "free_fraction" (TensorRT-LLM's free_gpu_memory_fraction:
  fraction x (total - weights - activations - runtime)), "static_fraction" (SGLang's mem_fraction_static:
  fraction x total - weights - runtime; activations and CUDA graphs live in the 1 - fraction reserve).
- `kv_cache_fraction`: the fraction, or "auto" where the engine computes it per deployment: its tiers (below,
  by GPU memory and tensor-parallel size) where one applies, and where the value in effect is "auto", 1 -
  reserve / total (SGLang), reserve = `reserve_base_bytes` + `reserve_per_chunk_token_bytes` x max(chunk,
  2048) + `reserve_per_graph_batch_bytes` x `cuda_graph_max_batch` + `reserve_per_gpu_bytes` x tp x pp, at
  least `reserve_floor_bytes`.
- `max_seqs`, `max_batched_tokens`: sequences and tokens in one step; `chunked_prefill`; `page_tokens` (KV
  block size); `cuda_graphs`, `cuda_graph_max_batch` (the largest decode batch replayed from a graph);
  `prefill_launch` ("graph", "piecewise" or "eager"); `schedule` ("mixed": decode and prefill share a step,
  "prefill_first": a step is all prefill while prompts wait); `scheduling_policy`; `preemption`
  ("recompute", "swap" or "none": prompt + output reserved at admission); `prefix_caching`.
- `admission` (optional): how a request is admitted to the KV cache. "reserve_all" (prompt + output reserved,
  the only rule with `preemption` "none"), "optimistic" (pages for the prompt; decodes take pages as they go
  and preempt when the cache runs out), "reserve_ratio" (SGLang's PrefillAdder: the free tokens minus, for each
  running request, new_token_ratio x min(max_new_tokens - generated, clip) must exceed the candidate's
  prompt + min(max_new_tokens, clip) + a page). Absent: "reserve_all" where `preemption` is "none", else
  "optimistic". "reserve_ratio" needs the ratio's figures, and only it takes them:
  `schedule_conservativeness` (a number >= 0), `new_token_ratio_init` (x conservativeness, at most 1, the
  ratio at start and whenever the engine is idle), `new_token_ratio_min_factor` (the floor = init x factor),
  `new_token_ratio_decay_steps` (decode steps from init down to the floor, linearly), `new_token_clip_tokens`
  (the clip on a request's estimated output), `retract_decode_steps` (after a retraction the ratio becomes
  (tokens the remaining decodes generated + this x their count) / (their max_new_tokens + 1), at most 1).
- `eager_launch_s`: host cost of one kernel launched outside a CUDA graph (on top of the per-kernel gap of
  roofline.model.efficiency); `step_overhead_s`: host work per step the GPU waits for (scheduling, input
  preparation, output processing; 0 where the engine overlaps it). roofline.model.phases applies both.

A numeric figure may carry `tiers`: `[{"min_memory_bytes", "value", "except_gpus"?}]`, GPU-dependent defaults
(vLLM's larger batches on >= 70 GiB GPUs other than the A100); the last tier whose memory the GPU reaches, and
whose `except_gpus` (substrings of the GPU's name) it does not match, replaces the value (`EngineSpec.value`).
The tiers of `kv_cache_fraction` may also carry `min_tp` (the tier applies from that tensor-parallel size
on: SGLang 0.4.6's mem_fraction_static by TP size); no other figure may, as only the fraction is resolved
with the deployment's tp.

`versions` (optional) says which releases of which built-in engine a file describes: `{"engine", "from",
"before"?, "source"}`, `from` included, `before` excluded (absent: and later), each a version number such as
"0.4.6" or "0.4.6.post2" (`parse_version`). `engine_release(name, version_text)` picks, among the built-in
files, the one of engine `name` whose range contains the version; the engine's own file (`name`.json) where
none does or the text names no version. A bad file is one RooflineError naming the file and the field.
"""
from __future__ import annotations

import difflib
import importlib.resources
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from roofline.errors import RooflineError
from roofline.jsonfile import read_text
from roofline.units import MAX_COUNT
from roofline.specs.hardware import GPUSpec, _check_fields, _fail, _is_number, _parse_json, _parse_sources

SCHEMA_VERSION = 1
EXAMPLE_FILE = "engines/vllm.json"
#: the engine a command or a Python API call uses when none is named
DEFAULT_ENGINE = "vllm"

KV_RULES = ("total_fraction", "free_fraction", "static_fraction")
PREFILL_LAUNCHES = ("graph", "piecewise", "eager")
SCHEDULES = ("mixed", "prefill_first")
POLICIES = ("fcfs", "priority", "lpm")
PREEMPTIONS = ("recompute", "swap", "none")
#: which running request a full KV cache preempts: the most recently admitted (vLLM), or the decoding one with
#: the fewest generated tokens, ties to the longest prompt (SGLang's retract_decode)
PREEMPTION_VICTIMS = ("last_admitted", "fewest_generated")
#: how a request is admitted to the KV cache (module docstring, `admission`)
ADMISSIONS = ("optimistic", "reserve_all", "reserve_ratio")

# figure -> kind; "int" a positive whole number up to MAX_COUNT, "bytes" a number >= 0, a tuple: one of those strings
_FIGURES: dict[str, Any] = {
    "kv_cache_rule": KV_RULES,
    "kv_cache_fraction": "fraction-or-auto",
    "max_seqs": "int",
    "max_batched_tokens": "int",
    "chunked_prefill": "bool",
    "page_tokens": "int",
    "cuda_graphs": "bool",
    "cuda_graph_max_batch": "int",
    "cuda_graph_batch_per_seq": "int",  # captured graph batch = min(max, this x max_seqs, max_batched_tokens)
    "prefill_launch": PREFILL_LAUNCHES,
    "schedule": SCHEDULES,
    "scheduling_policy": POLICIES,
    "preemption": PREEMPTIONS,
    "preemption_victim": PREEMPTION_VICTIMS,
    "prefix_caching": "bool",
    "eager_launch_s": "seconds",
    "step_overhead_s": "seconds",
}
_RESERVE = ("reserve_base_bytes", "reserve_per_chunk_token_bytes", "reserve_per_graph_batch_bytes",
            "reserve_per_gpu_bytes", "reserve_floor_bytes")
#: the figures of "reserve_ratio" admission (SGLang's new_token_ratio), each required by it and only by it
_RATIO: dict[str, str] = {
    "schedule_conservativeness": "number",
    "new_token_ratio_init": "fraction",
    "new_token_ratio_min_factor": "fraction",
    "new_token_ratio_decay_steps": "int",
    "new_token_clip_tokens": "int",
    "retract_decode_steps": "int",
}
_TEXT = ("name", "display_name", "version", "description")
_REQUIRED = ("schema_version", *_TEXT, "sources", *_FIGURES)
_OPTIONAL = (*_RESERVE, "admission", *_RATIO, "versions")
_EXPECTED = {"int": f"a positive whole number up to {MAX_COUNT:,}", "bytes": "a number >= 0",
             "seconds": "a number of seconds in [0, 1)", "bool": "true or false", "number": "a number >= 0", "fraction": "a number in (0, 1]",
             "fraction-or-auto": 'a number in (0, 1] or "auto"'}


def implied_admission(preemption: str) -> str:
    """The admission rule an engine that names none follows: reserve everything where nothing is ever preempted,
    else optimistic."""
    return "reserve_all" if preemption == "none" else "optimistic"


@dataclass(frozen=True)
class Admission:
    """How an engine admits requests (module docstring, `admission`): `rule`, and for "reserve_ratio" the
    new_token_ratio's start (`ratio_init`), floor (`ratio_min`) and decrease per decode step (`ratio_decay`),
    the clip on a request's estimated output (`clip_tokens`) and the decode steps a retraction assumes each
    remaining request still runs (`retract_decode_steps`)."""

    rule: str = "optimistic"
    ratio_init: float = 0.0
    ratio_min: float = 0.0
    ratio_decay: float = 0.0
    clip_tokens: int = 0
    retract_decode_steps: int = 0


@dataclass(frozen=True)
class Tier:
    """A GPU-dependent default: `value` on GPUs with at least `min_memory_bytes` whose name contains none of
    `except_gpus`."""

    min_memory_bytes: float
    value: Any
    except_gpus: tuple[str, ...] = ()
    min_tp: int = 1

    def applies(self, gpu: GPUSpec, tp: int = 1) -> bool:
        name = f"{gpu.name} {gpu.display_name}".lower()
        return (gpu.memory_bytes >= self.min_memory_bytes and tp >= self.min_tp
                and not any(x.lower() in name for x in self.except_gpus))


#: a release number in free text: "0.4.6", "v0.4.6.post2", "0.7.3"; major.minor[.patch][.postN]
_VERSION = re.compile(r"(?<![\w.])v?(\d+)\.(\d+)(?:\.(\d+))?(?:\.?post(\d+))?")


def parse_version(text: str) -> tuple[int, int, int, int] | None:
    """The first release number in `text` as (major, minor, patch, post), ordered like PEP 440 releases
    (post -1: none, so 0.4.6 < 0.4.6.post0 < 0.4.6.post2 < 0.4.7); None where `text` names none. Pre-release
    and local suffixes are ignored ("0.5.0rc1" -> 0.5.0); a date such as 2025-05-01 is not a version.
    '~0.2.6 (Dec 2023)' -> (0, 2, 6, -1); 'between v0.4.6 and v0.4.6.post2' -> (0, 4, 6, -1)."""
    m = _VERSION.search(text or "")
    if m is None:
        return None
    major, minor, patch, post = m.groups()
    return int(major), int(minor), int(patch or 0), -1 if post is None else int(post)


@dataclass(frozen=True)
class VersionRange:
    """The releases of built-in engine `engine` an engine file describes: from `start` (included) to `stop`
    (excluded; None: and later), as `parse_version` tuples, and the text they were read from."""

    engine: str
    start: tuple[int, int, int, int]
    stop: tuple[int, int, int, int] | None
    text: str

    def contains(self, version: tuple[int, int, int, int]) -> bool:
        return self.start <= version and (self.stop is None or version < self.stop)


@dataclass(frozen=True)
class EngineSpec:
    """One serving engine's defaults (see the module docstring); `value(name, gpu)` resolves tiers."""

    name: str
    display_name: str
    version: str
    description: str
    figures: Mapping[str, Any] = field(hash=False)          # figure -> base value
    tiers: Mapping[str, tuple[Tier, ...]] = field(hash=False)  # figure -> GPU-dependent defaults
    sources: Mapping[str, str] = field(hash=False)          # figure -> provenance text
    path: str = ""
    versions: VersionRange | None = None                     # the releases the file describes

    def value(self, name: str, gpu: GPUSpec | None = None, tp: int = 1) -> Any:
        """The figure's default, on `gpu` at tensor-parallel size `tp` when given (its tiers applied)."""
        v = self.figures[name]
        if gpu is not None:
            for t in self.tiers.get(name, ()):
                if t.applies(gpu, tp):
                    v = t.value
        return v

    def kv_cache_fraction(self, gpu: GPUSpec, tp: int = 1, pp: int = 1, max_batched_tokens: int | None = None,
                          cuda_graph_max_batch: int | None = None) -> float:
        """The default KV-cache fraction on `gpu` at tp (its tiers applied); "auto" (SGLang) is 1 - reserve /
        total memory with the reserve of the module docstring (chunk = `max_batched_tokens`, graph batch =
        `cuda_graph_max_batch`, the engine's defaults on this GPU when None)."""
        f = self.value("kv_cache_fraction", gpu, tp)
        if f != "auto":
            return float(f)
        chunk = self.value("max_batched_tokens", gpu) if max_batched_tokens is None else max_batched_tokens
        graph = self.value("cuda_graph_max_batch", gpu) if cuda_graph_max_batch is None else cuda_graph_max_batch
        reserve = (self.value("reserve_base_bytes", gpu) + self.value("reserve_per_chunk_token_bytes", gpu)
                   * max(chunk, 2048) + self.value("reserve_per_graph_batch_bytes", gpu) * graph
                   + self.value("reserve_per_gpu_bytes", gpu) * tp * pp)
        reserve = max(reserve, self.value("reserve_floor_bytes", gpu))
        return round((gpu.memory_bytes - reserve) / gpu.memory_bytes, 3)

    def admission(self) -> Admission:
        """The admission rule; for "reserve_ratio" SGLang's scheduler arithmetic (scheduler.py): init =
        min(new_token_ratio_init x schedule_conservativeness, 1), floor = min(init x new_token_ratio_min_factor,
        1), decay per decode step = (init - floor) / new_token_ratio_decay_steps."""
        f = self.figures
        rule = f.get("admission") or implied_admission(f["preemption"])
        if rule != "reserve_ratio":
            return Admission(rule)
        init = min(f["new_token_ratio_init"] * f["schedule_conservativeness"], 1.0)
        floor = min(init * f["new_token_ratio_min_factor"], 1.0)
        return Admission(rule, init, floor, (init - floor) / f["new_token_ratio_decay_steps"],
                         f["new_token_clip_tokens"], f["retract_decode_steps"])

    def to_dict(self) -> dict:
        """Base values (before GPU tiers) and sources, JSON-ready."""
        return {"name": self.name, "display_name": self.display_name, "version": self.version,
                **dict(self.figures), "sources": dict(self.sources)}


def engine_release(name: str, version_text: str) -> EngineSpec:
    """The built-in file of engine `name` (as `load_engine` takes it) for the release `version_text` names:
    the file whose `versions` range contains `parse_version(version_text)`, else the engine's own file (also
    when the text names no version). RooflineError for an unknown engine, or two built-in files of the engine
    whose ranges both contain the version."""
    base = load_engine(name)
    version = parse_version(version_text)
    if version is None:
        return base
    found = [s for s in (_load_builtin(n) for n in list_engines())
             if s.versions is not None and s.versions.engine == base.name and s.versions.contains(version)]
    if len(found) > 1:
        raise RooflineError(f"engine files {found[0].path} and {found[1].path}: field 'versions': both contain "
                            f"{name} {'.'.join(map(str, version[:3]))}",
                            hint="the versions ranges of one engine's files must not overlap")
    return found[0] if found else base


def load_engine(name_or_path: str | Path) -> EngineSpec:
    """A built-in engine by name (case-insensitive: vllm, trtllm, sglang, and the aliases of `ALIASES`), or a
    user's engine file by path."""
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith(".json") or "/" in text or "\\" in text:
        return load_engine_file(name_or_path)
    key = ALIASES.get(text.strip().lower(), text.strip().lower())
    files = _builtin_files()
    if key not in files:
        close = difflib.get_close_matches(key, list(files), n=1)
        guess = f"did you mean '{close[0]}'? " if close else ""
        raise RooflineError(f"unknown engine '{text}'", hint=guess + "known engines: " + ", ".join(sorted(files))
                            + "; or give the path of an engine file like " + EXAMPLE_FILE, exit_code=2,
                            param="engine")
    return _load_builtin(key)


#: other names users write for the built-in engines
ALIASES = {"tensorrt-llm": "trtllm", "tensorrt_llm": "trtllm", "trt-llm": "trtllm", "trt": "trtllm"}


def list_engines() -> list[str]:
    """The built-in engines' names, sorted."""
    return sorted(_builtin_files())


def load_engine_file(path: str | Path) -> EngineSpec:
    """An engine file the user names, read by the one validating reader (`jsonfile.read_text`)."""
    p = Path(path).expanduser()
    return parse_engine(read_text(p, "engine file", EXAMPLE_FILE), str(p.resolve()))


def _builtin_dir():
    """The packaged `roofline.engines` folder, or the source tree's `engines/` when not installed."""
    try:
        return importlib.resources.files("roofline.engines")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent.parent / "engines"


@lru_cache(maxsize=None)
def _builtin_files() -> dict[str, Any]:
    return {f.name[: -len(".json")]: f for f in _builtin_dir().iterdir() if f.name.endswith(".json")}


@lru_cache(maxsize=None)
def _load_builtin(name: str) -> EngineSpec:
    file = _builtin_files()[name]
    spec = parse_engine(file.read_text(encoding="utf-8"), str(file))
    if spec.name != name:
        raise RooflineError(f"{file}: field 'name': expected {name!r} (the file name), found {spec.name!r}",
                            hint="a built-in engine file must be named <name>.json")
    return spec


def parse_engine(text: str, where: str) -> EngineSpec:
    """Parse and validate an engine file's JSON text; `where` (the file) and the field name every error."""
    data = _parse_json(text, where)
    _check_fields(data, where, _REQUIRED, _OPTIONAL, EXAMPLE_FILE)
    if data["schema_version"] != SCHEMA_VERSION:
        raise _fail(where, "schema_version", str(SCHEMA_VERSION), data["schema_version"], EXAMPLE_FILE)
    for name in _TEXT:
        if not (isinstance(data[name], str) and data[name].strip()):
            raise _fail(where, name, "a non-empty string", data[name], EXAMPLE_FILE)
    sources = _parse_sources(data["sources"], where, EXAMPLE_FILE)
    figures, tiers, provenance = {}, {}, {}
    kinds = {**_FIGURES, **{r: "bytes" for r in _RESERVE}, "admission": ADMISSIONS, **_RATIO}
    for name, kind in kinds.items():
        if name not in data:
            continue
        figures[name], tiers[name], provenance[name] = _parse_engine_figure(data[name], name, kind, sources, where)
    if "auto" in (figures["kv_cache_fraction"], *(t.value for t in tiers["kv_cache_fraction"])):
        missing = [r for r in _RESERVE if r not in figures]
        if missing:
            raise RooflineError(f"{where}: missing field '{missing[0]}'",
                                hint='a "kv_cache_fraction" of "auto" is computed from the reserve_* fields; '
                                     "engines/sglang.json is a complete example")
    _check_admission(figures, where)
    versions = _parse_versions(data["versions"], sources, where) if "versions" in data else None
    return EngineSpec(data["name"], data["display_name"], data["version"], data["description"], figures, tiers,
                      provenance, where, versions)


def _parse_versions(raw: Any, sources: dict[str, str], where: str) -> VersionRange:
    """The `versions` object: {"engine", "from", "before"?, "source"}, `before` after `from`."""
    shape = '{"engine": <built-in engine>, "from": "<version>", "before"?: "<version>", "source": <key in sources>}'
    if not (isinstance(raw, dict) and {"engine", "from", "source"} <= set(raw)
            and set(raw) <= {"engine", "from", "before", "source"}):
        raise _fail(where, "versions", shape, raw, EXAMPLE_FILE)
    if not (isinstance(raw["engine"], str) and raw["engine"].strip()):
        raise _fail(where, "versions.engine", "a non-empty string (the built-in engine's name)", raw["engine"],
                    EXAMPLE_FILE)
    bounds = {}
    for key in ("from", "before"):
        if key in raw:
            v = parse_version(raw[key]) if isinstance(raw[key], str) else None
            if v is None:
                raise _fail(where, f"versions.{key}", 'a version number such as "0.4.6" or "0.4.6.post2"', raw[key],
                            EXAMPLE_FILE)
            bounds[key] = v
    if "before" in bounds and bounds["before"] <= bounds["from"]:
        raise _fail(where, "versions.before", f"a version after 'from' ({raw['from']})", raw["before"], EXAMPLE_FILE)
    if not isinstance(raw["source"], str) or raw["source"] not in sources:
        raise _fail(where, "versions.source", f"a key of 'sources' ({', '.join(sources)})", raw["source"],
                    EXAMPLE_FILE)
    text = f"{raw['from']} and later" if "before" not in raw else f"{raw['from']} up to {raw['before']} (excluded)"
    return VersionRange(raw["engine"].strip().lower(), bounds["from"], bounds.get("before"), text)


def _check_admission(figures: dict, where: str) -> None:
    """`admission` agrees with `preemption` ("reserve_all" exactly where nothing is preempted), and the ratio's
    figures are all there under "reserve_ratio" and nowhere else."""
    rule, preemption = figures.get("admission"), figures["preemption"]
    if rule is not None and (rule == "reserve_all") != (preemption == "none"):
        expected = '"reserve_all" (with a "preemption" of "none")' if preemption == "none" else \
            f'"optimistic" or "reserve_ratio" (with a "preemption" of "{preemption}")'
        raise _fail(where, "admission.value", expected, rule, EXAMPLE_FILE)
    for name in _RATIO:
        if rule == "reserve_ratio" and name not in figures:
            raise RooflineError(f"{where}: missing field '{name}'",
                                hint='an "admission" of "reserve_ratio" needs the new_token_ratio figures; '
                                     "engines/sglang.json is a complete example")
        if rule != "reserve_ratio" and name in figures:
            raise _fail(where, name, 'no such field (it belongs with an "admission" of "reserve_ratio")',
                        figures[name], EXAMPLE_FILE)


def _check(x: Any, name: str, kind: Any, where: str) -> Any:
    if isinstance(kind, tuple):
        ok = x in kind
        expected = "one of " + ", ".join(repr(k) for k in kind)
    elif kind == "bool":
        ok, expected = isinstance(x, bool), _EXPECTED[kind]
    elif kind == "fraction-or-auto":
        ok = x == "auto" or (_is_number(x) and 0.0 < x <= 1.0)
        expected = _EXPECTED[kind]
    elif kind == "int":
        ok = _is_number(x) and 1 <= x <= MAX_COUNT and float(x).is_integer()
        expected = _EXPECTED[kind]
    elif kind == "seconds":
        ok, expected = _is_number(x) and 0 <= x < 1, _EXPECTED[kind]
    elif kind == "fraction":
        ok, expected = _is_number(x) and 0.0 < x <= 1.0, _EXPECTED[kind]
    else:
        ok, expected = _is_number(x) and x >= 0, _EXPECTED[kind]
    if not ok:
        raise _fail(where, name, expected, x, EXAMPLE_FILE)
    return int(x) if kind == "int" else x


def _parse_engine_figure(raw: Any, name: str, kind: Any, sources: dict[str, str], where: str):
    """(value, tiers, provenance) of one {"value", "source", "note"?, "tiers"?} entry."""
    if not isinstance(raw, dict):
        raise _fail(where, name, '{"value": <value>, "source": <key in sources>}', raw, EXAMPLE_FILE)
    for key in raw:
        if key not in ("value", "source", "note", "tiers"):
            raise _fail(where, f"{name}.{key}", "only value, source, note, tiers", key, EXAMPLE_FILE)
    for key in ("value", "source"):
        if key not in raw:
            raise RooflineError(f"{where}: missing field '{name}.{key}'", hint=f"add it; {EXAMPLE_FILE} is a complete example")
    value = _check(raw["value"], f"{name}.value", kind, where)
    source, note = raw["source"], raw.get("note")
    if not isinstance(source, str) or source not in sources:
        raise _fail(where, f"{name}.source", f"a key of 'sources' ({', '.join(sources)})", source, EXAMPLE_FILE)
    if note is not None and not (isinstance(note, str) and note.strip()):
        raise _fail(where, f"{name}.note", "a non-empty string", note, EXAMPLE_FILE)
    tiers = []
    raw_tiers = raw.get("tiers", [])
    if raw_tiers and kind not in ("int", "bytes", "fraction-or-auto"):
        raise _fail(where, f"{name}.tiers", "no tiers (only numeric figures have GPU-dependent defaults)", raw_tiers,
                    EXAMPLE_FILE)
    if not isinstance(raw_tiers, list):
        raise _fail(where, f"{name}.tiers", "a list of tiers", raw_tiers, EXAMPLE_FILE)
    for k, t in enumerate(raw_tiers):
        at = f"{name}.tiers[{k}]"
        if not (isinstance(t, dict) and {"min_memory_bytes", "value"} <= set(t)
                and set(t) <= {"min_memory_bytes", "value", "except_gpus", "min_tp"}):
            raise _fail(where, at, '{"min_memory_bytes": <bytes>, "value": <value>, "except_gpus"?: [names], '
                        '"min_tp"?: <tp>}', t, EXAMPLE_FILE)
        if "min_tp" in t and name != "kv_cache_fraction":
            raise _fail(where, f"{at}.min_tp", "no min_tp (only kv_cache_fraction's tiers depend on the "
                        "tensor-parallel size)", t["min_tp"], EXAMPLE_FILE)
        low = _check(t["min_memory_bytes"], f"{at}.min_memory_bytes", "bytes", where)
        if tiers and low < tiers[-1].min_memory_bytes:
            raise _fail(where, f"{at}.min_memory_bytes", "tiers in increasing memory order", low, EXAMPLE_FILE)
        exc = t.get("except_gpus", [])
        if not (isinstance(exc, list) and all(isinstance(e, str) and e.strip() for e in exc)):
            raise _fail(where, f"{at}.except_gpus", "a list of non-empty strings", exc, EXAMPLE_FILE)
        min_tp = _check(t.get("min_tp", 1), f"{at}.min_tp", "int", where)
        tiers.append(Tier(float(low), _check(t["value"], f"{at}.value", kind, where), tuple(exc), min_tp))
    text = f"[{source}] {sources[source]}" + (f"; note: {note}" if note else "")
    return value, tuple(tiers), text
