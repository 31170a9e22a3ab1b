"""What spdc may write over. Every folder spdc creates as an output carries a marker naming its kind (run
directory, export artifact, folded model, report plots) and recording every file spdc wrote into it, at any
depth, with its size (`spdc.core.record`). Replacing an existing output requires that record and that nothing
else is there: a file spdc did not write, or one changed since, makes spdc refuse and name it. Outputs of an
spdc that kept no record are refused, never guessed. An output may never be an input, the working directory,
a parent of either, or a plain file; a symbolic link to a folder is followed (the link stays, its target is
the output). While spdc writes an output it holds a lock on it, so a second spdc process is refused with the
first one's pid instead of writing into (or deleting) the same folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from spdc.core.atomic import is_stale_staging
from spdc.core.errors import OutputError
from spdc.core.record import (
    listed,
    read_marker,
    recorded_files,
    unrecorded_below,
    walk_output,
    write_error,
    write_marker,
)

OutputKind = Literal["run", "artifact", "model", "plots"]


def output_kind(path: Path) -> str | None:
    """The kind of spdc output `path` is, or None when spdc did not create it."""
    document = read_marker(path)
    return document["kind"] if document is not None else None


def mark_output(path: Path, kind: OutputKind) -> None:
    """Record in `path` that spdc created it as an output of `kind`, with every file it holds now (all of it
    spdc's: a staging folder about to land, or a folder just created). Later writes add themselves."""
    write_marker(path, kind, walk_output(path)[0])


def foreign_entries(path: Path) -> list[str]:
    """What replacing spdc output `path` would delete that spdc did not write there (relative paths)."""
    return unrecorded_below(path, stale=is_stale_staging)


def _is_within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_output(path: Path, kind: OutputKind, *, inputs: Iterable[Path] = (), replace: bool,
                 what: str = "output", how_to_replace: str = "--overwrite replaces it") -> Path:
    """Refuse `path` as an output of `kind` unless it is safe: not a plain file, not the working directory, an
    input or a parent of one; when it exists and is not empty, only an spdc output of the same kind that holds
    nothing but what spdc recorded, and only when `replace` is allowed. Returns where the output lies (a
    symbolic link's target)."""
    try:
        return _check_output(path, kind, inputs=inputs, replace=replace, what=what, how_to_replace=how_to_replace)
    except OSError as error:  # a name too long, a folder that cannot be listed
        raise write_error(path, error) from None


def _check_output(path: Path, kind: OutputKind, *, inputs: Iterable[Path], replace: bool, what: str,
                  how_to_replace: str) -> Path:
    resolved = path.resolve()
    if path.is_symlink() and not resolved.exists():
        raise OutputError(f"{what} {path} is a symbolic link to {resolved}, which does not exist")
    location = resolved if path.is_symlink() else path  # as the user named it, unless it is a link to follow
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path} is a file, not a folder; choose another location")
    cwd = Path.cwd().resolve()
    if _is_within(cwd, resolved):
        raise OutputError(f"{what} {path} is the working directory or one of its parents; choose a subfolder")
    for source in inputs:
        source_resolved = source.resolve()
        if _is_within(source_resolved, resolved):
            raise OutputError(f"{what} {path} is an input ({source}) or contains it; choose another location")
    if not location.is_dir() or not any(location.iterdir()):
        return location
    found = output_kind(location)
    if found != kind:
        owner = "was not created by spdc" if found is None else f"is an spdc {found}, not an spdc {kind}"
        raise OutputError(f"{what} {path} already exists and {owner}: refusing to replace it; "
                          "choose another location")
    if recorded_files(location) is None:
        raise OutputError(f"{what} {path} was written by an older spdc that kept no record of its files: refusing "
                          "to guess what is safe to delete; remove it yourself or choose another location")
    if not replace:
        raise OutputError(f"{what} {path} already exists; {how_to_replace}")
    foreign = foreign_entries(location)
    if foreign:
        raise OutputError(f"{what} {path} holds files spdc did not write ({listed(foreign)}): replacing it would "
                          "delete them; move them out or choose another location")
    return location


def check_output_file(path: Path, *, inputs: Iterable[Path] = (), signature: bytes, what: str) -> None:
    """A single file spdc writes (a report, a plot): never a folder or an input; an existing file is replaced only
    when it starts with `signature` (spdc wrote it)."""
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder; name a file")
    for source in inputs:
        if path.resolve() == source.resolve():
            raise OutputError(f"{what} {path} is an input; choose another file")
    if path.exists():
        with path.open("rb") as handle:
            head = handle.read(4096)
        if signature not in head:
            raise OutputError(f"{what} {path} already exists and was not written by spdc: refusing to replace it")


def remove_output(path: Path, kind: OutputKind) -> None:
    """Delete an output folder that `check_output` accepted (never anything else)."""
    foreign = foreign_entries(path) if output_kind(path) == kind else ["(not an spdc output)"]
    if foreign:
        raise OutputError(f"refusing to delete {path}: it is not only an spdc {kind} ({listed(foreign)})")
    shutil.rmtree(path)


def writable_parent(path: Path) -> None:
    """Fail early, naming the folder, when the output's parent cannot be written."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: {parent} is not writable")


_HELD: dict[Path, tuple[int, int]] = {}  # locks this process holds: path -> (file descriptor, depth)


def _lock_file(path: Path) -> Path:
    """Where the lock of an output lives: outside the user's folders, keyed by the output's real path."""
    folder = Path(tempfile.gettempdir()) / f"spdc-locks-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / (hashlib.sha256(str(path).encode()).hexdigest()[:32] + ".lock")


@contextlib.contextmanager
def output_lock(path: Path, *, what: str = "output") -> Iterator[None]:
    """Hold `path` for this process while it writes there; another spdc process that holds it already is named in
    the OutputError. Re-entrant within a process; released when the block ends or the process dies."""
    key = path.resolve()
    if key in _HELD:
        fd, depth = _HELD[key]
        _HELD[key] = (fd, depth + 1)
    else:
        fd = os.open(_lock_file(key), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode("utf-8", "replace")
            os.close(fd)
            try:
                pid = json.loads(holder).get("pid")
            except (json.JSONDecodeError, AttributeError):
                pid = None
            raise OutputError(f"{what} {path} is in use by another spdc process"
                              f"{f' (pid {pid})' if pid else ''}: wait for it to finish, or stop it first"
                              ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "path": str(key)}).encode())
        _HELD[key] = (fd, 1)
    try:
        yield
    finally:
        fd, depth = _HELD[key]
        if depth > 1:
            _HELD[key] = (fd, depth - 1)
        else:
            del _HELD[key]
            os.close(fd)
