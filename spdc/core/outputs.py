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
# What a run directory and a report's plots folder hold; entries are added over time, so these kinds list their
# layout here, while artifacts and folded models record their files in the marker when they are complete.
KNOWN_ENTRIES: dict[str, frozenset[str]] = {
    "run": frozenset({MARKER_FILE, "recipe.yaml", "environment.json", "metrics.jsonl", "summary.json",
                      "checkpoints", "model", "train_dev.png", "report.md", "report-plots"}),
    "plots": frozenset({MARKER_FILE, "train_dev.png", "losses.png", "schedule.png", "layers.png", "compare.png",
                        "frontier.png"}),
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
    """Record in `path` that spdc created it as an output of `kind`; for a complete output (artifact, model),
    with the names of the files it holds."""
    document: dict[str, object] = {"kind": kind, "spdc": VERSION}
    if kind not in KNOWN_ENTRIES:
        document["files"] = [*sorted(entry.name for entry in path.iterdir()), MARKER_FILE]
    atomic_write_text(path / MARKER_FILE, json.dumps(document) + "\n")


def _recorded_files(path: Path) -> set[str] | None:
    try:
        files = json.loads((path / MARKER_FILE).read_text(encoding="utf-8")).get("files")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None
    return set(files) if isinstance(files, list) else None


def foreign_entries(path: Path, kind: str) -> list[str]:
    """Entries of spdc output `path` that spdc did not write there (a user's notes, say): replacing the folder
    would delete them."""
    known = KNOWN_ENTRIES.get(kind) or _recorded_files(path)
    if known is None:  # an output of spdc 0.1: its layout was not recorded
        return []
    foreign = []
    for entry in path.iterdir():
        staging = entry.name.startswith(".") and entry.name.endswith((".tmp", ".old"))
        nested_output = entry.is_dir() and output_kind(entry) is not None
        if entry.name not in known and not staging and not nested_output:
            foreign.append(entry.name)
    return sorted(foreign)


def _is_within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_output(path: Path, kind: OutputKind, *, inputs: Iterable[Path] = (), replace: bool,
                 what: str = "output", how_to_replace: str = "--overwrite replaces it") -> None:
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
        raise OutputError(f"{what} {path} already exists; {how_to_replace}")
    foreign = foreign_entries(path, kind)
    if foreign:
        raise OutputError(f"{what} {path} holds files spdc did not write ({', '.join(foreign[:3])}"
                          f"{', ...' if len(foreign) > 3 else ''}): replacing it would delete them; move them out or "
                          "choose another location")


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

    if output_kind(path) != kind or foreign_entries(path, kind):
        raise OutputError(f"refusing to delete {path}: it is not only an spdc {kind}")
    shutil.rmtree(path)


def writable_parent(path: Path) -> None:
    """Fail early, naming the folder, when the output's parent cannot be written."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: {parent} is not writable")
