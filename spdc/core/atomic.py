"""Atomic file and directory writes: a crash leaves either the old content or the new, never half of one, and
every write inside an spdc output is recorded in that output's marker (see `spdc.core.record`) as it lands.

Staging always happens beside the destination (same folder, so the final rename never crosses filesystems),
under a name that carries the writer's process id: `.<name>.<pid>.<random>.tmp`. A later write to the same
destination removes such leftovers whose process is gone, and puts back a destination that a kill caught
between the two renames of a swap (`.<name>.<pid>.old`). Files and folders get the permissions the user's
umask allows, like any file the user creates, whichever library wrote them. A destination that is a symbolic
link is followed: the link stays, its target is written. Failures to write (read-only folder, full disk) are
`OutputError`s naming the destination.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from spdc.core.errors import OutputError
from spdc.core.record import (
    listed,
    replace_file,
    staging_owner,
    staging_prefix,
    umask,
    unrecorded_below,
    update_record,
    write_error,
)


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


def is_stale_staging(entry: Path) -> bool:
    """A staging file or folder, or a swapped-out destination, left by an spdc process that is gone."""
    owner = staging_owner(entry.name)
    return owner is not None and not _pid_alive(owner[1])


def recover(path: Path) -> None:
    """Clean what a killed writer left beside `path`: put back a swapped-out destination, drop stale staging."""
    parent = path.parent
    if not parent.is_dir():
        return
    for leftover in parent.iterdir():
        owner = staging_owner(leftover.name)
        if owner is None or owner[0] != path.name or _pid_alive(owner[1]):
            continue
        if leftover.name.endswith(".old") and not os.path.lexists(path):
            os.replace(leftover, path)
        elif leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def _followed(path: Path) -> Path:
    """Where a write to `path` lands: the target of a symbolic link, the path itself otherwise."""
    if not path.is_symlink():
        return path
    target = path.resolve()
    if not target.parent.is_dir():
        raise OutputError(f"cannot write {path}: it is a symbolic link to {target}, whose folder does not exist")
    return target


def ensure_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"cannot write {path}: a file of that name is in the way") from None
    except OSError as error:
        raise write_error(path, error) from None


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to a temp file beside `path`, fsync it, then rename it over `path`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    ensure_dir(path.parent)
    path = _followed(path)
    recover(path)
    replace_file(path, data)
    update_record(path, written=True)


def atomic_append_text(path: Path, text: str) -> None:
    """Append by writing old content + `text` to a new file and renaming it over `path`: a kill mid-append
    leaves the previous content whole (appending in place could leave a torn last line)."""
    old = path.read_bytes() if path.is_file() else b""
    atomic_write_bytes(path, old + text.encode("utf-8"))


def _apply_umask(folder: Path) -> None:
    """Libraries stage their files with mkstemp (mode 0600); give everything the permissions of the umask."""
    mask = umask()
    os.chmod(folder, 0o777 & ~mask)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(Path(root) / name, 0o777 & ~mask)
        for name in files:
            entry = Path(root) / name
            if not entry.is_symlink():
                os.chmod(entry, (0o777 if os.access(entry, os.X_OK) else 0o666) & ~mask)


def remove_recorded(path: Path) -> None:
    """Delete what spdc recorded under `path` (a folder inside an output), then the folders left empty; anything
    else stays where it is."""
    unrecorded = set(unrecorded_below(path))
    if not unrecorded:
        shutil.rmtree(path, ignore_errors=True)
    else:
        for root, dirs, files in os.walk(path, topdown=False):
            for name in files:
                entry = Path(root) / name
                if entry.relative_to(path).as_posix() not in unrecorded:
                    entry.unlink(missing_ok=True)
            for name in dirs:
                with contextlib.suppress(OSError):
                    (Path(root) / name).rmdir()
    update_record(path, written=False)


@contextlib.contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield a staging directory beside `path` to fill; on success it replaces `path`. An existing `path` is
    replaced only when everything in it is recorded as spdc's (callers of outputs check this earlier; this is
    the last guard, for folders inside an output such as a run's model/)."""
    ensure_dir(path.parent)
    path = _followed(path)
    recover(path)
    try:
        staging = Path(tempfile.mkdtemp(prefix=staging_prefix(path), suffix=".tmp", dir=path.parent))
    except OSError as error:
        raise write_error(path, error) from None
    try:
        yield staging
        _apply_umask(staging)
        if path.is_dir():
            foreign = unrecorded_below(path, stale=is_stale_staging)
            if foreign:
                raise OutputError(f"refusing to replace {path}: it holds files spdc did not write "
                                  f"({listed(foreign)}); move them out")
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError):
            raise write_error(path, error) from None
        if isinstance(error, OutputError) and error.reason:  # name the destination, not the staging folder
            raise OutputError(f"cannot write {path}: {error.reason}", reason=error.reason) from None
        raise
    old = path.with_name(f"{staging_prefix(path)}old")
    try:
        if path.exists():
            os.replace(path, old)
        os.replace(staging, path)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise write_error(path, error) from None
    shutil.rmtree(old, ignore_errors=True)
    update_record(path, written=True)
