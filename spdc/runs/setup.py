"""Setup shared by every command that trains: seeds, threads and device, the task's data and the teacher, then
the run directory. What can fail cheaply is checked first (the model source, then the data, then the model
itself), so a missing file or model fails before anything is written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from spdc.data.batching import EncodedSplit
from spdc.data.examples import SplitData, hold_out
from spdc.data.sources import load_split, task_spec
from spdc.data.tasks import TaskSpec
from spdc.heads import TaskHead, head_of_task
from spdc.heads.base import Collate
from spdc.models.families import check_sequence_length
from spdc.models.loading import check_model_source, load_model
from spdc.recipe.schema import Recipe
from spdc.runs.directory import RunDirectory, check_run_output
from spdc.runs.distributed import default_threads, init_distributed, rank_device
from spdc.runs.records import SplitSummary
from spdc.runs.runtime import configure_threads, resolve_device, resolve_precision, seed_everything


@dataclass
class RunOptions:
    output_dir: Path | None = None
    resume: bool = False
    overwrite: bool = False
    show_progress: bool = True
    expects_finetuned_teacher: bool = False  # compress: the teacher's classifier head must fit the task


@dataclass(frozen=True)
class TrainingInputs:
    """What every stage of a run trains and evaluates on, and where it writes: one typed value for the trainer."""

    spec: TaskSpec
    tokenizer: Any
    train_data: EncodedSplit
    dev_data: EncodedSplit
    validation_data: EncodedSplit | None
    collate: Collate
    run: RunDirectory
    device: torch.device
    precision: str = "fp32"


@dataclass
class PreparedRun:
    spec: TaskSpec
    head: TaskHead
    dev_name: str
    train_split: SplitData
    dev_split: SplitData
    validation_split: SplitData | None
    train_data: EncodedSplit
    dev_data: EncodedSplit
    validation_data: EncodedSplit | None
    collate: Collate
    model: Any
    tokenizer: Any
    model_source: str
    device: torch.device
    precision: str
    run: RunDirectory
    environment: dict[str, Any]

    def training_inputs(self) -> TrainingInputs:
        return TrainingInputs(spec=self.spec, tokenizer=self.tokenizer, train_data=self.train_data,
                              dev_data=self.dev_data, validation_data=self.validation_data, collate=self.collate,
                              run=self.run, device=self.device, precision=self.precision)

    def dev_baseline(self) -> dict[str, float]:
        """The dev metrics of predicting the dev split's most frequent label (regression: its mean) for every row."""
        return self.head.constant_baseline(self.dev_data.labels, self.spec)

    def data_summary(self) -> dict[str, SplitSummary]:
        """Rows used and dropped per split, and where they came from (for summary.json and the CLI)."""
        splits = [("train", self.train_split), (self.dev_name, self.dev_split)]
        if self.validation_split is not None:
            splits.append(("validation", self.validation_split))
        return {name: SplitSummary(source=split.source, rows=len(split.examples), dropped=split.dropped,
                                   warning=split.warning)
                for name, split in splits}


def recipe_inputs(recipe: Recipe) -> list[Path]:
    """The local files and folders a recipe reads: an output may never be one of them or contain one."""
    task = recipe.task
    paths = [Path(recipe.teacher.model), *(p for p in (task.data_dir, task.train_file, task.dev_file) if p)]
    return [path for path in paths if path.exists()]


def prepare_run(recipe: Recipe, options: RunOptions) -> PreparedRun:
    init_distributed(recipe.device)
    seed_everything(recipe.seed)
    threads = configure_threads(recipe.threads or default_threads())
    device = rank_device(resolve_device(recipe.device))
    precision = resolve_precision(recipe.precision, device)
    out = options.output_dir or recipe.resolved_output_dir()
    if not options.resume:  # cheap checks of the output before the data and the model are read
        out = check_run_output(out, inputs=recipe_inputs(recipe), overwrite=options.overwrite)
    check_model_source(recipe.teacher.model)
    spec = task_spec(recipe.task)
    dev_name = spec.dev_splits[0]
    train_split = load_split(recipe.task, "train")
    validation_split = None
    if recipe.task.validation_fraction:
        train_split, validation_split = hold_out(train_split, recipe.task.validation_fraction)
    dev_split = load_split(recipe.task, dev_name)
    loaded = load_model(recipe.teacher.model, spec, trust_remote_code=recipe.teacher.trust_remote_code,
                             fine_tuned_head=recipe.teacher.finetuned and options.expects_finetuned_teacher)
    check_sequence_length(loaded.model.config, recipe.task.max_seq_length, what="task.max_seq_length",
                          model=recipe.teacher.model)
    run = RunDirectory.prepare(out, recipe, resume=options.resume, overwrite=options.overwrite,
                               inputs=recipe_inputs(recipe))
    run.start_tracking(recipe)
    environment = run.write_environment(device.type, threads, precision=precision,
                                        precision_requested=recipe.precision)
    max_len = recipe.task.max_seq_length
    head = head_of_task(spec)

    def encoded(split: SplitData) -> EncodedSplit:
        return head.encode(split.examples, loaded.tokenizer, max_len)

    return PreparedRun(
        spec=spec, head=head, dev_name=dev_name, train_split=train_split, dev_split=dev_split,
        validation_split=validation_split, train_data=encoded(train_split), dev_data=encoded(dev_split),
        validation_data=encoded(validation_split) if validation_split else None,
        collate=head.collator(loaded.tokenizer),
        model=loaded.model, tokenizer=loaded.tokenizer, model_source=loaded.source, device=device,
        precision=precision, run=run, environment=environment,
    )
