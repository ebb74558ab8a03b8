"""Collective facts (`roofline/specs/data/collectives.json`) loaded into a frozen, validated `CollectiveFacts`.

The file holds what `roofline.model.comm` needs beyond the GPU spec file: per link kind (`nvlink`, `pcie`,
`network`) the achieved fraction of the per-direction link bandwidth for large messages (nccl-tests ring
busbw / link rate), NCCL's launch latency and per-step latency; NVLink SHARP (NVLS) all-reduce's achieved
algbw fraction, latency and smallest group; the serving engine's custom all-reduce (vLLM: world sizes, the
largest message, the one-shot / two-shot thresholds, the latency of one kernel stage); and the fractions of
all-to-all (DeepEP) and send/recv per link. Every figure is `{"value", "source", "note"}` like a GPU spec
file's, its `source` a key of the file's `sources` table (text with the URL); a range in the sources is
stored as a documented central value. A bad file is one RooflineError naming the file and the field.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from roofline.errors import RooflineError
from roofline.specs.hardware import _fail, _parse_figure, _parse_json, _parse_sources

SCHEMA_VERSION = 1
DATA_FILE = "collectives.json"
EXAMPLE_FILE = "roofline/specs/data/collectives.json"
LINKS = ("nvlink", "pcie", "network")

# section -> {field -> kind}; `per_link` sections hold one figure per link kind
_LINK_FIGURES = {"bandwidth_fraction": "fraction", "launch_latency_s": "positive", "step_latency_s": "positive"}
_SECTIONS: dict[str, dict[str, str]] = {
    "nvls": {"algbw_fraction": "fraction", "latency_s": "positive", "min_group": "int"},
    "custom_allreduce": {"world_sizes": "int-list", "max_bytes": "int", "one_shot_always_world": "int",
                         "one_shot_small_world": "int", "one_shot_below_bytes_small_world": "int",
                         "one_shot_below_bytes": "int", "latency_s": "positive"},
}
_PER_LINK = ("all_to_all", "send_recv")  # {"bandwidth_fraction": {link: figure}}
_TOP = ("schema_version", "description", "sources", "links", *_SECTIONS, *_PER_LINK)


@dataclass(frozen=True)
class LinkFacts:
    """One link kind: large-message fraction of the per-direction rate, launch and per-step latency (s)."""

    bandwidth_fraction: float
    launch_latency_s: float
    step_latency_s: float


@dataclass(frozen=True)
class CollectiveFacts:
    links: Mapping[str, LinkFacts] = field(hash=False)
    nvls_algbw_fraction: float
    nvls_latency_s: float
    nvls_min_group: int
    custom_allreduce_world_sizes: tuple[int, ...]
    custom_allreduce_max_bytes: int  # used only below it
    custom_allreduce_one_shot_always_world: int  # worlds up to this always run one-shot
    custom_allreduce_one_shot_small_world: int  # worlds up to this use the larger threshold
    custom_allreduce_one_shot_below_bytes_small_world: int
    custom_allreduce_one_shot_below_bytes: int
    custom_allreduce_latency_s: float  # one kernel stage
    all_to_all_fraction: Mapping[str, float] = field(hash=False)  # link -> fraction
    send_recv_fraction: Mapping[str, float] = field(hash=False)
    sources: Mapping[str, str] = field(hash=False)  # field path ("links.nvlink.bandwidth_fraction") -> source text
    path: str = ""


def load_collectives(path: str | Path | None = None) -> CollectiveFacts:
    """The built-in facts (cached), or a file at `path` in the same format."""
    if path is None:
        return _builtin()
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RooflineError(f"cannot read collectives file {p}: {exc}",
                            hint=f"pass the path of a JSON file like {EXAMPLE_FILE}") from exc
    return parse_collectives(text, str(p.resolve()))


def data_path() -> Path:
    """The built-in data file."""
    return Path(str(resources.files("roofline.specs") / "data" / DATA_FILE))


@lru_cache(maxsize=None)
def _builtin() -> CollectiveFacts:
    path = data_path()
    return parse_collectives(path.read_text(encoding="utf-8"), str(path))


def parse_collectives(text: str, where: str) -> CollectiveFacts:
    """Parse and validate the file's JSON text; `where` (the file) and the field are named in every error."""
    data = _parse_json(text, where)
    for name in _TOP:
        if name not in data:
            raise RooflineError(f"{where}: missing field '{name}'",
                                hint=f"add it; {EXAMPLE_FILE} is a complete example")
    for name in data:
        if name not in _TOP:
            raise RooflineError(f"{where}: unknown field '{name}'", hint=f"allowed fields: {', '.join(_TOP)}")
    if data["schema_version"] != SCHEMA_VERSION:
        raise _fail(where, "schema_version", str(SCHEMA_VERSION), data["schema_version"], EXAMPLE_FILE)
    if not (isinstance(data["description"], str) and data["description"].strip()):
        raise _fail(where, "description", "a non-empty string", data["description"], EXAMPLE_FILE)
    sources = _parse_sources(data["sources"], where, EXAMPLE_FILE)
    provenance: dict[str, str] = {}

    def section(raw: Any, name: str, kinds: Mapping[str, str]) -> dict[str, Any]:
        if not isinstance(raw, dict) or set(raw) != set(kinds):
            raise _fail(where, name, f"an object with exactly {', '.join(kinds)}", raw, EXAMPLE_FILE)
        out = {}
        for key, kind in kinds.items():
            out[key], provenance[f"{name}.{key}"] = _parse_figure(raw[key], f"{name}.{key}", kind, sources, where,
                                                                   EXAMPLE_FILE)
        return out

    links_raw = data["links"]
    if not isinstance(links_raw, dict) or set(links_raw) != set(LINKS):
        raise _fail(where, "links", f"an object with exactly {', '.join(LINKS)}", links_raw, EXAMPLE_FILE)
    links = {k: LinkFacts(**section(links_raw[k], f"links.{k}", _LINK_FIGURES)) for k in LINKS}
    nvls = section(data["nvls"], "nvls", _SECTIONS["nvls"])
    ca = section(data["custom_allreduce"], "custom_allreduce", _SECTIONS["custom_allreduce"])
    per_link = {}
    for name in _PER_LINK:
        raw = data[name]
        if not isinstance(raw, dict) or set(raw) != {"bandwidth_fraction"}:
            raise _fail(where, name, "an object with exactly bandwidth_fraction", raw, EXAMPLE_FILE)
        per_link[name] = section(raw["bandwidth_fraction"], f"{name}.bandwidth_fraction",
                                 {k: "fraction" for k in LINKS})
    return CollectiveFacts(
        links=links, nvls_algbw_fraction=nvls["algbw_fraction"], nvls_latency_s=nvls["latency_s"],
        nvls_min_group=int(nvls["min_group"]), custom_allreduce_world_sizes=ca["world_sizes"],
        custom_allreduce_max_bytes=int(ca["max_bytes"]),
        custom_allreduce_one_shot_always_world=int(ca["one_shot_always_world"]),
        custom_allreduce_one_shot_small_world=int(ca["one_shot_small_world"]),
        custom_allreduce_one_shot_below_bytes_small_world=int(ca["one_shot_below_bytes_small_world"]),
        custom_allreduce_one_shot_below_bytes=int(ca["one_shot_below_bytes"]),
        custom_allreduce_latency_s=ca["latency_s"], all_to_all_fraction=per_link["all_to_all"],
        send_recv_fraction=per_link["send_recv"], sources=provenance, path=where)
