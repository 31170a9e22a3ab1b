"""The record of what spdc wrote: every output folder spdc creates (run directory, artifact, folded model, report
plots) holds a marker, `.spdc-output.json`, naming its kind and every file spdc wrote into it, at any depth, with
its size. Writes through `spdc.core.atomic` keep the record current as they land; removal reads it, so ownership
is never guessed from file names.

This module also holds the one raw staged write (temp file beside the destination, fsync, rename) that both the
marker and `spdc.core.atomic` use; it records nothing itself.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from spdc.core.errors import OutputError
from spdc.core.version import VERSION

MARKER_FILE = ".spdc-output.json"
RECORD_FORMAT = 2  # markers of format 1 (spdc 0.1) named the kind but not the files
# `.<destination>.<pid>.<8 random characters>.tmp` (a file or folder being staged) and `.<destination>.<pid>.old`
# (a destination moved aside during a swap): the only names spdc gives to what is not yet recorded
STAGING = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.(?:[a-z0-9_]{8}\.tmp|old)$")


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_error(path: Path, error: OSError) -> OutputError:
    """An OSError while writing `path`, as the OutputError users read (exit 8)."""
    reason = {errno.ENOSPC: "no space left on the device", errno.EROFS: "the file system is read-only",
              errno.EACCES: "permission denied", errno.EDQUOT: "disk quota exceeded",
              errno.ENAMETOOLONG: "the path is longer than the system allows"}.get(
        error.errno or 0, error.strerror or str(error))
    return OutputError(f"cannot write {path}: {reason}", reason=reason)


def staging_prefix(path: Path) -> str:
    return f".{path.name}.{os.getpid()}."


def staging_owner(name: str) -> tuple[str, int] | None:
    """(destination name, writer pid) of a staging name, or None for any other name."""
    match = STAGING.match(name)
    return (match["name"], int(match["pid"])) if match else None


def is_staging_path(path: Path) -> bool:
    """Whether `path` lies inside a folder being staged (its files are recorded when the folder lands)."""
    return any(staging_owner(part) is not None for part in path.parts)


def replace_file(path: Path, data: bytes) -> None:
    """Write `data` to a temp file beside `path`, fsync it, give it the umask's permissions, rename it over
    `path`. Records nothing."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=staging_prefix(path), suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise write_error(path, error) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(error, OSError):
            raise write_error(path, error) from None
        raise


def read_marker(folder: Path) -> dict[str, Any] | None:
    """The marker document of `folder`, or None when it has none or it cannot be read as one."""
    try:
        document = json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return document if isinstance(document, dict) and isinstance(document.get("kind"), str) else None


def listed(names: list[str]) -> str:
    """The first few of `names` for a message, and how many there are in all."""
    return ", ".join(names[:3]) + (f", ... ({len(names)} in all)" if len(names) > 3 else "")


def _files_of(document: dict[str, Any] | None) -> dict[str, int] | None:
    """The record of a marker document: relative path -> size; None when it keeps none."""
    if document is None or document.get("record") != RECORD_FORMAT or not isinstance(document.get("files"), dict):
        return None
    files = document["files"]
    if not all(isinstance(key, str) and isinstance(size, int) for key, size in files.items()):
        return None
    return dict(files)


def recorded_files(folder: Path) -> dict[str, int] | None:
    """Relative path -> size of every file spdc recorded in `folder`; None for a folder without a record (not
    spdc's, or written by an spdc that kept none)."""
    return _files_of(read_marker(folder))


def write_marker(folder: Path, kind: str, files: dict[str, int]) -> None:
    document = {"kind": kind, "spdc": VERSION, "record": RECORD_FORMAT, "files": dict(sorted(files.items()))}
    replace_file(folder / MARKER_FILE, (json.dumps(document, indent=1) + "\n").encode("utf-8"))


def _enclosing_record(path: Path) -> tuple[Path, str, dict[str, int]] | None:
    """The nearest folder above `path` that is a recorded spdc output, its kind and its record (the marker read
    once); None outside one, or inside a folder still being staged."""
    if is_staging_path(path.parent):
        return None
    for folder in path.parents:
        if (folder / MARKER_FILE).is_file():
            document = read_marker(folder)
            files = _files_of(document)
            return (folder, document["kind"], files) if document is not None and files is not None else None
    return None


def walk_output(folder: Path) -> tuple[dict[str, int], list[Path]]:
    """Relative path -> size of every file and link below `folder`, at any depth, and the nested outputs found
    there (folders with their own marker: they keep their own record, so their contents are not listed)."""
    found: dict[str, int] = {}
    nested: list[Path] = []
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        kept = []
        for name in dirs:
            entry = here / name
            if entry.is_symlink():
                files.append(name)
            elif (entry / MARKER_FILE).is_file():
                nested.append(entry)
            else:
                kept.append(name)
        dirs[:] = kept
        for name in files:
            if here == folder and name == MARKER_FILE:
                continue
            entry = here / name
            found[entry.relative_to(folder).as_posix()] = entry.lstat().st_size
    return found, nested


def unrecorded_below(path: Path, *, stale: Callable[[Path], bool] = lambda _: False) -> list[str]:
    """What lies in `path` (an output, or a folder inside one) that spdc did not record there, at any depth:
    relative paths, with `(changed)` after a recorded file whose size is no longer the one spdc wrote. Entries
    for which `stale` is true (a dead writer's staging) count as spdc's. A folder outside any output is all
    foreign; an output without a record is reported as such (callers refuse to replace it)."""
    if (path / MARKER_FILE).is_file():
        root, prefix = path, ""
    else:
        marked = next((folder for folder in path.parents if (folder / MARKER_FILE).is_file()), None)
        if marked is None:
            return sorted(walk_output(path)[0]) if path.is_dir() else []
        if recorded_files(marked) is None:
            return []  # a folder of a run an older spdc started, being resumed: its own layout, as it was then
        root, prefix = marked, path.relative_to(marked).as_posix() + "/"
    record = recorded_files(root)
    if record is None:
        return ["(no record of the files spdc wrote)"]
    found, nested = walk_output(path)
    foreign = []
    for name, size in found.items():
        entry = path / name
        if prefix + name not in record:
            if not any(stale(part) for part in [entry, *entry.parents] if path in part.parents):
                foreign.append(name)
        elif record[prefix + name] != size:
            foreign.append(f"{name} (changed)")
    for folder in nested:
        if stale(folder):
            continue
        base = folder.relative_to(path).as_posix()
        foreign += [f"{base}/{name}" for name in unrecorded_below(folder, stale=stale)]
    return sorted(foreign)


def update_record(path: Path, *, written: bool) -> None:
    """Record (`written`) or forget `path`, a file or folder just written or removed, in the output around it.
    A folder that is itself an output keeps its own record, so its parent's record only forgets what it held."""
    enclosing = _enclosing_record(path)
    if enclosing is None:
        return
    output, kind, files = enclosing
    relative = path.relative_to(output).as_posix()
    files = {name: size for name, size in files.items() if name != relative and not name.startswith(relative + "/")}
    if written and path.is_dir() and not path.is_symlink():
        if not (path / MARKER_FILE).is_file():
            files.update({f"{relative}/{name}": size for name, size in walk_output(path)[0].items()})
    elif written and os.path.lexists(path):
        files[relative] = path.lstat().st_size
    write_marker(output, kind, files)
