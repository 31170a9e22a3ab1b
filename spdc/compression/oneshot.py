"""One-shot structured pruning, the fast path (`pruning.schedule: oneshot`).

The gradual schedule keeps a full-size masked student for the whole pruning stage, so every step costs what the
teacher costs. One-shot scores the heads and FFN neurons once, before training (first-order: |w * dL/dw| of the
task loss over `pruning.score_batches` training batches; magnitude: |w|), cuts to the recipe's sparsities in
the recipe's scope, and folds the student at once: every training step then costs what the small model costs.
The cut is written to the run directory (`spdc_cut.json`) before the first step, so a resumed run rebuilds the
same folded shape and loads its checkpoint into it.

A cut that cannot land on the requested sparsity (12 heads a layer cannot lose 30% of them) is a recipe error
before any scoring, naming the nearest sparsities that can: nothing is silently over- or under-pruned.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spdc.compression.folding import fold
from spdc.compression.pruning.pruner import Pruner, parameter_counts
from spdc.core.atomic import atomic_write_text
from spdc.core.errors import CheckpointError, RecipeError
from spdc.heads import TaskHead
from spdc.models.families import model_config
from spdc.models.shape import EncoderShape
from spdc.models.structure import FoldedStructure, record_structure, reshape_to_structure
from spdc.recipe.schema import PruningConfig
from spdc.runs.distributed import broadcast_from_main
from spdc.runs.runtime import autocast
from spdc.training.evaluation import batches

CUT_FILE = "spdc_cut.json"
UNIT_NAMES = {"heads": ("head_sparsity", "attention heads", "num_heads"),
              "neurons": ("neuron_sparsity", "FFN neurons", "intermediate")}


def attainable_sparsity(config: PruningConfig, shape: EncoderShape) -> dict[str, float]:
    """The sparsity the structured cut really lands on, per kind of unit: whole units go, `round(s * n)` of
    the n in each layer (local scope) or in the whole encoder (global scope)."""
    achieved = {}
    for kind, (key, _, attribute) in UNIT_NAMES.items():
        per_layer = getattr(shape, attribute)
        count = per_layer if config.scope == "local" else per_layer * shape.num_layers
        achieved[kind] = round(getattr(config, key) * count) / count
    return achieved


def check_cut_target(config: PruningConfig, shape: EncoderShape) -> None:
    """Refuse a cut that misses its target by more than `pruning.tolerance`, saying by how much and which
    sparsities the model's shape allows."""
    problems = []
    for kind, achieved in attainable_sparsity(config, shape).items():
        key, units, attribute = UNIT_NAMES[kind]
        target = getattr(config, key)
        if abs(achieved - target) > config.tolerance:
            per_layer = getattr(shape, attribute)
            count = per_layer if config.scope == "local" else per_layer * shape.num_layers
            where = f"{per_layer} per layer" if config.scope == "local" else f"{count} in all (global scope)"
            below, above = (int(target * count) / count, (int(target * count) + 1) / count)
            problems.append(
                f"pruning.{key}: a one-shot cut removes whole {units}, {where}, so {target:g} lands on "
                f"{achieved:.4f}, {abs(achieved - target) * 100:.1f} points off (pruning.tolerance "
                f"{config.tolerance:g}); the nearest sparsities it can reach are {below:.4f} and {above:.4f}")
    if problems:
        raise RecipeError("invalid recipe for a one-shot cut:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class OneShotCut:
    """What the cut left, recorded before training: the folded shape (kept heads by their teacher index, FFN
    neuron counts), the masked model's sparsity report and matrix sizes, and the seconds the scoring took."""

    structure: FoldedStructure
    sparsity: dict[str, Any]
    parameters: dict[str, int]
    score_seconds: float
    before_training: dict[str, float] | None = None  # the cut student's metrics on the held-out rows, untrained

    def kept_units(self) -> tuple[list[int], list[int]]:
        return [len(heads) for heads in self.structure.heads], list(self.structure.neurons)

    def to_dict(self) -> dict[str, Any]:
        return {"structure": self.structure.to_config(), "sparsity": self.sparsity, "parameters": self.parameters,
                "score_seconds": self.score_seconds, "before_training": self.before_training}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OneShotCut:
        return cls(structure=FoldedStructure.from_config(data["structure"]), sparsity=data["sparsity"],
                   parameters={key: int(value) for key, value in data["parameters"].items()},
                   score_seconds=float(data["score_seconds"]), before_training=data.get("before_training"))


@dataclass(frozen=True)
class Scoring:
    """What first-order scoring reads: the training rows and how the run's steps batch and run them."""

    train_data: Any
    collate: Any
    batch_size: int
    batches: int | None  # pruning.score_batches; None: one pass over every training row
    seed: int
    head: TaskHead
    device: torch.device
    precision: str


def score_units(student: nn.Module, pruner: Pruner, scoring: Scoring) -> None:
    """Accumulate the criterion's statistics over the first `scoring.batches` batches of a seeded shuffle of the
    training rows: the gradient of the task's own loss, since a distillation loss of a student that is still the
    teacher's copy has none. Eval mode (no dropout); every rank scores the same rows, and rank 0's scores are
    broadcast so that every rank cuts the same units."""
    if not pruner.criterion.needs_gradients:
        return
    generator = torch.Generator().manual_seed(scoring.seed)
    order = torch.randperm(len(scoring.train_data), generator=generator).tolist()
    if scoring.batches is not None:
        order = order[: scoring.batches * scoring.batch_size]
    was_training = student.training
    student.eval()
    for batch in batches(scoring.train_data, order, scoring.batch_size, scoring.collate):
        batch = {key: value.to(scoring.device) for key, value in batch.items()}
        labels = batch.pop("labels")
        with autocast(scoring.device, scoring.precision):
            outputs = scoring.head.outputs(student(**batch))
        scoring.head.hard_loss(outputs, labels).backward()
        pruner.after_backward()
        student.zero_grad(set_to_none=True)
    student.train(was_training)
    scores = pruner.criterion.state_dict()
    broadcast_from_main(scores)  # one cut for every rank, whatever a device's kernels did with the sums
    pruner.criterion.load_state_dict(scores)


def cut_student(student: nn.Module, pruner: Pruner, scoring: Scoring) -> OneShotCut:
    """Score, mask the student at the final sparsities, record its sparsity, then fold it in place."""
    shape = EncoderShape.of(student)
    started = time.perf_counter()
    score_units(student, pruner, scoring)
    pruner.prune_to_final()
    report = pruner.sparsity_report()
    parameters = parameter_counts(pruner.linears)
    structure = fold(student)
    if structure is None:  # nothing was cut (sparsities of 0): the student keeps the teacher's full shape
        structure = FoldedStructure(head_dim=shape.head_dim, heads=[list(range(shape.num_heads))] * shape.num_layers,
                                    neurons=[shape.intermediate] * shape.num_layers)
    return OneShotCut(structure=structure, sparsity=report, parameters=parameters,
                      score_seconds=round(time.perf_counter() - started, 2))


def write_cut(cut: OneShotCut, cut_file: Path) -> None:
    """Record the cut before the first training step: a resumed run needs its folded shape."""
    atomic_write_text(cut_file, json.dumps(cut.to_dict(), indent=2) + "\n")


def restore_cut(student: nn.Module, cut_file: Path) -> OneShotCut:
    """On resume: give the fresh student the recorded folded shape; its weights then come from the checkpoint."""
    if not cut_file.is_file():
        raise CheckpointError(f"{cut_file} is missing: a one-shot run cannot be resumed without its cut (start it "
                              "again with --overwrite)")
    cut = OneShotCut.from_dict(json.loads(cut_file.read_text(encoding="utf-8")))
    reshape_to_structure(student, cut.structure)
    record_structure(model_config(student), cut.structure)
    return cut
