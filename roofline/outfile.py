"""Writing a file a user names: the one way roofline writes an output (a profile, a plot, a report's files, a
workbook, a CSV).

`write_bytes` / `write_text` write to a temporary file in the target's folder, flush it to disk and rename it
over the target, so the target is either the old file or the whole new one, never half written. The target
must be a new path or a regular file: a symbolic link (the rename would replace the link, and writing through
it would change a file the user did not name), a directory, a FIFO, a device or a socket is refused before
anything is written, and checked again just before the rename. An existing regular file is replaced only when
the caller says the command's semantics are to overwrite (`overwrite=True`: a report regenerating its own
files); otherwise it is kept and the error says how to replace it (`force`). Every failure, a full disk or a
folder without write permission included, is one RooflineError naming the user's path (never the temporary
file's), and the temporary file is removed."""
from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from roofline.errors import RooflineError

_NOT_REGULAR = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"),
                (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
#: errno -> what to do about it
_HINTS = {errno.ENOSPC: "the disk is full: free some space, or write to another disk",
          errno.EDQUOT: "your disk quota is used up: free some space, or write to another disk",
          errno.EACCES: "you may not write there: choose a folder you can write to",
          errno.EPERM: "you may not write there: choose a folder you can write to",
          errno.EROFS: "that file system is read-only: choose another folder",
          errno.ENAMETOOLONG: "the name is too long: choose a shorter file name",
          errno.EISDIR: "that path is a directory: name a file inside it"}
_DEFAULT_HINT = "choose a file in a folder you can write to"


def check_target(path: str | Path, overwrite: bool, what: str = "file") -> Path:
    """`path` (with ~ expanded) if roofline may write `what` there: a new path, or an existing regular file
    when `overwrite`; RooflineError (exit code 2) naming the path otherwise. Nothing is written."""
    if not str(path).strip():
        raise RooflineError(f"the {what} path is empty", hint=f"pass the path of the {what} to write", exit_code=2)
    p = Path(path).expanduser()
    try:
        st = os.lstat(p)  # lstat: a symbolic link is reported as itself, not as what it points to
    except (FileNotFoundError, NotADirectoryError):
        return p
    except ValueError:  # an embedded NUL character
        raise RooflineError(f"{what} path {str(path)!r} is not a valid path", hint=f"pass the path of the {what} "
                            "to write", exit_code=2) from None
    except OSError as e:
        raise _write_error(p, e) from None
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _NOT_REGULAR if test(st.st_mode)), "not a regular file")
        hint = ("name the file itself (roofline does not write through a link)" if stat.S_ISLNK(st.st_mode) else
                f"name a file inside it, e.g. {p / ('output' + (p.suffix or ''))}" if stat.S_ISDIR(st.st_mode) else
                "roofline writes only regular files: name a new file")
        raise RooflineError(f"will not write the {what} to {p}: it is {kind}, not a regular file", hint=hint,
                            exit_code=2)
    if not overwrite:
        raise RooflineError(f"{p} already exists; the {what} is not written over it",
                            hint="choose another path, or pass `force` to replace the file", exit_code=2)
    return p


def write_bytes(path: str | Path, data: bytes, overwrite: bool, what: str = "file") -> Path:
    """Write `data` to `path` atomically (see the module docstring); returns the path written."""
    p = check_target(path, overwrite, what)
    make_folder(p.parent, p)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name[:60]}.", suffix=".tmp", dir=p.parent)
    except OSError as e:
        raise _write_error(p, e) from None
    try:
        try:
            mode = stat.S_IMODE(os.stat(p).st_mode)  # replacing a file keeps its permissions
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask  # mkstemp makes 0600; an output is an ordinary file
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            fd = -1
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        check_target(p, overwrite, what)  # again: the path may have become a link or a FIFO meanwhile
        os.replace(tmp, p)
    except BaseException as e:
        if fd != -1:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise _write_error(p, e) from None
        raise
    return p


def write_text(path: str | Path, text: str, overwrite: bool, what: str = "file") -> Path:
    """Write `text` as UTF-8 to `path` atomically (see write_bytes); returns the path written."""
    return write_bytes(path, text.encode("utf-8"), overwrite, what)


def make_folder(folder: str | Path, for_path: str | Path | None = None) -> Path:
    """Create `folder` and its parents if missing; RooflineError naming `for_path` (the file to be written
    there; default: the folder) and the file in the way when a part of the path is a file, or the system's
    reason."""
    folder = Path(folder).expanduser()
    target = Path(for_path) if for_path is not None else folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((a for a in (*reversed(folder.parents), folder) if a.exists() and not a.is_dir()), folder)
        raise RooflineError(f"cannot write {target}: {blocker} is a file, not a folder",
                            hint="choose a path whose folders are folders (or new)") from None
    except OSError as e:
        raise _write_error(target, e) from None
    return folder


def _write_error(p: Path, e: OSError) -> RooflineError:
    """One RooflineError for an OSError while writing `p`: the user's path and the system's reason, never the
    name of a temporary file."""
    return RooflineError(f"cannot write {p}: {e.strerror or type(e).__name__}", hint=_HINTS.get(e.errno, _DEFAULT_HINT))
