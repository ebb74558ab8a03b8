"""JSON in and out: reading a user's JSON file (one place that turns a missing file or bad JSON into a
RooflineError) and making a result JSON-ready (what `--format json` prints and the Python API returns)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from roofline.errors import RooflineError


def to_jsonable(x: Any) -> Any:
    """numpy scalars/arrays -> Python; non-finite floats -> None (JSON has no inf/nan); tuples -> lists."""
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return to_jsonable(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def read_json(path: str | Path, what: str, example: str) -> Any:
    """The parsed contents of `path`; RooflineError naming the file (and line/column) otherwise.
    `what` names the kind of file ("workload file"), `example` a file to copy the format from."""
    p = Path(path)
    if not p.is_file():
        raise RooflineError(f"{what} {p} not found", hint=f"see {example}", exit_code=2)
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise RooflineError(f"{p}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})",
                            hint=f"see {example} for the format") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RooflineError(f"cannot read {what} {p}: {e}", hint=f"see {example}") from None
