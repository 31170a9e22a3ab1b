"""Which run a command acts on when given no path: the run the last `spdc compress` finished in this working
directory (recorded atomically in runs/latest.json), or the run of a recipe given in place of a run directory."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from spdc.core.atomic import atomic_write_text
from spdc.core.errors import ArtifactError
from spdc.core.outputs import check_output_file

LATEST_FILE = Path("runs") / "latest.json"
RECIPE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class ResolvedRun:
    """A run directory and how it was chosen (printed, so the user sees which run a command picked)."""

    path: Path
    reason: str


def record_latest(run_dir: Path, recipe_file: Path | None) -> None:
    document = {
        "run_dir": str(run_dir.resolve()),
        "recipe": str(recipe_file.resolve()) if recipe_file else None,
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    check_output_file(LATEST_FILE, signature=b'"run_dir"', what="latest-run record")
    atomic_write_text(LATEST_FILE, json.dumps(document, indent=2) + "\n")


def latest_run() -> ResolvedRun:
    try:
        document = json.loads(LATEST_FILE.read_text(encoding="utf-8"))
        path = Path(document["run_dir"])
    except FileNotFoundError:
        raise ArtifactError(f"no path given and no `spdc compress` has finished in {Path.cwd()} ({LATEST_FILE} "
                            "is missing): name a run directory or a recipe") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"cannot read {LATEST_FILE}: {exc}") from None
    if not path.is_dir():
        raise ArtifactError(f"{LATEST_FILE} points to {path}, which no longer exists: name a run directory")
    return ResolvedRun(path, f"the run the last `spdc compress` finished here ({LATEST_FILE})")


def resolve_run(path: Path | None) -> ResolvedRun:
    """None: the latest run; a recipe file: the run directory that recipe writes; anything else as given."""
    if path is None:
        return latest_run()
    if path.suffix in RECIPE_SUFFIXES and path.is_file():
        from spdc.recipe.loading import load_recipe

        return ResolvedRun(load_recipe(path).resolved_output_dir(), f"the run directory of recipe {path}")
    return ResolvedRun(path, "given")
