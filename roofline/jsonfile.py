"""Reading a user's file, and JSON in and out.

`read_text` is the one way roofline reads a file a user names (a model config, a spec, workload, fleet, profile,
measurements or histogram file): the path must be non-empty and name a regular file (a directory, a FIFO, which
would block forever, or a device such as /dev/zero, which never ends, is refused before it is opened), the file
may hold at most `max_bytes` (checked on its size and again while reading, so a file that grows cannot exhaust
memory) and must be UTF-8 text. `read_json` adds JSON parsing that never recurses without bound (nesting deeper
than `max_depth` is refused before the parser sees it), refuses NaN, Infinity and numbers beyond a float's range
(not JSON numbers) and, by default, a key given twice in one object. Every failure is one RooflineError that
names the file and says what to do. `to_jsonable` makes a result JSON-ready (what `--format json` prints and the
Python API returns); `show` spells a value from a file, cut short, for the error that names it."""
from __future__ import annotations

import json
import math
import os
import stat
import sys
from pathlib import Path
from typing import Any

import numpy as np

from roofline.errors import RooflineError

#: the largest file read_text reads by default (64 MiB): far above any config, spec, workload, fleet or profile
#: roofline writes or reads, and small enough that reading it cannot exhaust memory
MAX_FILE_BYTES = 64 * 2**20
#: the deepest JSON nesting read_json accepts by default (roofline's own formats nest at most 6 levels; Python's
#: parser recurses once per level and fails near 1000)
MAX_JSON_DEPTH = 100
_CHUNK_BYTES = 1 << 20
_NOT_REGULAR = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                (stat.S_ISSOCK, "a socket"))


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


def show(x: Any, max_chars: int = 60) -> str:
    """A value as JSON spells it (repr where JSON cannot), cut to `max_chars` characters, for an error message."""
    try:
        text = json.dumps(x)
    except (TypeError, ValueError):
        text = repr(x)
    return clip(text, max_chars)


def clip(text: str, max_chars: int = 60) -> str:
    """`text` cut to `max_chars` characters, the last three "..." when it was longer."""
    return text if len(text) <= max_chars else text[:max_chars - 3] + "..."


# ------------------------------------------------------------------------------------------------ reading a file

def read_text(path: str | Path, what: str, example: str, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The text of the file at `path` (a leading UTF-8 byte-order mark dropped); one RooflineError naming the
    file otherwise. `what` names the kind of file ("workload file"), `example` a file to copy the format from.

    A path that names nothing readable as a file (empty, missing, a directory, a FIFO, a device) is a usage
    error (exit code 2); a file that cannot be read, is larger than `max_bytes` or is not UTF-8 is exit code 1."""
    return _decode(read_bytes(path, what, example, max_bytes), Path(path).expanduser(), what, example)


def read_bytes(path: str | Path, what: str, example: str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the file at `path`, with every check of `read_text` but the encoding."""
    if not str(path).strip():  # Path("") is ".", the current directory: refuse it by name
        raise RooflineError(f"{what}: the path is empty", hint=f"pass the path of a {what}, e.g. {example}",
                            exit_code=2)
    p = Path(path).expanduser()
    try:
        st = os.stat(p)  # before opening: opening a FIFO blocks, opening a device can act on it
    except (FileNotFoundError, NotADirectoryError):
        raise RooflineError(f"{what} {p} not found", hint=f"check the path; see {example} for the format",
                            exit_code=2) from None
    except ValueError:  # an embedded NUL character
        raise RooflineError(f"{what} path {str(path)!r} is not a valid path", hint=f"pass the path of a {what}",
                            exit_code=2) from None
    except OSError as e:
        raise _unreadable(p, what, e) from None
    _check_regular(st, p, what, example)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(p, flags)
    except OSError as e:
        raise _unreadable(p, what, e) from None
    try:
        st = os.fstat(fd)  # the file now open, in case the path was replaced since the stat above
        _check_regular(st, p, what, example)
        if st.st_size > max_bytes:
            raise _too_large(p, what, example, f"{st.st_size:,}", max_bytes)
        chunks, n = [], 0
        while n <= max_bytes:  # at most max_bytes + 1 bytes, whatever the size said
            chunk = os.read(fd, min(_CHUNK_BYTES, max_bytes + 1 - n))
            if not chunk:
                break
            chunks.append(chunk)
            n += len(chunk)
    except OSError as e:
        raise _unreadable(p, what, e) from None
    finally:
        os.close(fd)
    if n > max_bytes:
        raise _too_large(p, what, example, f"at least {n:,}", max_bytes)  # it grew while read
    return b"".join(chunks)


def _check_regular(st: os.stat_result, p: Path, what: str, example: str) -> None:
    if stat.S_ISREG(st.st_mode):
        return
    kind = next((name for test, name in _NOT_REGULAR if test(st.st_mode)), "a special file")
    hint = (f"pass the path of a {what} itself, e.g. {example}" if stat.S_ISDIR(st.st_mode) else
            f"a {what} must be a regular file (a pipe or a device cannot be read as one): save it to a file first")
    raise RooflineError(f"{what} {p} is {kind}, not a regular file", hint=hint, exit_code=2)


def _unreadable(p: Path, what: str, e: OSError) -> RooflineError:
    return RooflineError(f"cannot read {what} {p}: {e.strerror or e}",
                         hint="check that the file exists and is readable by you")


def _too_large(p: Path, what: str, example: str, size: str, limit: int) -> RooflineError:
    return RooflineError(f"{what} {p} is {size} bytes, more than the {limit:,} bytes a {what} may have",
                         hint=f"check that this is the right file (see {example})")


def _decode(data: bytes, p: Path, what: str, example: str) -> str:
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as e:
        at = start + e.start
        line, column = _line_column(data, at)
        raise RooflineError(f"{what} {p} is not UTF-8 text: byte 0x{data[at]:02x} at byte offset {at} (line {line}, "
                            f"column {column}) cannot be decoded",
                            hint=f"save the file as UTF-8 text (see {example} for the format)") from None


def _line_column(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and byte column of `offset` in `data`."""
    return data.count(b"\n", 0, offset) + 1, offset - (data.rfind(b"\n", 0, offset) + 1) + 1


# ------------------------------------------------------------------------------------------------ parsing JSON

def read_json(path: str | Path, what: str, example: str, *, max_bytes: int = MAX_FILE_BYTES,
              max_depth: int = MAX_JSON_DEPTH, unique_keys: bool = True, exit_code: int = 1) -> Any:
    """The parsed contents of the JSON file at `path` (read by `read_text`); one RooflineError naming the file
    (and the line and column) otherwise. `exit_code` is that of an error in the contents (bad JSON)."""
    text = read_text(path, what, example, max_bytes)
    return parse_json(text, str(Path(path).expanduser()), example, max_depth=max_depth, unique_keys=unique_keys, exit_code=exit_code)


class _Rejected(Exception):
    """Raised inside the JSON parser's hooks for a value the format does not allow."""


def _no_constant(name: str) -> Any:
    raise _Rejected(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    x = float(text)
    if not math.isfinite(x):
        raise _Rejected(f"the number {text} is beyond the range of a 64-bit float")
    return x


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Rejected(f"duplicate key {key!r} (each key may appear once in an object)")
        out[key] = value
    return out


def parse_json(text: str, where: str, example: str, *, max_depth: int = MAX_JSON_DEPTH, unique_keys: bool = True,
               exit_code: int = 1) -> Any:
    """`text` parsed as strict JSON; one RooflineError naming `where` (the file) otherwise: bad syntax (with line
    and column), nesting deeper than `max_depth`, NaN/Infinity or a number beyond a float's range, a key given
    twice in one object (unless not `unique_keys`)."""
    hint = f"see {example} for the format"
    deep = _too_deep(text, max_depth)
    if deep is not None:
        raise RooflineError(f"{where}: JSON nested more than {max_depth} levels deep (at line {deep[0]} column "
                            f"{deep[1]})", hint=f"is this the right file? {hint}", exit_code=exit_code)
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float,
                          object_pairs_hook=_unique if unique_keys else None)
    except json.JSONDecodeError as e:
        raise RooflineError(f"{where}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})", hint=hint,
                            exit_code=exit_code) from None
    except _Rejected as e:
        raise RooflineError(f"{where}: not valid JSON: {e}", hint=hint, exit_code=exit_code) from None
    except ValueError:  # Python reads integers of at most 4300 digits (sys.get_int_max_str_digits)
        raise RooflineError(f"{where}: a number has more than {sys.get_int_max_str_digits()} digits", hint=hint,
                            exit_code=exit_code) from None
    except RecursionError:  # within max_depth, but called with a stack already nearly full
        raise RooflineError(f"{where}: JSON nested too deeply to parse here", hint=hint, exit_code=exit_code) from None


def _too_deep(text: str, limit: int) -> tuple[int, int] | None:
    """(line, column) where the nesting of arrays and objects first exceeds `limit` levels (brackets inside
    strings do not count), or None. Vectorized over the structural characters (quotes and brackets), in chunks
    of 1 MiB, so a large file costs little time and memory."""
    if text.count("[") + text.count("{") <= limit:
        return None
    data = text.encode("utf-8", "surrogatepass")  # ASCII bytes never occur inside a multi-byte character
    a = np.frombuffer(data, np.uint8)
    in_string, depth = 0, 0
    for start in range(0, a.size, _CHUNK_BYTES):
        c = a[start:start + _CHUNK_BYTES]
        pos = np.flatnonzero((c == 34) | (c == 91) | (c == 93) | (c == 123) | (c == 125))  # " [ ] { }
        byte = c[pos]
        quote = byte == 34
        before = a[np.maximum(start + pos - 1, 0)]  # the byte before each (index 0: itself, never a backslash)
        for i in np.flatnonzero(quote & (before == 92) & (start + pos > 0)):  # escaped after an odd backslash run
            j = start + int(pos[i]) - 1
            run = 0
            while j - run >= 0 and a[j - run] == 92:
                run += 1
            quote[i] = run % 2 == 0
        if not quote.any() and not in_string:
            inside = np.zeros(pos.size, np.int64)
        else:
            inside = (np.cumsum(quote, dtype=np.int64) + in_string) & 1
        step = np.where((byte == 91) | (byte == 123), 1, np.where((byte == 93) | (byte == 125), -1, 0)) * (1 - inside)
        level = np.cumsum(step) + depth
        over = np.flatnonzero(level > limit)
        if over.size:
            return _line_column(data, start + int(pos[over[0]]))
        if pos.size:
            in_string, depth = int(inside[-1]), int(level[-1])
    return None
