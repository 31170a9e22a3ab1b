"""The optimisation loop: AdamW, linear warmup/decay, clipping, periodic evaluation, best-model selection by the
task's main metric, and atomic checkpoints that let a killed run resume to the same result.

`batch_size` is the global batch of one optimizer step. It is split into `world size x
gradient_accumulation_steps` micro-batches: each torchrun process (rank) runs its share one after another,
accumulating gradients, and DistributedDataParallel averages them across ranks. Each micro-batch's loss is
weighted by its share of the batch's rows, so the step's gradient is that of the whole batch whatever the split:
two processes reproduce one process with two accumulation steps.

Data order is a pure function of (seed, stage, epoch), and the random state of each micro-batch (dropout) is
seeded from (seed, stage, step, micro-batch index), so a resumed run replays exactly the batches and dropout
masks an uninterrupted run would have used, on any split. Compression methods plug in through `TrainingPlugin`
(loss, per-step hooks, extra checkpoint state); one Trainer runs one stage, and stages pass their
`TrainerProgress` on so best-model tracking spans the run. Only rank 0 evaluates and writes.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from spdc.core.atomic import atomic_directory
from spdc.core.console import progress_bar, stderr
from spdc.core.errors import CheckpointError, DivergedError, RecipeError
from spdc.models.loading import save_model
from spdc.recipe.schema import TrainingConfig
from spdc.runs.distributed import barrier, context, note_checkpoints
from spdc.runs.records import EvalRecord, TrainRecord
from spdc.runs.runtime import autocast
from spdc.runs.setup import TrainingInputs
from spdc.training.checkpoint import TrainerProgress, latest_checkpoint, load_checkpoint, save_checkpoint
from spdc.training.evaluation import evaluate
from spdc.training.lr_schedule import linear_warmup_decay

Forward = Callable[..., Any]  # the (possibly DistributedDataParallel-wrapped) model's forward


class TrainingPlugin:
    """What a method adds to the plain loop. The defaults are plain fine-tuning on the labels."""

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor], step: int, forward: Forward
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss to minimise at a 0-based stage step, and named parts to log. `model` is the module to inspect or
        rearrange; `forward` runs it (through DistributedDataParallel under torchrun)."""
        return forward(**batch).loss, {}

    def partial_graph(self) -> bool:
        """Whether a step may leave some trainable parameters out of the forward (grafting swaps layers out),
        which DistributedDataParallel must be told."""
        return False

    def after_backward(self) -> None:
        """Called between backward and the optimizer step (gradients are available)."""

    def after_step(self, step: int) -> dict[str, float]:
        """Called after the optimizer step with the 1-based stage step; returns extra fields to log."""
        return {}

    def best_eligible(self) -> bool:
        """Whether the current model may become the run's best model (e.g. only at the final sparsity)."""
        return True

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what state_dict returned."""


def split_batch(indices: list[int], *, rank: int, world_size: int, accumulation: int
                ) -> list[tuple[int, list[int], float]]:
    """This rank's share of one step's batch: (global micro-batch index, rows, loss weight) for each of its
    `accumulation` micro-batches. The batch is cut into world_size x accumulation contiguous, near-equal parts;
    rank r takes parts r*accumulation .. (r+1)*accumulation - 1. The weight is the part's share of the batch's
    rows times the world size (DDP averages gradients over the ranks), so the weighted micro-batch losses add up
    to the mean loss of the whole batch."""
    count = world_size * accumulation
    bounds = [round(part * len(indices) / count) for part in range(count + 1)]
    mine = []
    for micro in range(rank * accumulation, (rank + 1) * accumulation):
        rows = indices[bounds[micro]:bounds[micro + 1]]
        # a short last batch may leave a part empty: it still runs (every rank must take part), weighted 0
        mine.append((micro, rows or indices[:1], len(rows) * world_size / len(indices)))
    return mine


@dataclass
class StagePosition:
    """Where a stage sits in the run: its index and name, and the global step its step 0 corresponds to."""

    index: int = 0
    name: str = "train"
    step_offset: int = 0


def _decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups over trainable parameters: no weight decay on biases and normalisation weights."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    seen: set[int] = set()
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            if not parameter.requires_grad or id(parameter) in seen:
                continue
            seen.add(id(parameter))
            is_norm = isinstance(module, torch.nn.LayerNorm)
            (no_decay if is_norm or name == "bias" else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class Trainer:
    """Trains `model` for one stage on the inputs' training rows, evaluating on their dev (and validation) rows;
    writes everything into their run directory."""

    def __init__(
        self,
        *,
        model: torch.nn.Module,
        inputs: TrainingInputs,
        config: TrainingConfig,
        seed: int,
        fingerprint: str,
        plugin: TrainingPlugin | None = None,
        stage: StagePosition | None = None,
        progress: TrainerProgress | None = None,
        show_progress: bool = True,
    ) -> None:
        device = inputs.device
        self.model = model.to(device)
        self.tokenizer = inputs.tokenizer
        self.task = inputs.spec
        self.train_data = inputs.train_data
        self.dev_data = inputs.dev_data
        self.validation_data = inputs.validation_data
        self.precision = inputs.precision
        self.collate = inputs.collate
        self.config = config
        self.run = inputs.run
        self.device = device
        self.seed = seed
        self.fingerprint = fingerprint
        self.plugin = plugin or TrainingPlugin()
        self.stage = stage or StagePosition()
        self.show_progress = show_progress and context().is_main
        self.steps_per_epoch = math.ceil(len(self.train_data) / config.batch_size)
        self.total_steps = config.max_steps or config.epochs * self.steps_per_epoch
        self.distributed = context()
        self.micro_batches = self.distributed.world_size * config.gradient_accumulation_steps
        if config.batch_size < self.micro_batches:
            raise RecipeError(f"batch_size {config.batch_size} cannot be split into {self.distributed.world_size} "
                              f"process(es) x {config.gradient_accumulation_steps} accumulation step(s)")
        self.forward: Forward = self.model
        if self.distributed.enabled:
            self.forward = DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=self.plugin.partial_graph())
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        self.optimizer = torch.optim.AdamW(
            _decay_groups(model, config.weight_decay), lr=config.learning_rate, eps=config.adam_epsilon
        )
        self.scheduler = linear_warmup_decay(
            self.optimizer, total_steps=self.total_steps, warmup_ratio=config.warmup_ratio
        )
        self.progress = progress or TrainerProgress()
        note_checkpoints(self.run.checkpoints_dir)  # named if this job loses a rank
        self.step = 0  # completed steps of this stage
        self.skipped_steps = 0  # steps with nothing to learn (see _train_step)
        self._epoch_order: tuple[int, list[int]] | None = None

    # -- data order ------------------------------------------------------------------------------------------
    def _batch_indices(self, step: int) -> list[int]:
        """Indices of the batch for a stage step; each epoch is a permutation seeded by (seed, stage, epoch)."""
        epoch, position = divmod(step, self.steps_per_epoch)
        if self._epoch_order is None or self._epoch_order[0] != epoch:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + self.stage.index * 1_009 + epoch)
            self._epoch_order = (epoch, torch.randperm(len(self.train_data), generator=generator).tolist())
        order = self._epoch_order[1]
        size = self.config.batch_size
        return order[position * size : (position + 1) * size]

    def _is_eval_step(self, step: int) -> bool:
        every = self.config.eval_every_steps
        return step % self.steps_per_epoch == 0 or step == self.total_steps or bool(every and step % every == 0)

    # -- checkpoints -----------------------------------------------------------------------------------------
    def resume(self) -> None:
        """Restore this stage's latest checkpoint (the caller checked that it belongs to this stage)."""
        checkpoint = latest_checkpoint(self.run.checkpoints_dir)
        if checkpoint is None:
            raise CheckpointError(f"--resume: no checkpoint in {self.run.checkpoints_dir}")
        restored = load_checkpoint(
            checkpoint, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
            fingerprint=self.fingerprint, world_size=self.distributed.world_size,
        )
        self.progress = restored.progress
        self.step = restored.stage_step

        self.plugin.load_state_dict(restored.extra)
        self.run.truncate_metrics_after(self.progress.step)
        if self.distributed.is_main:
            stderr.print(f"resumed from {checkpoint} (stage {self.stage.name}, step {self.step}/{self.total_steps})")

    def _checkpoint(self) -> None:
        save_checkpoint(
            self.run.checkpoints_dir, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
            progress=self.progress, fingerprint=self.fingerprint, stage=self.stage.index, stage_step=self.step,
            extra=self.plugin.state_dict(), world_size=self.distributed.world_size,
        )

    # -- loop ------------------------------------------------------------------------------------------------
    def _my_micro_batches(self, step: int) -> list[tuple[int, list[int], float]]:
        return split_batch(self._batch_indices(step), rank=self.distributed.rank,
                           world_size=self.distributed.world_size,
                           accumulation=self.config.gradient_accumulation_steps)

    def _micro_seed(self, step: int, micro: int) -> int:
        return (self.seed * 1_000_003 + self.stage.index * 100_003 + step * 1_009 + micro) % 2**63

    def _train_step(self, step: int) -> tuple[float, dict[str, float]]:
        total = torch.zeros((), dtype=torch.float64)
        part_sums: dict[str, float] = {}
        learned = False
        micro_batches = self._my_micro_batches(step)
        for position, (micro, rows, weight) in enumerate(micro_batches):
            torch.manual_seed(self._micro_seed(step, micro))
            batch = self.collate([self.train_data[index] for index in rows])
            batch = {key: value.to(self.device) for key, value in batch.items()}
            last = position == len(micro_batches) - 1
            no_sync = getattr(self.forward, "no_sync", None)
            with no_sync() if no_sync is not None and not last else contextlib.nullcontext():
                with autocast(self.device, self.precision):
                    loss, parts = self.plugin.loss(self.model, batch, step, self.forward)
                loss = loss.float() * weight
                if loss.requires_grad:
                    (self.scaler.scale(loss) if self.scaler else loss).backward()
                    learned = True
            share = weight / self.distributed.world_size
            total += float(loss.detach()) / self.distributed.world_size
            for name, value in parts.items():
                part_sums[name] = part_sums.get(name, 0.0) + value * share
        if learned:
            self.plugin.after_backward()
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            if self.config.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(
                    [p for group in self.optimizer.param_groups for p in group["params"]], self.config.max_grad_norm
                )
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
        else:
            # Nothing trainable took part in this step (grafting drew the teacher's module for every layer): no
            # update, but the schedules advance as if one had happened. The draw is the same on every rank.
            self.skipped_steps += 1
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return self._global_mean(total, part_sums)

    def _global_mean(self, loss: torch.Tensor, parts: dict[str, float]) -> tuple[float, dict[str, float]]:
        """The step's loss and parts over the whole batch: each rank holds its rows' share of them."""
        if not self.distributed.enabled:
            return float(loss), parts
        names = sorted(parts)
        values = torch.tensor([float(loss), *(parts[name] for name in names)], dtype=torch.float64)
        dist.all_reduce(values)
        return float(values[0]), {name: float(value) for name, value in zip(names, values[1:].tolist(), strict=True)}

    def _evaluate(self, global_step: int, stage_fields: dict[str, float]) -> None:
        """Score dev (reported), the held-out validation rows (selection, when the recipe holds some out) and a
        training sample (the overfitting gap), all in fp32; keep the best model and checkpoint. Rank 0 does this
        while the other ranks wait."""
        if self.distributed.is_main:
            self._evaluate_and_keep(global_step, stage_fields)
        barrier()

    def _evaluate_and_keep(self, global_step: int, stage_fields: dict[str, float]) -> None:
        config = self.config
        dev = evaluate(
            self.model, self.dev_data, self.task, collate=self.collate, batch_size=config.eval_batch_size,
            device=self.device, description="dev", show_progress=self.show_progress,
        )
        validation = evaluate(
            self.model, self.validation_data, self.task, collate=self.collate, batch_size=config.eval_batch_size,
            device=self.device, description="validation", show_progress=self.show_progress,
        ) if self.validation_data is not None else None
        train = evaluate(
            self.model, self.train_data, self.task, collate=self.collate, batch_size=config.eval_batch_size,
            device=self.device, limit=config.train_eval_samples, description="train (eval mode)",
            show_progress=self.show_progress,
        ) if config.train_eval_samples else None
        self.run.append_metrics(EvalRecord(
            stage=self.stage.name, step=global_step, epoch=self.step / self.steps_per_epoch,
            time_s=round(self.progress.train_seconds, 2), dev=dev, train=train, validation=validation,
            **stage_fields,
        ))
        score = (validation or dev)[self.task.main_metric]
        progress = self.progress
        improved = progress.best_metric is None or score > progress.best_metric
        if self.plugin.best_eligible() and improved:
            progress.best_metric, progress.best_step, progress.best_eval = score, global_step, dev
            progress.best_validation = validation
            with atomic_directory(self.run.model_dir) as tmp:
                save_model(self.model, self.tokenizer, tmp)
        train_part = f", train {train[self.task.main_metric]:.4f}" if train else ""
        best = f"best {progress.best_metric:.4f} @ {progress.best_step}" if progress.best_step else "no best yet"
        main = self.task.main_metric
        validation_part = f", validation {validation[main]:.4f}" if validation else ""
        stderr.print(f"{self.stage.name} step {global_step}: dev {main} {dev[main]:.4f}{validation_part}{train_part} "
                     f"({best})", markup=False, highlight=False)
        self._checkpoint()

    def _diverged(self, stage_step: int, loss: float) -> None:
        """Stop on a NaN or infinite loss before it is logged, evaluated or checkpointed: every later number of
        the run would be meaningless, and the last checkpoint still holds finite weights."""
        checkpoint = latest_checkpoint(self.run.checkpoints_dir)
        where = f"the last good checkpoint is {checkpoint}" if checkpoint else "no checkpoint was written yet"
        raise DivergedError(
            f"training diverged: the loss is {loss} at step {self.stage.step_offset + stage_step} (stage "
            f"{self.stage.name}); {where}. Lower the learning rate and start again, or, if the cause was passing "
            "(a bad batch, hardware), continue from that checkpoint with --resume")

    def fit(self) -> TrainerProgress:
        """Run the stage's remaining steps; returns the run-wide progress (best model so far)."""
        self.model.train()
        window: list[float] = []
        parts_window: dict[str, list[float]] = {}
        seconds_before = self.progress.train_seconds
        started = time.perf_counter()
        progress_display = progress_bar()
        progress_display.disable = not self.show_progress
        with progress_display:
            bar = progress_display.add_task(self.stage.name, total=self.total_steps, completed=self.step, status="")
            for step in range(self.step, self.total_steps):
                loss, parts = self._train_step(step)
                if not math.isfinite(loss):
                    self._diverged(step + 1, loss)
                self.step = done = step + 1
                global_step = self.stage.step_offset + done
                stage_fields = self.plugin.after_step(done)
                self.progress.step = global_step
                self.progress.train_seconds = seconds_before + time.perf_counter() - started
                window.append(loss)
                for name, value in parts.items():
                    parts_window.setdefault(name, []).append(value)
                lr = self.scheduler.get_last_lr()[0]
                shown = " ".join(f"{key} {value:.2f}" for key, value in stage_fields.items())
                progress_display.update(bar, advance=1, status=f"loss {loss:.4f} lr {lr:.2e} {shown}")
                if done % self.config.logging_steps == 0 or done == self.total_steps:
                    self.run.append_metrics(TrainRecord(
                        stage=self.stage.name, step=global_step, epoch=done / self.steps_per_epoch,
                        time_s=round(self.progress.train_seconds, 2), loss=sum(window) / len(window), lr=lr,
                        **{name: sum(values) / len(values) for name, values in parts_window.items()},
                        **stage_fields,
                    ))
                    window.clear()
                    parts_window.clear()
                if self._is_eval_step(done):
                    self._evaluate(global_step, stage_fields)
        return self.progress
