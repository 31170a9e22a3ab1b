"""What spdc may write over. Every folder spdc creates as an output carries a marker file naming its kind (run
directory, export artifact, folded model, report plots); replacing an existing output requires that marker
(or, for outputs of spdc 0.1, the files only spdc writes), so spdc never deletes or replaces what it did not
create. An output may never be an input, the working directory, a parent of either, or a plain file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from spdc.core.atomic import atomic_write_text
from spdc.core.errors import OutputError
from spdc.core.version import VERSION

MARKER_FILE = ".spdc-output.json"
OutputKind = Literal["run", "artifact", "model", "plots"]
# Outputs written before markers existed are recognised by files only spdc writes.
_LEGACY_SIGNS: dict[str, tuple[str, ...]] = {
    "run": ("recipe.yaml", "environment.json"),
    "artifact": ("spdc_manifest.json", "model.onnx"),
}


def output_kind(path: Path) -> str | None:
    """The kind of spdc output `path` is, or None when spdc did not create it."""
    marker = path / MARKER_FILE
    if marker.is_file():
        try:
            kind = json.loads(marker.read_text(encoding="utf-8")).get("kind")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            return None
        return kind if isinstance(kind, str) else None
    for kind, files in _LEGACY_SIGNS.items():
        if all((path / name).is_file() for name in files):
            return kind
    return None


def mark_output(path: Path, kind: OutputKind) -> None:
    """Record in `path` (a folder being written) that spdc created it as an output of `kind`."""
    atomic_write_text(path / MARKER_FILE, json.dumps({"kind": kind, "spdc": VERSION}) + "\n")


def _is_within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_output(path: Path, kind: OutputKind, *, inputs: Iterable[Path] = (), replace: bool,
                 what: str = "output", replace_flag: str = "--overwrite") -> None:
    """Refuse `path` as an output of `kind` unless it is safe: not a plain file, not the working directory, an
    input or a parent of one; when it exists and is not empty, only an spdc output of the same kind, and only
    when `replace` is allowed."""
    resolved = path.resolve()
    if path.exists() and not path.is_dir():
        raise OutputError(f"{what} {path} is a file, not a folder; choose another location")
    cwd = Path.cwd().resolve()
    if _is_within(cwd, resolved):
        raise OutputError(f"{what} {path} is the working directory or one of its parents; choose a subfolder")
    for source in inputs:
        source_resolved = source.resolve()
        if _is_within(source_resolved, resolved):
            raise OutputError(f"{what} {path} is an input ({source}) or contains it; choose another location")
    if not path.is_dir() or not any(path.iterdir()):
        return
    found = output_kind(path)
    if found != kind:
        owner = "was not created by spdc" if found is None else f"is an spdc {found}, not an spdc {kind}"
        raise OutputError(f"{what} {path} already exists and {owner}: refusing to replace it; "
                          "choose another location")
    if not replace:
        raise OutputError(f"{what} {path} already exists; {replace_flag} replaces it")


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
    import shutil

    if output_kind(path) != kind:
        raise OutputError(f"refusing to delete {path}: it is not an spdc {kind}")
    shutil.rmtree(path)


def writable_parent(path: Path) -> None:
    """Fail early, naming the folder, when the output's parent cannot be written."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: {parent} is not writable")
