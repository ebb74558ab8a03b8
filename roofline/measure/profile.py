"""The profile file: one versioned JSON document per bench run, written atomically.

Layout (schema "roofline.profile", version 1):
  device       what was measured (cpu_info() / gpu_info())
  provenance   host, timestamp, command, python/torch/numpy/roofline versions, the GPU spec compared
               against (name, path, sha256 of the file), settings
  complete     false while running and after an interruption; `missing` lists the point ids not measured
  points       every point: counts (flops, bytes_read, bytes_written, kernels, working_set_bytes), status
               ("ok" | "skipped" | "error") with `reason`, every sample (samples_s), summary, telemetry
  ceilings     memory_bandwidth_bytes_per_s, peak_flops_per_s {precision: FLOP/s}, and the supporting
               figures (copy engine, best cache bandwidth, launch overhead), each with the point it came from
  calibration  the efficiency fit over all points (see calibrate.py)
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from roofline.errors import RooflineError

SCHEMA = "roofline.profile"
VERSION = 1
REQUIRED = ("schema", "version", "device", "provenance", "complete", "missing", "points", "ceilings")


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
    """Write atomically: a temp file in the same folder, fsync, then os.replace (never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_clean(profile), indent=1, allow_nan=False)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes 0600; a profile is an ordinary file
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def load_profile(path: str | Path) -> dict[str, Any]:
    """Read and check a profile; RooflineError naming the file and what is wrong."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise RooflineError(f"profile not found: {p}", hint="run `roofline bench` first, or check the path")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RooflineError(f"cannot read profile {p}: {e}", hint="re-run `roofline bench` to write a new one")
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise RooflineError(f"{p} is not a roofline profile (schema {data.get('schema') if isinstance(data, dict) else None!r})",
                            hint="pass a file written by `roofline bench`")
    if data.get("version") != VERSION:
        raise RooflineError(f"{p}: profile version {data.get('version')!r}, this roofline reads version {VERSION}",
                            hint="re-run `roofline bench` with this version")
    for key in REQUIRED:
        if key not in data:
            raise RooflineError(f"{p}: missing field '{key}'", hint="the file is damaged; re-run `roofline bench`")
    data["_path"] = str(p)
    return data


def ok_points(profile: dict[str, Any], family: str | None = None) -> list[dict[str, Any]]:
    return [q for q in profile["points"] if q.get("status") == "ok" and (family is None or q["family"] == family)]
