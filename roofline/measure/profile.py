"""The profile file: one versioned JSON document per bench run, written atomically.

Layout (schema "roofline.profile", version 1):
  device       what was measured (cpu_info() / gpu_info())
  provenance   host, timestamp, command, python/torch/numpy/roofline versions, the GPU spec compared
               against (name, path, sha256 of the file), settings
  complete     false while running and after an interruption; `missing` lists the point ids not measured
  points       every point: counts (flops, bytes_read, bytes_written, kernels, working_set_bytes), status
               ("ok" | "skipped" | "error") with `reason`, every sample (samples_s), summary, telemetry
               (CPU: clock, load average, runnable tasks, steal_fraction and other_cpu_fraction per round);
               per round round_p25_s, round_medians_s, round_wall_s (seconds the round took in all);
               `unstable: true` when its rounds still disagree after re-measurement (never fitted)
  ceilings     memory_bandwidth_bytes_per_s, peak_flops_per_s {precision: FLOP/s}, and the supporting
               figures (copy engine, best cache bandwidth, launch overhead), each with the point it came from
  calibration  the efficiency fit over the stable points (see calibrate.py)
  rounds, remeasured, remeasure_s, unstable, incomplete_rounds, elapsed_s   (runner.py) passes over the plan,
               {id: extra rounds}, their seconds, the ids still unstable, ids with fewer rounds than planned
  skipped      {id: reason} of the points not measured (e.g. a precision without a fast kernel)
  contention   the reference kernels' times at each check (`reference_checks`), their slowdown and drift,
               the run's and each round's steal_fraction / other_cpu_fraction (/proc/stat), `detected` and
               the `reasons` (runner.contention_summary). Profiles before these fields still load.
"""
from __future__ import annotations

import hashlib
import json
import math
import platform
import socket
import sys
import time
from pathlib import Path
from typing import Any

from roofline.errors import RooflineError
from roofline.outfile import write_text
from roofline.jsonfile import read_json, show
from roofline.measure.points import FAMILIES
from roofline.specs.precision import COMPUTE_PRECISIONS

SCHEMA = "roofline.profile"
VERSION = 1


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def versions() -> dict[str, str | None]:
    import numpy

    out: dict[str, str | None] = {"python": platform.python_version(), "numpy": numpy.__version__}
    try:
        import torch

        out["torch"] = torch.__version__
        out["cuda"] = torch.version.cuda
    except ImportError:
        out["torch"] = None
    try:
        from importlib.metadata import version

        out["roofline"] = version("roofline")
    except Exception:
        out["roofline"] = None
    return out


def provenance(command: list[str] | None, spec: Any = None, settings: dict | None = None) -> dict[str, Any]:
    """Who/what/when: host, UTC timestamp, command line, versions, the spec file used (with its hash)."""
    spec_info = None
    if spec is not None:
        path = getattr(spec, "path", "")
        spec_info = {"name": spec.name, "path": path,
                     "sha256": file_sha256(path) if path and Path(path).is_file() else None}
    return {"host": socket.gethostname(), "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": list(command if command is not None else sys.argv), "versions": versions(),
            "platform": platform.platform(), "spec": spec_info, "settings": dict(settings or {})}


def new_profile(device: dict, prov: dict, planned: list[dict]) -> dict[str, Any]:
    """An empty, incomplete profile whose `missing` lists every planned point."""
    return {"schema": SCHEMA, "version": VERSION, "device": device, "provenance": prov, "complete": False,
            "missing": [p["id"] for p in planned], "interrupted": None, "points": [], "ceilings": {},
            "calibration": None}


def _clean(x: Any) -> Any:
    """JSON-safe: non-finite floats -> None, tuples -> lists, numpy scalars -> Python."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and not isinstance(x, (str, bytes)):
        try:
            x = x.item()
        except (TypeError, ValueError):
            pass
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_profile(profile: dict[str, Any], path: str | Path) -> Path:
    """Write atomically through `outfile.write_text` (a temp file in the same folder, fsync, rename: never a
    half-written file, never through a link or onto a device); replaces a profile already at `path` (the runner
    rewrites its own file after each point; `roofline bench` refuses an existing file before it starts)."""
    text = json.dumps(_clean(profile), indent=1, allow_nan=False)
    return write_text(path, text + "\n", overwrite=True, what="profile")


def load_profile(path: str | Path) -> dict[str, Any]:
    """Read and check a profile; RooflineError naming the file and what is wrong."""
    p = Path(path).expanduser()
    if str(path).strip() and not p.exists():
        raise RooflineError(f"profile not found: {p}", hint="run `roofline bench` first, or check the path")
    data = read_json(path, "profile", "a file written by `roofline bench` (profiles/cpu-quick-vm.json)")
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = show(data.get("schema")) if isinstance(data, dict) else f"a JSON {type(data).__name__}"
        raise RooflineError(f"{p} is not a roofline profile (schema {found}, expected {SCHEMA!r})",
                            hint="pass a file written by `roofline bench`")
    if data.get("version") != VERSION:
        raise RooflineError(f"{p}: profile version {data.get('version')!r}, this roofline reads version {VERSION}",
                            hint="re-run `roofline bench` with this version")
    check_profile(data, str(p))
    data["_path"] = str(p)
    return data


def ok_points(profile: dict[str, Any], family: str | None = None) -> list[dict[str, Any]]:
    return [q for q in profile["points"] if q.get("status") == "ok" and (family is None or q["family"] == family)]


# ------------------------------------------------------------------------------------------ validation
#
# Every field the code reads is typed and ranged here, once, when the profile is loaded: the readers
# (device, calibrate, validate, predict, the report) then trust it. The bounds are plausibility limits far
# outside any real device or benchmark point, chosen so that every sum, product and quotient the model
# forms from them stays a finite float64 (a count over a time: at most 1e21 / 1e-12 = 1e33).

MAX_COUNT = 1e21  # FLOPs, bytes, kernels of a point; bytes of memory or cache (the largest real point: ~1e13)
MIN_RATE_PER_S, MAX_RATE_PER_S = 1.0, 1e18  # bytes/s, FLOP/s (a B200 in fp4: 9e15 FLOP/s)
MIN_TIME_S, MAX_TIME_S = 1e-12, 86400.0  # a reference time: above any timer's resolution, under one day
MAX_LOG = 100.0  # |log10 intensity|, |log10 bytes|, |ln fraction| of a calibration sample
MAX_WHOLE = 2**31 - 1  # a point's batch, tokens, layers, scale factor; a device's cores
STATUSES = ("ok", "skipped", "error")
DEVICE_KINDS = ("cpu", "cuda")
HINT = "fix that field, or re-run `roofline bench` to write a new profile"

_ABSENT = object()


class _Check:
    """Typed, ranged reads of one profile's fields; each failure is one RooflineError naming the file and the
    field's JSON path (`points[3].summary.median_s`)."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, path: str, expected: str = "", got: Any = _ABSENT) -> RooflineError:
        what = f"must be {expected}, got {show(got)}" if got is not _ABSENT else \
            f"is missing (expected {expected})" if expected else "is missing"
        return RooflineError(f"profile {self.where}: {path} {what}", hint=HINT)

    def get(self, d: dict, key: str, path: str, expected: str, required: bool) -> Any:
        """d[key]; _ABSENT when it is absent or null and not required."""
        where = f"{path}.{key}" if path else key
        if key not in d or (d[key] is None and not required):
            if required:
                raise self.fail(where, expected)
            return _ABSENT
        return d[key]

    def obj(self, x: Any, path: str) -> dict:
        if not isinstance(x, dict):
            raise self.fail(path, "an object", x)
        return x

    def items(self, x: Any, path: str) -> list:
        if not isinstance(x, list):
            raise self.fail(path, "a list", x)
        return x

    def text(self, x: Any, path: str, choices: tuple[str, ...] | None = None, empty: bool = False) -> str:
        if choices is not None and x not in choices:
            raise self.fail(path, "one of " + ", ".join(choices), x)
        if not isinstance(x, str) or not (empty or x.strip()):
            raise self.fail(path, "a string" if empty else "a non-empty string", x)
        return x

    def flag(self, x: Any, path: str) -> bool:
        if not isinstance(x, bool):
            raise self.fail(path, "true or false", x)
        return x

    def whole(self, x: Any, path: str, lo: int = 0, hi: int = MAX_WHOLE) -> int:
        if isinstance(x, bool) or not isinstance(x, int) or not lo <= x <= hi:
            raise self.fail(path, f"a whole number from {lo} to {hi}", x)
        return x

    def number(self, x: Any, path: str, lo: float, hi: float, expected: str) -> float:
        """A finite number in [lo, hi] (not a bool), as a float."""
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not (math.isfinite(x) and lo <= x <= hi):
            raise self.fail(path, expected, x)
        return float(x)

    # the kinds of number a profile holds
    def count(self, x: Any, path: str, positive: bool = False) -> float:
        """FLOPs, bytes, kernels: >= 0, or >= 1 where there must be some."""
        lo = 1.0 if positive else 0.0
        return self.number(x, path, lo, MAX_COUNT, f"a finite number from {lo:g} to {MAX_COUNT:g}")

    def time_s(self, x: Any, path: str, positive: bool = False) -> float:
        lo = MIN_TIME_S if positive else 0.0
        return self.number(x, path, lo, MAX_TIME_S, f"a time in seconds from {lo:g} to {MAX_TIME_S:g}")

    def rate(self, x: Any, path: str) -> float:
        return self.number(x, path, MIN_RATE_PER_S, MAX_RATE_PER_S,
                           f"a positive rate per second from {MIN_RATE_PER_S:g} to {MAX_RATE_PER_S:g}")

    def fields(self, d: dict, path: str, spec: dict[str, tuple[Any, bool]]) -> None:
        """Check and store back d[key] = check(d[key], path) for each key: (check, required); an optional
        field may be absent or null."""
        for key, (check, required) in spec.items():
            v = self.get(d, key, path, "", required)
            if v is not _ABSENT:
                d[key] = check(v, f"{path}.{key}" if path else key)


def check_profile(data: dict[str, Any], where: str) -> None:
    """Check every field of a loaded profile the code reads (types and ranges, see the bounds above); numbers
    are stored back as floats. RooflineError naming `where` and the field's JSON path otherwise."""
    c = _Check(where)
    opt_text = lambda x, p: c.text(x, p, empty=True)  # noqa: E731
    text_list = lambda x, p: [c.text(v, f"{p}[{i}]") for i, v in enumerate(c.items(x, p))]  # noqa: E731
    c.fields(data, "", {
        "device": (lambda x, p: _device(c, x, p), True), "provenance": (lambda x, p: _provenance(c, x, p), True),
        "complete": (c.flag, True), "missing": (text_list, True), "interrupted": (opt_text, False),
        "unstable": (text_list, False), "incomplete_rounds": (text_list, False),
        "rounds": (lambda x, p: c.whole(x, p, 1), False),
        "skipped": (lambda x, p: {k: c.text(v, f"{p}.{k}", empty=True) for k, v in c.obj(x, p).items()}, False),
        "contention": (lambda x, p: _contention(c, x, p), False),
        "points": (lambda x, p: _points(c, x, p), True), "ceilings": (lambda x, p: _ceilings(c, x, p), True),
        "calibration": (lambda x, p: _calibration(c, x, p), False)})


def _contention(c: _Check, d: Any, path: str) -> dict:
    c.obj(d, path)
    c.fields(d, path, {"detected": (c.flag, False), "reasons": (
        lambda x, p: [c.text(v, f"{p}[{i}]") for i, v in enumerate(c.items(x, p))], False)})
    return d


def _device(c: _Check, d: Any, path: str) -> dict:
    c.obj(d, path)
    opt_text = lambda x, p: c.text(x, p, empty=True)  # noqa: E731
    c.fields(d, path, {
        "kind": (lambda x, p: c.text(x, p, DEVICE_KINDS), True), "name": (c.text, True),
        "vendor": (opt_text, False), "architecture": (opt_text, False), "compute_capability": (opt_text, False),
        "memory_bytes": (lambda x, p: c.count(x, p, positive=True), True), "cache_bytes": (c.count, False),
        "cores": (c.whole, False), "sm_count": (c.whole, False), "caches": (lambda x, p: _caches(c, x, p), False),
        "clock_hz": (lambda x, p: c.number(x, p, 0.0, MAX_RATE_PER_S, f"a frequency in Hz from 0 to "
                                           f"{MAX_RATE_PER_S:g}"), False)})
    return d


def _caches(c: _Check, caches: Any, path: str) -> list:
    """A CPU's caches as cpu_info reads them from /sys: level, type ("Data", "Unified", ...), size."""
    for i, e in enumerate(c.items(caches, path)):
        c.fields(c.obj(e, f"{path}[{i}]"), f"{path}[{i}]", {
            "level": (c.whole, False), "type": (lambda x, p: c.text(x, p, empty=True), False),
            "size_bytes": (c.count, False)})
    return caches


def _provenance(c: _Check, d: Any, path: str) -> dict:
    c.obj(d, path)
    spec = c.get(d, "spec", path, "", False)
    if spec is not _ABSENT:
        c.obj(spec, f"{path}.spec")
        c.fields(spec, f"{path}.spec", {"name": (c.text, False), "path": (c.text, False)})
    return d


def _points(c: _Check, points: Any, path: str) -> list:
    seen: dict[str, int] = {}
    for i, p in enumerate(c.items(points, path)):
        where = f"{path}[{i}]"
        _point(c, c.obj(p, where), where)
        if p["id"] in seen:
            raise c.fail(f"{where}.id", f"an id no other point has ({path}[{seen[p['id']]}] has it too)", p["id"])
        seen[p["id"]] = i
    return points


#: params every measured point of a family needs (the attention and layer predictions rebuild the pass)
_PARAMS = {"attention": {"model": "text", "batch": 1, "new": 1, "cached": 0},
           "layer": {"model": "text", "factor": 1, "layers": 1, "batch": 1, "new": 1, "cached": 0}}


def _point(c: _Check, p: dict, path: str) -> None:
    c.fields(p, path, {"id": (c.text, True), "family": (lambda x, q: c.text(x, q, FAMILIES), True),
                       "kind": (c.text, True), "precision": (lambda x, q: c.text(x, q, COMPUTE_PRECISIONS), True),
                       "status": (lambda x, q: c.text(x, q, STATUSES), True),
                       "reason": (lambda x, q: c.text(x, q, empty=True), False)})
    ok = p["status"] == "ok"
    positive_count = lambda x, q: c.count(x, q, positive=True)  # noqa: E731
    times = lambda x, q: [c.time_s(v, f"{q}[{i}]") for i, v in enumerate(c.items(x, q))]  # noqa: E731
    c.fields(p, path, {
        "flops": (positive_count if p["family"] in ("gemm", "attention", "layer") else c.count, ok),
        "bytes_read": (c.count, ok), "bytes_written": (c.count, ok), "kernels": (positive_count, ok),
        "working_set_bytes": (c.count, ok), "samples_s": (times, False), "round_p25_s": (times, False),
        "round_medians_s": (times, False), "round_wall_s": (times, False), "rounds_done": (c.whole, False),
        "unstable": (c.flag, False),
        "summary": (lambda x, q: _summary(c, x, q), ok), "telemetry": (lambda x, q: _telemetry(c, x, q), False),
        "params": (lambda x, q: _params(c, x, q, p["family"] if ok else None), ok and p["family"] in _PARAMS)})
    if ok and p["bytes_read"] + p["bytes_written"] <= 0:
        raise c.fail(f"{path}.bytes_read + bytes_written", "positive (a measured point moves bytes)",
                     p["bytes_read"] + p["bytes_written"])


def _summary(c: _Check, s: Any, path: str) -> dict:
    c.obj(s, path)
    stats = {k for k in s if k.endswith("_s")}
    ref = c.get(s, "ref", path, "", False)
    ref = "median_s" if ref is _ABSENT else c.text(ref, f"{path}.ref", tuple(sorted(stats | {"median_s"})))
    for key in sorted(stats | {"median_s", "p10_s", "p90_s", ref}):
        if key not in s or s[key] is None:
            raise c.fail(f"{path}.{key}", "a time in seconds")
        s[key] = c.time_s(s[key], f"{path}.{key}", positive=key == ref)
    c.fields(s, path, {"n": (c.whole, False), "round_disagreement": (
        lambda x, q: c.number(x, q, 0.0, MAX_COUNT, "a finite number >= 0"), False)})
    return s


def _telemetry(c: _Check, t: Any, path: str) -> dict:
    c.obj(t, path)
    c.fields(t, path, {"throttled": (c.flag, False)})
    return t


def _params(c: _Check, params: Any, path: str, family: str | None) -> dict:
    c.obj(params, path)
    for key, v in params.items():
        if isinstance(v, (dict, list)):
            raise c.fail(f"{path}.{key}", "a number, a string, true/false or null", v)
    for key, lo in _PARAMS.get(family or "", {}).items():
        if key not in params:
            raise c.fail(f"{path}.{key}", "a string" if lo == "text" else "a whole number")
        c.text(params[key], f"{path}.{key}") if lo == "text" else c.whole(params[key], f"{path}.{key}", lo)
    return params


def _ceilings(c: _Check, d: Any, path: str) -> dict:
    """The ceilings a finished run stores (an interrupted one may have none: `{}`)."""
    c.obj(d, path)
    overhead = lambda x, p: c.time_s(x, p)  # noqa: E731
    c.fields(d, path, {"memory_bandwidth_bytes_per_s": (c.rate, False),
                       "peak_flops_per_s": (lambda x, p: _per_precision(c, x, p, c.rate), False),
                       "stream_bytes_per_s": (lambda x, p: _rates(c, x, p), False),
                       "copy_engine_bytes_per_s": (c.rate, False), "cache_bytes_per_s": (c.rate, False),
                       "launch_overhead_s": (overhead, False), "layer_kernel_overhead_s": (overhead, False)})
    return d


def _rates(c: _Check, d: Any, path: str) -> dict:
    c.obj(d, path)
    for k, v in d.items():
        d[k] = None if v is None else c.rate(v, f"{path}.{k}")
    return d


def _per_precision(c: _Check, d: Any, path: str, check) -> dict:
    c.obj(d, path)
    for k in list(d):
        c.text(k, f"{path} key", COMPUTE_PRECISIONS)
        d[k] = check(d[k], f"{path}.{k}")
    return d


def _calibration(c: _Check, d: Any, path: str) -> dict:
    c.obj(d, path)
    c.fields(d, path, {"kernel_overhead_s": (lambda x, p: c.time_s(x, p), True),
                       "compute_samples": (lambda x, p: _per_precision(c, x, p, lambda r, q: _rows(c, r, q)), True),
                       "memory_samples": (lambda x, p: _rows(c, x, p), True),
                       "attention_samples": (lambda x, p: _per_precision(c, x, p, lambda r, q: _rows(c, r, q)),
                                             False)})
    return d


def _rows(c: _Check, rows: Any, path: str) -> list:
    """Calibration samples: [log10 intensity, log10 bytes, ln fraction(, weight in [0, 1])] rows."""
    out = []
    for i, r in enumerate(c.items(rows, path)):
        where = f"{path}[{i}]"
        if not isinstance(r, list) or len(r) not in (3, 4):
            raise c.fail(where, "a list of 3 or 4 numbers [log10_intensity, log10_bytes, ln_fraction, weight]", r)
        row = [c.number(v, f"{where}[{j}]", -MAX_LOG, MAX_LOG, f"a finite number from {-MAX_LOG:g} to {MAX_LOG:g}")
               for j, v in enumerate(r[:3])]
        if len(r) == 4:
            row.append(c.number(r[3], f"{where}[3]", 0.0, 1.0, "a weight from 0 to 1"))
        out.append(row)
    return out
