"""Resumable checkpoints: model (safetensors), optimizer + scheduler + RNG state, and a JSON header with the step,
the recipe fingerprint and a checksum per file. Written to a temp directory and renamed, then `latest` is switched
atomically, so a kill at any moment leaves a complete checkpoint behind."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_model

from spdc.core.atomic import atomic_directory, atomic_write_text
from spdc.core.errors import CheckpointError

FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
STATE_FILE = "trainer_state.pt"
HEADER_FILE = "checkpoint.json"
LATEST_FILE = "latest"


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
    with atomic_directory(target) as tmp:
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
            shutil.rmtree(old, ignore_errors=True)
    return target


def latest_checkpoint(directory: Path) -> Path | None:
    pointer = directory / LATEST_FILE
    if not pointer.is_file():
        return None
    target = directory / pointer.read_text(encoding="utf-8").strip()
    if not target.is_dir():
        raise CheckpointError(f"{pointer} points to {target.name}, which does not exist")
    return target


def read_header(path: Path) -> dict[str, Any]:
    """The JSON header of a checkpoint (stage, step, fingerprint) without loading any tensor."""
    try:
        return json.loads((path / HEADER_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint {path}: unreadable {HEADER_FILE} ({exc})") from None


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
    if int(header.get("world_size", 1)) != world_size:
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
    for file, expected in header.get("sha256", {}).items():
        if not (path / file).is_file() or _sha256(path / file) != expected:
            raise CheckpointError(f"checkpoint {path}: {file} is missing or corrupt (checksum mismatch)")
    try:
        load_model(model, str(path / MODEL_FILE), strict=True)  # handles tensors shared by tied weights
        state = torch.load(path / STATE_FILE, weights_only=True, map_location="cpu")
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {path} does not match this model: {exc}") from None
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return RestoredCheckpoint(
        progress=TrainerProgress(**header["progress"]), stage=header["stage"], stage_step=header["stage_step"],
        extra=state["extra"],
    )

