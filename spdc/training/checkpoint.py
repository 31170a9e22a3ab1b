"""Resumable checkpoints: model (safetensors), optimizer + scheduler + RNG state, and a JSON header with the step,
the recipe fingerprint and a checksum per file. Written to a temp directory and renamed, then `latest` is switched
atomically, so a kill at any moment leaves a complete checkpoint behind."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_model, save_model

from spdc.core.atomic import atomic_directory, atomic_write_text, remove_recorded
from spdc.core.errors import CheckpointError, OutputError

FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
STATE_FILE = "trainer_state.pt"
HEADER_FILE = "checkpoint.json"
LATEST_FILE = "latest"
STEP_NAME = re.compile(r"step-\d{8}")


@dataclass
class TrainerProgress:
    """Loop counters that must survive a restart."""

    step: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    best_eval: dict[str, float] | None = None  # dev metrics of the best model
    best_validation: dict[str, float] | None = None  # its validation metrics, when it was selected on them
    train_seconds: float = 0.0


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class RestoredCheckpoint:
    progress: TrainerProgress
    stage: int
    stage_step: int
    extra: dict[str, Any]


def save_checkpoint(
    directory: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    progress: TrainerProgress,
    fingerprint: str,
    stage: int = 0,
    stage_step: int | None = None,
    extra: dict[str, Any] | None = None,
    world_size: int = 1,
) -> Path:
    """Write checkpoints/step-N atomically, point `latest` at it, and remove older checkpoints.

    `extra` holds a method's own state (masks, criterion accumulators): tensors and plain values only.
    """
    name = f"step-{progress.step:08d}"
    target = directory / name
    with atomic_directory(target) as tmp, _write_failures(target):
        save_model(model, str(tmp / MODEL_FILE))
        state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "extra": extra or {},
        }
        torch.save(state, tmp / STATE_FILE)
        header = {
            "format": FORMAT_VERSION,
            "fingerprint": fingerprint,
            "progress": asdict(progress),
            "stage": stage,
            "stage_step": progress.step if stage_step is None else stage_step,
            "world_size": world_size,
            "sha256": {file: _sha256(tmp / file) for file in (MODEL_FILE, STATE_FILE)},
        }
        (tmp / HEADER_FILE).write_text(json.dumps(header, indent=2), encoding="utf-8")
    atomic_write_text(directory / LATEST_FILE, name + "\n")
    for old in directory.glob("step-*"):
        if old.name != name:
            remove_recorded(old)
    return target


@contextlib.contextmanager
def _write_failures(target: Path) -> Iterator[None]:
    """safetensors and torch.save report a failed write (a full disk, say) as their own errors, not OSError:
    name the checkpoint and the cause, as every other failed write does (exit 8)."""
    try:
        yield
    except (RuntimeError, SafetensorError) as exc:
        if shutil.disk_usage(target.parent).free < 1 << 20:
            reason = "no space left on the device"
        else:
            reason = str(exc).strip().splitlines()[0][:300]
        raise OutputError(f"cannot write checkpoint {target}: {reason}", reason=reason) from None


def latest_checkpoint(directory: Path) -> Path | None:
    pointer = directory / LATEST_FILE
    if not pointer.is_file():
        return None
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        raise CheckpointError(f"{pointer} is unreadable (not a checkpoint name)") from None
    if not STEP_NAME.fullmatch(name):
        raise CheckpointError(f"{pointer} does not name a checkpoint ({name[:40]!r}; expected step-NNNNNNNN)")
    target = directory / name
    if not target.is_dir():
        raise CheckpointError(f"{pointer} points to {target.name}, which does not exist")
    return target


class _Header(BaseModel):
    """The shape checkpoint.json must have; anything else is a corrupt checkpoint, not a traceback."""

    model_config = ConfigDict(extra="allow")

    format: int
    fingerprint: str
    progress: dict[str, Any]
    stage: int = Field(ge=0)
    stage_step: int = Field(ge=0)
    world_size: int = Field(default=1, ge=1)
    sha256: dict[str, str]


def read_header(path: Path) -> dict[str, Any]:
    """The JSON header of a checkpoint (stage, step, fingerprint) without loading any tensor."""
    try:
        header = _Header.model_validate(json.loads((path / HEADER_FILE).read_text(encoding="utf-8")))
        TrainerProgress(**header.progress)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path}: unreadable {HEADER_FILE} ({exc})") from None
    except (ValidationError, TypeError) as exc:
        problem = str(exc).splitlines()[0] if isinstance(exc, TypeError) else _first_error(exc)
        raise CheckpointError(f"checkpoint {path}: {HEADER_FILE} is not a checkpoint header ({problem})") from None
    return header.model_dump()


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    return f"{'.'.join(map(str, first['loc'])) or 'document'}: {first['msg']}"


def load_checkpoint(
    path: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    fingerprint: str,
    world_size: int = 1,
) -> RestoredCheckpoint:
    """Restore everything `save_checkpoint` wrote; any inconsistency is a CheckpointError naming the file."""
    header = read_header(path)
    if header["world_size"] != world_size:
        raise CheckpointError(
            f"checkpoint {path} was written by a run of {header.get('world_size', 1)} process(es), this one has "
            f"{world_size}: resume with the same torchrun --nproc_per_node (the split of each batch and the "
            "optimizer state follow it), or start a new run")
    if header.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path}: unsupported format {header.get('format')!r}")
    if header.get("fingerprint") != fingerprint:
        raise CheckpointError(
            f"checkpoint {path} was written by a different recipe (fingerprint {header.get('fingerprint')} "
            f"!= {fingerprint}); resume with the run's own recipe.yaml, or start a new run"
        )
    for file in (MODEL_FILE, STATE_FILE):
        expected = header["sha256"].get(file)
        if expected is None or not (path / file).is_file() or _sha256(path / file) != expected:
            raise CheckpointError(f"checkpoint {path}: {file} is missing or corrupt (checksum mismatch)")
    try:
        load_model(model, str(path / MODEL_FILE), strict=True)  # handles tensors shared by tied weights
        state = torch.load(path / STATE_FILE, weights_only=True, map_location="cpu")
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, SafetensorError) as exc:
        raise CheckpointError(f"checkpoint {path} does not match this model: {exc}") from None
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return RestoredCheckpoint(
        progress=TrainerProgress(**header["progress"]), stage=header["stage"], stage_step=header["stage_step"],
        extra=state["extra"],
    )

