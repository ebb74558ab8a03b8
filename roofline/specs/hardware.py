"""GPU spec files (`hardware_specs/*.json`, one per SKU) loaded into a frozen, validated `GPUSpec`.

A spec file holds one figure per field, each as `{"value": <number>, "source": <key>, "note": <optional text>}`,
where the key resolves in the file's `sources` table. All peaks are DENSE (no 2:4 sparsity); the file says so
with `"flops_are": "dense"`. Units are SI base units, named in the field (`bytes`, `bytes_per_s`, `hz`, `w`).

The node shape and the scale-out network (used by `roofline.model.comm`) are four optional figures; a file
without one gets its documented default, and the field's provenance then says "default":

- `gpus_per_node` (whole number): GPUs in one server; default `scaleup_domain_gpus`.
- `scaleout_bandwidth_bytes_per_s` (>= 0): the NIC bandwidth per GPU, per direction; default 0 = no network,
  so a group that spans more than one node cannot communicate (its collective time is infinite).
- `nvlink_sharp` (true/false): the scale-up switch reduces in the network (NVLink SHARP, NVLS); default false.
- `scaleup_topology` ("switch" or "mesh"): "switch" when every GPU reaches the switch with its whole scale-up
  bandwidth, so any subgroup gets all of it (NVSwitch); "mesh" for point-to-point links to each of the
  domain's other GPUs (Infinity Fabric, NVLink bridges), where a group of n GPUs in a domain of D uses n-1 of
  the D-1 links; default "switch".
"""
from __future__ import annotations

import difflib
import importlib.resources
import re
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from roofline.errors import RooflineError
from roofline.jsonfile import parse_json, read_text, show
from roofline.specs.precision import COMPUTE_PRECISIONS

SCHEMA_VERSION = 1
EXAMPLE_FILE = "hardware_specs/h100-sxm.json"
#: the GPU a command or a Python API call uses when none is named
DEFAULT_GPU = "h100-sxm"

# JSON field -> smallest allowed value ("int" = a positive whole number)
_FIGURES: dict[str, str] = {
    "memory_bytes": "positive",
    "memory_bandwidth_bytes_per_s": "positive",
    "l2_cache_bytes": "positive",
    "sm_count": "int",
    "clock_hz": "positive",
    "tdp_w": "positive",
    "scaleup_bandwidth_bytes_per_s": "non-negative",  # 0 = no NVLink / Infinity Fabric
    "pcie_bandwidth_bytes_per_s": "positive",
    "scaleup_domain_gpus": "int",  # GPUs the scale-up link joins all-to-all (HGX 8, NVL bridge 2, none 1)
}
SCALEUP_TOPOLOGIES = ("switch", "mesh")
# optional figures (node shape, scale-out network): JSON field -> kind; their defaults are in _defaults()
_NODE_FIGURES: dict[str, str] = {
    "gpus_per_node": "int",
    "scaleout_bandwidth_bytes_per_s": "non-negative",  # 0 = no network: nothing spans two nodes
    "nvlink_sharp": "bool",
    "scaleup_topology": "topology",
}
_TEXT_FIELDS = ("name", "display_name", "vendor", "architecture")
_REQUIRED = ("schema_version", *_TEXT_FIELDS, "flops_are", "sources", *_FIGURES, "peak_flops_per_s")
_OPTIONAL = ("form_factor", "aliases", "notes", *_NODE_FIGURES)
_FIGURE_KEYS = ("value", "source", "note")
_FLOAT_MAX = sys.float_info.max


@dataclass(frozen=True)
class GPUSpec:
    """One accelerator SKU. Peaks are dense; bandwidths are per direction; memory is what the runtime reports."""

    name: str
    display_name: str
    vendor: str
    architecture: str
    memory_bytes: float
    memory_bandwidth_bytes_per_s: float
    l2_cache_bytes: float
    sm_count: int
    clock_hz: float
    tdp_w: float
    scaleup_bandwidth_bytes_per_s: float
    pcie_bandwidth_bytes_per_s: float
    scaleup_domain_gpus: int
    peak_flops_per_s: Mapping[str, float] = field(hash=False)
    sources: Mapping[str, str] = field(hash=False)  # field name ("peak_flops_per_s.bf16") -> source text
    path: str = ""
    aliases: tuple[str, ...] = ()  # other names that resolve to this spec (e.g. the CUDA device name)
    gpus_per_node: int = 0  # GPUs in one server; 0 when built in code = scaleup_domain_gpus (set on creation)
    scaleout_bandwidth_bytes_per_s: float = 0.0  # NIC per GPU, PER DIRECTION; 0 = no network
    nvlink_sharp: bool = False  # the scale-up switch reduces in the network (NVLS)
    scaleup_topology: str = "switch"  # "switch": any subgroup gets the full scale-up bandwidth; "mesh": n-1 of D-1
    #: measured collectives (a `roofline bench-collectives` profile): (collective, group, latency_s,
    #: bus bandwidth bytes/s) fits that replace the communication model's facts for that collective and group
    measured_collectives: tuple[tuple[str, int, float, float], ...] = ()

    def __post_init__(self):
        if not self.gpus_per_node:
            object.__setattr__(self, "gpus_per_node", max(int(self.scaleup_domain_gpus), 1))

    def peak_flops(self, precision: str) -> float:
        """Dense peak in FLOP/s (OP/s for int8) for `precision`; RooflineError if the part lacks it."""
        p = precision.strip().lower()
        if p not in COMPUTE_PRECISIONS:
            raise RooflineError(
                f"unknown compute precision {precision!r}", hint=f"choose one of: {', '.join(COMPUTE_PRECISIONS)}"
            )
        if p not in self.peak_flops_per_s:
            have = ", ".join(self.peak_flops_per_s)
            raise RooflineError(
                f"{self.display_name} ({self.name}) has no {p} peak",
                hint=f"it has: {have}; pick one of those, or add peak_flops_per_s.{p} to {self.path}",
            )
        return self.peak_flops_per_s[p]

    def ridge_point_flops_per_byte(self, precision: str) -> float:
        """Arithmetic intensity (FLOP per HBM byte) above which a kernel is compute-bound."""
        return self.peak_flops(precision) / self.memory_bandwidth_bytes_per_s

    def interconnect_bandwidth_bytes_per_s(self, gpus=1):
        """Per-direction GPU-to-GPU bandwidth for a group of `gpus` (scalar or array): the scale-up link
        (NVLink / Infinity Fabric) while the group fits in its domain, else PCIe."""
        inside = (np.asarray(gpus) <= self.scaleup_domain_gpus) & (self.scaleup_bandwidth_bytes_per_s > 0)
        return np.where(inside, self.scaleup_bandwidth_bytes_per_s, self.pcie_bandwidth_bytes_per_s)


# ---------------------------------------------------------------- public API


def load_gpu(name_or_path: str | Path) -> GPUSpec:
    """Load a built-in spec by short name or alias (case-insensitive), or a user's JSON spec file by path."""
    if _looks_like_path(name_or_path):
        return load_gpu_file(name_or_path)
    return _load_builtin(resolve_gpu_name(str(name_or_path)))


def list_gpus() -> list[str]:
    """Short names of the built-in specs, sorted."""
    return sorted(_builtin_files())


def gpu_aliases() -> dict[str, str]:
    """Normalized alias (and short name) -> short name, over all built-in specs."""
    table: dict[str, str] = {}
    for name in list_gpus():
        for alias in (name, *_load_builtin(name).aliases):
            key = normalize_gpu_name(alias)
            if table.get(key, name) != name:
                raise RooflineError(
                    f"alias {alias!r} is claimed by both {table[key]} and {name}",
                    hint="remove it from one of the two files in hardware_specs/",
                )
            table[key] = name
    return table


def normalize_gpu_name(text: str) -> str:
    """Lower-case, trim, runs of spaces/underscores -> '-': 'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3'."""
    return re.sub(r"[\s_]+", "-", text.strip().lower())


def resolve_gpu_name(text: str) -> str:
    """Short name for a short name, alias or CUDA device name; RooflineError with the nearest names if unknown."""
    aliases = gpu_aliases()
    key = normalize_gpu_name(text)
    if key in aliases:
        return aliases[key]
    close = difflib.get_close_matches(key, list(aliases), n=6, cutoff=0.6)
    nearest = list(dict.fromkeys(aliases[c] for c in close))[:3]
    hint = f"did you mean: {', '.join(nearest)}? " if nearest else ""
    raise RooflineError(
        f"unknown GPU {text!r}",
        hint=hint + "Run `roofline gpus` to list the built-in GPUs, or pass the path of a JSON spec file.",
    )


def load_gpu_file(path: str | Path) -> GPUSpec:
    """Load and validate one spec file from disk."""
    text = read_text(path, "GPU spec file", EXAMPLE_FILE)
    return parse_gpu_spec(text, str(Path(path).expanduser().resolve()))


def parse_gpu_spec(text: str, where: str) -> GPUSpec:
    """Parse and validate spec JSON text; `where` (the file) is named in every error."""
    data = _parse_json(text, where)
    _check_fields(data, where)
    _check_header(data, where)
    sources = _parse_sources(data["sources"], where)
    values: dict[str, Any] = {f: data[f] for f in _TEXT_FIELDS}
    provenance: dict[str, str] = {}
    for name, kind in _FIGURES.items():
        values[name], provenance[name] = _parse_figure(data[name], name, kind, sources, where)
    values["sm_count"] = int(values["sm_count"])
    values["scaleup_domain_gpus"] = int(values["scaleup_domain_gpus"])
    for name, kind in _NODE_FIGURES.items():
        if name in data:
            values[name], provenance[name] = _parse_figure(data[name], name, kind, sources, where)
        else:
            values[name], provenance[name] = _defaults(values)[name]
    values["gpus_per_node"] = int(values["gpus_per_node"])
    peaks = _parse_peaks(data["peak_flops_per_s"], sources, where, provenance)
    aliases = tuple(data.get("aliases", ()))
    return GPUSpec(**values, peak_flops_per_s=peaks, sources=provenance, path=where, aliases=aliases)


def _defaults(values: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    """(value, provenance) of each node/network figure a file leaves out (see the module docstring)."""
    return {
        "gpus_per_node": (values["scaleup_domain_gpus"], "default (not in the file): scaleup_domain_gpus"),
        "scaleout_bandwidth_bytes_per_s": (0.0, "default (not in the file): 0 = no network, single node only"),
        "nvlink_sharp": (False, "default (not in the file): false, no in-switch reduction"),
        "scaleup_topology": ("switch", "default (not in the file): switch, any subgroup gets the full bandwidth"),
    }


# ---------------------------------------------------------------- built-in files


def _builtin_dir():
    """The packaged `roofline.hardware_specs` folder, or the source tree's `hardware_specs/` when not installed."""
    try:
        return importlib.resources.files("roofline.hardware_specs")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "hardware_specs"


@lru_cache(maxsize=None)
def _builtin_files() -> dict[str, Any]:
    folder = _builtin_dir()
    return {f.name[: -len(".json")]: f for f in folder.iterdir() if f.name.endswith(".json")}


@lru_cache(maxsize=None)
def _load_builtin(name: str) -> GPUSpec:
    file = _builtin_files()[name]
    spec = parse_gpu_spec(file.read_text(encoding="utf-8"), str(file))
    if spec.name != name:
        raise RooflineError(
            f"{file}: field 'name': expected {name!r} (the file name), found {spec.name!r}",
            hint="a built-in spec file must be named <name>.json",
        )
    return spec


def _looks_like_path(x: str | Path) -> bool:
    if isinstance(x, Path):
        return True
    return x.endswith(".json") or "/" in x or "\\" in x


# ---------------------------------------------------------------- validation


def _fail(where: str, fieldname: str, expected: str, found: Any, example: str = EXAMPLE_FILE) -> RooflineError:
    return RooflineError(
        f"{where}: field '{fieldname}': expected {expected}, found {show(found, 80)}",
        hint=f"fix the value in the file; {example} is a complete example",
    )


def _parse_json(text: str, where: str) -> dict[str, Any]:
    """Strict JSON (no duplicate keys, NaN or Infinity; bounded nesting) holding an object."""
    data = parse_json(text, where, EXAMPLE_FILE)
    if not isinstance(data, dict):
        raise _fail(where, "(top level)", "a JSON object", type(data).__name__)
    return data


def _check_fields(data: dict[str, Any], where: str, required: tuple[str, ...] = _REQUIRED,
                  optional: tuple[str, ...] = _OPTIONAL, example: str = EXAMPLE_FILE) -> None:
    """Every `required` top-level field present, none beyond `required` and `optional` (a close name suggested)."""
    for name in required:
        if name not in data:
            raise RooflineError(
                f"{where}: missing field '{name}'",
                hint=f"add it; {example} is a complete example",
            )
    allowed = (*required, *optional)
    for name in data:
        if name not in allowed:
            close = difflib.get_close_matches(name, allowed, n=1)
            guess = f"did you mean '{close[0]}'? " if close else ""
            raise RooflineError(
                f"{where}: unknown field '{name}'",
                hint=guess + f"allowed fields: {', '.join(allowed)}",
            )


def _check_header(data: dict[str, Any], where: str) -> None:
    if data["schema_version"] != SCHEMA_VERSION:
        raise _fail(where, "schema_version", str(SCHEMA_VERSION), data["schema_version"])
    if data["flops_are"] != "dense":
        raise _fail(where, "flops_are", '"dense" (store dense peaks: sparse headline / 2)', data["flops_are"])
    for name in (*_TEXT_FIELDS, "form_factor", "notes"):
        if name in data and not (isinstance(data[name], str) and data[name].strip()):
            raise _fail(where, name, "a non-empty string", data[name])
    aliases = data.get("aliases", [])
    if not (isinstance(aliases, list) and all(isinstance(a, str) and a.strip() for a in aliases)):
        raise _fail(where, "aliases", "a list of non-empty strings", aliases)


def _parse_sources(raw: Any, where: str, example: str = EXAMPLE_FILE) -> dict[str, str]:
    if not isinstance(raw, dict) or not raw:
        expected = 'a non-empty object of key -> text, e.g. {"S4": "NVIDIA H100 datasheet ..."}'
        raise _fail(where, "sources", expected, raw, example)
    for key, text in raw.items():
        if not (isinstance(text, str) and text.strip()):
            raise _fail(where, f"sources.{key}", "a non-empty string", text, example)
    return dict(raw)


def _parse_figure(raw: Any, name: str, kind: str, sources: dict[str, str], where: str,
                  example: str = EXAMPLE_FILE) -> tuple[Any, str]:
    """Validate one {"value", "source", "note"} entry; return (value, provenance text)."""
    if not isinstance(raw, dict):
        raise _fail(where, name, '{"value": <value>, "source": <key in sources>}', raw, example)
    for key in raw:
        if key not in _FIGURE_KEYS:
            raise _fail(where, f"{name}.{key}", f"only {', '.join(_FIGURE_KEYS)}", key, example)
    for key in ("value", "source"):
        if key not in raw:
            raise RooflineError(
                f"{where}: missing field '{name}.{key}'", hint=f"add it; {example} is a complete example"
            )
    value = _check_value(raw["value"], f"{name}.value", kind, where, example)
    source, note = raw["source"], raw.get("note")
    if not isinstance(source, str) or source not in sources:
        raise _fail(where, f"{name}.source", f"a key of 'sources' ({', '.join(sources)})", source, example)
    if note is not None and not isinstance(note, str):
        raise _fail(where, f"{name}.note", "a string", note, example)
    text = f"[{source}] {sources[source]}" + (f"; note: {note}" if note else "")
    return value, text


#: no figure of one accelerator comes near 1e21 (bytes, bytes/s, FLOP/s, Hz, W): a larger value is a typo, and
#: would overflow the integer token and batch counts computed from it
_FIGURE_MAX = 1e21
_EXPECTED = {"int": "a positive whole number up to 1e21", "non-negative": "a number from 0 to 1e21",
             "positive": "a positive number up to 1e21", "fraction": "a number in (0, 1]", "bool": "true or false",
             "topology": f"one of {', '.join(repr(t) for t in SCALEUP_TOPOLOGIES)}",
             "int-list": "a non-empty list of positive whole numbers"}


def _check_value(x: Any, fieldname: str, kind: str, where: str, example: str = EXAMPLE_FILE) -> Any:
    """`x` if it is a value of `kind` (a number as float, a bool, a topology name, a list of ints as a tuple)."""
    if kind == "bool":
        ok = isinstance(x, bool)
    elif kind == "topology":
        ok = x in SCALEUP_TOPOLOGIES
    elif kind == "int-list":
        ok = isinstance(x, list) and bool(x) and all(_is_number(v) and v > 0 and float(v).is_integer() for v in x)
    elif not _is_number(x):
        ok = False
    else:
        ok = x <= _FIGURE_MAX and {"int": x > 0 and float(x).is_integer(), "non-negative": x >= 0,
                                   "fraction": 0 < x <= 1}.get(kind, x > 0)
    if not ok:
        raise _fail(where, fieldname, _EXPECTED[kind], x, example)
    if kind in ("bool", "topology"):
        return x
    return tuple(int(v) for v in x) if kind == "int-list" else float(x)


def _is_number(x: Any) -> bool:
    """A finite JSON number (an integer beyond a float's range is not: comparing never converts it)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and -_FLOAT_MAX <= x <= _FLOAT_MAX


def _parse_peaks(raw: Any, sources: dict[str, str], where: str, provenance: dict[str, str]) -> dict[str, float]:
    if not isinstance(raw, dict) or not raw:
        raise _fail(where, "peak_flops_per_s", "a non-empty object of precision -> figure", raw)
    peaks: dict[str, float] = {}
    for precision, entry in raw.items():
        name = f"peak_flops_per_s.{precision}"
        if precision not in COMPUTE_PRECISIONS:
            raise _fail(where, name, f"a precision among {', '.join(COMPUTE_PRECISIONS)}", precision)
        peaks[precision], provenance[name] = _parse_figure(entry, name, "positive", sources, where)
    return peaks
