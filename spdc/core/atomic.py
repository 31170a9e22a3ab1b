"""Atomic file and directory writes: a crash leaves either the old content or the new, never half of one.

Staging always happens beside the destination (same folder, so the final rename never crosses filesystems),
under a name that carries the writer's process id: `.<name>.<pid>.<random>.tmp`. A later write to the same
destination removes such leftovers whose process is gone, and puts back a destination that a kill caught
between the two renames of a swap (`.<name>.<pid>.old`). Files and folders get the permissions the user's
umask allows, like any file the user creates. Failures to write (read-only folder, full disk) are
`OutputError`s naming the destination.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from spdc.core.errors import OutputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_pid(name: str, destination: str) -> int | None:
    """The pid in `.<destination>.<pid>.<...>` names, or None for names that are not ours."""
    prefix = f".{destination}."
    if not name.startswith(prefix):
        return None
    pid = name[len(prefix):].split(".", 1)[0]
    return int(pid) if pid.isdigit() else None


def recover(path: Path) -> None:
    """Clean what a killed writer left beside `path`: put back a swapped-out destination, drop stale staging."""
    parent = path.parent
    if not parent.is_dir():
        return
    for leftover in parent.iterdir():
        pid = _owner_pid(leftover.name, path.name)
        if pid is None or _pid_alive(pid):
            continue
        if leftover.name.endswith(".old") and not path.exists():
            os.replace(leftover, path)
        elif leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def _staging_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


def _write_error(path: Path, error: OSError) -> OutputError:
    reason = {errno.ENOSPC: "no space left on the device", errno.EROFS: "the file system is read-only",
              errno.EACCES: "permission denied", errno.EDQUOT: "disk quota exceeded"}.get(
        error.errno or 0, error.strerror or str(error))
    return OutputError(f"cannot write {path}: {reason}", reason=reason)


def ensure_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _write_error(path, error) from None


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to a temp file beside `path`, fsync it, then rename it over `path`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    ensure_dir(path.parent)
    recover(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=_staging_prefix(path), suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise _write_error(path, error) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(error, OSError):
            raise _write_error(path, error) from None
        raise


def atomic_append_text(path: Path, text: str) -> None:
    """Append by writing old content + `text` to a new file and renaming it over `path`: a kill mid-append
    leaves the previous content whole (appending in place could leave a torn last line)."""
    old = path.read_bytes() if path.is_file() else b""
    atomic_write_bytes(path, old + text.encode("utf-8"))


@contextlib.contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield a staging directory beside `path` to fill; on success it replaces `path` (which callers have
    checked is spdc's own output, see `spdc.core.outputs`)."""
    ensure_dir(path.parent)
    recover(path)
    try:
        staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(path), suffix=".tmp", dir=path.parent))
        os.chmod(staging, 0o777 & ~_umask())
    except OSError as error:
        raise _write_error(path, error) from None
    try:
        yield staging
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError):
            raise _write_error(path, error) from None
        if isinstance(error, OutputError) and error.reason:  # name the destination, not the staging folder
            raise OutputError(f"cannot write {path}: {error.reason}", reason=error.reason) from None
        raise
    old = path.with_name(f"{_staging_prefix(path)}old")
    try:
        if path.exists():
            os.replace(path, old)
        os.replace(staging, path)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise _write_error(path, error) from None
    shutil.rmtree(old, ignore_errors=True)
