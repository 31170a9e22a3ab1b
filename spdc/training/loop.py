"""The optimisation loop: AdamW, linear warmup/decay, clipping, periodic evaluation, best-model selection by the
task's main metric, and atomic checkpoints that let a killed run resume to the same result.

Data order is a pure function of (seed, epoch) and dropout draws from the global torch RNG saved in every
checkpoint, so a resumed run replays exactly the batches and dropout masks an uninterrupted run would have used.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from spdc.atomic import atomic_directory
from spdc.console import progress_bar, stderr
from spdc.errors import CheckpointError
from spdc.models import save_classifier
from spdc.recipe import TrainingConfig
from spdc.run_dir import RunDirectory
from spdc.tasks import TaskSpec
from spdc.training.checkpoint import TrainerProgress, latest_checkpoint, load_checkpoint, save_checkpoint
from spdc.training.evaluation import evaluate
from spdc.training.schedule import linear_warmup_decay


@dataclass
class FitResult:
    best_step: int
    best_metric: float
    best_eval: dict[str, Any]
    steps: int
    train_seconds: float


def _decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: no weight decay on biases and normalisation weights (standard BERT practice)."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            if not parameter.requires_grad:
                continue
            is_norm = isinstance(module, torch.nn.LayerNorm)
            (no_decay if is_norm or name == "bias" else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class Trainer:
    """Fine-tunes `model` on `train_data`, evaluating on `dev_data`; writes everything into `run`."""

    def __init__(
        self,
        *,
        model: torch.nn.Module,
        tokenizer: Any,
        task: TaskSpec,
        train_data: Any,
        dev_data: Any,
        collate: Any,
        config: TrainingConfig,
        run: RunDirectory,
        device: torch.device,
        seed: int,
        fingerprint: str,
        show_progress: bool = True,
    ) -> None:
        self.model = model.to(device)
        self.tokenizer = tokenizer
        self.task = task
        self.train_data = train_data
        self.dev_data = dev_data
        self.collate = collate
        self.config = config
        self.run = run
        self.device = device
        self.seed = seed
        self.fingerprint = fingerprint
        self.show_progress = show_progress
        self.steps_per_epoch = math.ceil(len(train_data) / config.batch_size)
        self.total_steps = config.max_steps or config.epochs * self.steps_per_epoch
        self.optimizer = torch.optim.AdamW(
            _decay_groups(model, config.weight_decay), lr=config.learning_rate, eps=config.adam_epsilon
        )
        self.scheduler = linear_warmup_decay(
            self.optimizer, total_steps=self.total_steps, warmup_ratio=config.warmup_ratio
        )
        self.progress = TrainerProgress()
        self._epoch_order: tuple[int, list[int]] | None = None

    # -- data order ------------------------------------------------------------------------------------------
    def _batch_indices(self, step: int) -> list[int]:
        """Indices of the batch for a global step; each epoch is a permutation seeded by (seed, epoch)."""
        epoch, position = divmod(step, self.steps_per_epoch)
        if self._epoch_order is None or self._epoch_order[0] != epoch:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._epoch_order = (epoch, torch.randperm(len(self.train_data), generator=generator).tolist())
        order = self._epoch_order[1]
        size = self.config.batch_size
        return order[position * size : (position + 1) * size]

    def _is_eval_step(self, step: int) -> bool:
        every = self.config.eval_every_steps
        return step % self.steps_per_epoch == 0 or step == self.total_steps or bool(every and step % every == 0)

    # -- loop ------------------------------------------------------------------------------------------------
    def resume(self) -> None:
        checkpoint = latest_checkpoint(self.run.checkpoints_dir)
        if checkpoint is None:
            raise CheckpointError(f"--resume: no checkpoint in {self.run.checkpoints_dir}")
        self.progress = load_checkpoint(
            checkpoint,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            fingerprint=self.fingerprint,
        )
        self.run.truncate_metrics_after(self.progress.step)
        stderr.print(f"resumed from {checkpoint} (step {self.progress.step}/{self.total_steps})")

    def _train_step(self, step: int) -> float:
        batch = self.collate([self.train_data[index] for index in self._batch_indices(step)])
        batch = {key: value.to(self.device) for key, value in batch.items()}
        loss = self.model(**batch).loss
        loss.backward()
        if self.config.max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def _evaluate(self, step: int) -> None:
        config = self.config
        dev = evaluate(
            self.model, self.dev_data, self.task, collate=self.collate, batch_size=config.eval_batch_size,
            device=self.device, description="dev", show_progress=self.show_progress,
        )
        record: dict[str, Any] = {
            "kind": "eval", "step": step, "epoch": step / self.steps_per_epoch,
            "time_s": round(self.progress.train_seconds, 2), "dev": dev,
        }
        if config.train_eval_samples:
            record["train"] = evaluate(
                self.model, self.train_data, self.task, collate=self.collate, batch_size=config.eval_batch_size,
                device=self.device, limit=config.train_eval_samples, description="train (eval mode)",
                show_progress=self.show_progress,
            )
        self.run.append_metrics(record)
        score = dev[self.task.main_metric]
        if self.progress.best_metric is None or score > self.progress.best_metric:
            self.progress.best_metric, self.progress.best_step, self.progress.best_eval = score, step, dev
            with atomic_directory(self.run.model_dir) as tmp:
                save_classifier(self.model, self.tokenizer, tmp)
        train_part = f", train {record['train'][self.task.main_metric]:.4f}" if "train" in record else ""
        stderr.print(
            f"step {step}: dev {self.task.main_metric} {score:.4f}{train_part} "
            f"(best {self.progress.best_metric:.4f} @ {self.progress.best_step})"
        )
        save_checkpoint(
            self.run.checkpoints_dir, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
            progress=self.progress, fingerprint=self.fingerprint,
        )

    def fit(self) -> FitResult:
        self.model.train()
        window: list[float] = []
        started = time.perf_counter()
        train_seconds_before = self.progress.train_seconds
        progress = progress_bar()
        progress.disable = not self.show_progress
        with progress:
            bar = progress.add_task(
                "train", total=self.total_steps, completed=self.progress.step, status=""
            )
            for step in range(self.progress.step, self.total_steps):
                window.append(self._train_step(step))
                done = step + 1
                self.progress.step = done
                self.progress.train_seconds = train_seconds_before + time.perf_counter() - started
                lr = self.scheduler.get_last_lr()[0]
                progress.update(bar, advance=1, status=f"loss {window[-1]:.4f} lr {lr:.2e}")
                if done % self.config.logging_steps == 0 or done == self.total_steps:
                    self.run.append_metrics({
                        "kind": "train", "step": done, "epoch": done / self.steps_per_epoch,
                        "time_s": round(self.progress.train_seconds, 2), "loss": sum(window) / len(window), "lr": lr,
                    })
                    window.clear()
                if self._is_eval_step(done):
                    self._evaluate(done)
        assert self.progress.best_metric is not None and self.progress.best_step is not None
        return FitResult(
            best_step=self.progress.best_step,
            best_metric=self.progress.best_metric,
            best_eval=self.progress.best_eval or {},
            steps=self.progress.step,
            train_seconds=self.progress.train_seconds,
        )
