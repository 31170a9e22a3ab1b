"""`spdc compress`: build the student from a fine-tuned teacher and run the recipe's stages (SPD, KD or
magnitude pruning), leaving a run directory with the best student at the final sparsity (folded on request)."""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace
from pathlib import Path

from torch import nn

from spdc.compression.folding import fold_model_dir
from spdc.compression.grafting import Grafting
from spdc.compression.methods import METHODS
from spdc.compression.objective import CompressionPlugin
from spdc.compression.oneshot import (
    CUT_FILE,
    OneShotCut,
    Scoring,
    check_cut_target,
    cut_student,
    restore_cut,
    score_units,
    write_cut,
)
from spdc.compression.pruning.pruner import Pruner, parameter_counts
from spdc.compression.pruning.schedules import SCHEDULES
from spdc.compression.recorder import OutputRecorder
from spdc.compression.student import build_student
from spdc.core.atomic import atomic_write_text
from spdc.core.errors import CheckpointError, RecipeError
from spdc.core.outputs import output_kind
from spdc.models.families import encoder_layers, family_of, prunable_linears
from spdc.models.loading import check_supported_family
from spdc.models.shape import EncoderShape, flops_report
from spdc.recipe.loading import load_recipe
from spdc.recipe.schema import Recipe, StageConfig
from spdc.runs.directory import RunDirectory, check_run_output
from spdc.runs.distributed import barrier, context
from spdc.runs.records import CompressionRecord, CompressSummary
from spdc.runs.setup import PreparedRun, RunOptions, prepare_run, recipe_inputs
from spdc.training.checkpoint import TrainerProgress, latest_checkpoint, read_header
from spdc.training.evaluation import evaluate
from spdc.training.finetune import finetune
from spdc.training.loop import StagePosition, Trainer

COMPRESSION_FILE = "spdc_compression.json"
FOLDED_DIR = "folded"


def check_compress_recipe(recipe: Recipe) -> None:
    """Rules that only matter for compression, reported like schema errors (key path, exit code 2)."""
    problems = []
    if not recipe.stages:
        problems.append("stages: compress needs at least one stage")
    if any(stage.prune for stage in recipe.stages) and recipe.pruning is None:
        problems.append("pruning: a stage has `prune: true` but the recipe has no pruning section")
    if recipe.pruning is not None and not any(stage.prune for stage in recipe.stages):
        problems.append("stages: the recipe has a pruning section but no stage with `prune: true`")
    method = METHODS[recipe.method]
    for index, stage in enumerate(recipe.stages):
        if not any(method.loss_weights(stage, recipe.distillation).model_dump().values()):
            problems.append(f"stages.{index}.loss_weights: every loss weight is 0, so nothing would be learned")
    grafted = [i for i, stage in enumerate(recipe.stages) if stage.grafting is not None]
    reshaped = recipe.student.num_layers is not None or recipe.distillation.layer_map is not None
    if recipe.pruning is not None and SCHEDULES[recipe.pruning.schedule].cuts_before_training:
        if recipe.pruning.granularity != "structured":
            problems.append("pruning.schedule: oneshot cuts whole heads and FFN neurons and folds them away before "
                            "training, so it needs pruning.granularity structured")
        if recipe.pruning.warm_start:
            problems.append("pruning.warm_start: a oneshot cut is scored before training already; warm_start is "
                            "for the cubic schedule")
        late = [i for i, stage in enumerate(recipe.stages) if stage.prune and i > 0]
        if late:
            problems.append(f"stages.{late[0]}.prune: a oneshot cut happens before the first stage; mark the first "
                            "stage `prune: true` (or no stage after it)")
    if recipe.pruning is not None and recipe.pruning.warm_start and recipe.pruning.criterion != "first_order":
        problems.append("pruning.warm_start: the warm start adds first-order scores, so it needs criterion "
                        "first_order")
    if method.grafting and grafted and reshaped:
        problems.append(f"stages.{grafted[0]}.grafting: grafting swaps layer i of the student and the teacher, so "
                        "it needs a student with every teacher layer (student.num_layers and "
                        "distillation.layer_map null)")
    if problems:
        raise RecipeError(f"invalid recipe for compress ({recipe.name}):\n  " + "\n  ".join(problems))


def _steps(stage: StageConfig, rows: int) -> int:
    return stage.max_steps or stage.epochs * math.ceil(rows / stage.batch_size)


def teacher_run_dir(recipe: Recipe, options: RunOptions) -> Path:
    out = options.output_dir or recipe.resolved_output_dir()
    return out.with_name(f"{out.name}-teacher")


def _teacher_run_state(recipe: Recipe, teacher_dir: Path) -> str:
    """'new', 'finished' or 'resumable' for a teacher run directory of this recipe; a run of another teacher
    recipe (different seed, task or teacher section) is never reused."""
    run = RunDirectory(teacher_dir)
    if not teacher_dir.exists() or (teacher_dir.is_dir() and not any(teacher_dir.iterdir())):
        return "new"
    if output_kind(teacher_dir) != "run":
        return "foreign"
    if not run.is_finished() and not run.has_checkpoint():
        return "empty"  # started and killed before its first checkpoint: nothing to keep
    try:
        trained_from = load_recipe(run.recipe_file).teacher_fingerprint()
    except RecipeError:
        trained_from = None
    if trained_from != recipe.teacher_fingerprint():
        return "other-recipe"
    return "finished" if run.is_finished() else "resumable"


def with_finetuned_teacher(recipe: Recipe, options: RunOptions) -> Recipe:
    """When `teacher.finetuned` is false, fine-tune the teacher first into <run dir>-teacher (or reuse / resume
    a run there that was trained from the same teacher recipe) and point the recipe at its model."""
    if recipe.teacher.finetuned:
        return recipe
    teacher_dir = teacher_run_dir(recipe, options)
    state = _teacher_run_state(recipe, teacher_dir)
    if state == "other-recipe" and not options.overwrite:
        raise CheckpointError(
            f"{teacher_dir} holds a teacher trained from a different teacher recipe (seed, task or teacher "
            "section differ): --overwrite retrains it, --out picks another run directory")
    if state != "finished":
        resume = state == "resumable"
        finetune(recipe, RunOptions(output_dir=teacher_dir, resume=resume, overwrite=state in ("other-recipe", "empty"),
                                    show_progress=options.show_progress))
    teacher = recipe.teacher.model_copy(update={"model": str(teacher_dir / "model"), "finetuned": True})
    return recipe.model_copy(update={"teacher": teacher})


def compress(recipe: Recipe, options: RunOptions) -> CompressSummary:
    check_compress_recipe(recipe)
    started = time.perf_counter()
    if not options.resume:  # before a teacher is fine-tuned: the student's run directory must be usable
        check_run_output(options.output_dir or recipe.resolved_output_dir(), inputs=recipe_inputs(recipe),
                         overwrite=options.overwrite)
    check_supported_family(recipe.teacher.model)
    recipe = with_finetuned_teacher(recipe, options)
    prepared = prepare_run(recipe, replace(options, expects_finetuned_teacher=True))
    spec, device, run, teacher = prepared.spec, prepared.device, prepared.run, prepared.model
    method = METHODS[recipe.method]
    stage_weights = [method.loss_weights(stage, recipe.distillation) for stage in recipe.stages]
    if any(weights.attention for weights in stage_weights):
        teacher.set_attn_implementation("eager")  # attention probabilities are a distillation target
    family = family_of(teacher)
    student, layer_map = build_student(teacher, family, recipe.student, recipe.distillation.layer_map)
    teacher.to(device)
    teacher_dev = evaluate(teacher, prepared.dev_data, spec, collate=prepared.collate,
                           batch_size=recipe.stages[0].eval_batch_size, device=device, description="teacher dev",
                           show_progress=options.show_progress)

    linears = prunable_linears(encoder_layers(student, family), family)
    stage_steps = [_steps(stage, len(prepared.train_data)) for stage in recipe.stages]
    pruning_total = sum(steps for steps, stage in zip(stage_steps, recipe.stages, strict=True) if stage.prune)
    pruner = Pruner(recipe.pruning, linears, EncoderShape.of(student), pruning_total) if recipe.pruning else None
    cut = _before_training(student, pruner, recipe, prepared, resume=options.resume,
                           show_progress=options.show_progress) if pruner is not None else None
    if cut is not None:
        pruner = None  # the student is folded: nothing is left to mask
    student_layers = encoder_layers(student, family)
    teacher_layers = encoder_layers(teacher, family)

    resume_stage = 0
    if options.resume:
        checkpoint = latest_checkpoint(run.checkpoints_dir)
        resume_stage = read_header(checkpoint)["stage"] if checkpoint else 0
    progress: TrainerProgress | None = None
    offset = pruning_offset = 0
    fingerprint = recipe.fingerprint()
    with OutputRecorder(family, [teacher, student], [teacher_layers, student_layers]) as recorder:
        for index, (stage, steps) in enumerate(zip(recipe.stages, stage_steps, strict=True)):
            if index >= resume_stage:  # stages before the checkpoint's are done; their state is in the checkpoint
                grafting = Grafting(stage.grafting if method.grafting else None, stage_steps=steps, seed=recipe.seed,
                                    stage_index=index, student_layers=student_layers, teacher_layers=teacher_layers,
                                    layers_path=family.layers)
                plugin = CompressionPlugin(
                    method=method, stage=stage, grafting=grafting, distillation=recipe.distillation,
                    teacher=teacher, layer_map=layer_map, recorder=recorder, head=prepared.head,
                    pruner=pruner, pruning_offset=pruning_offset, forward_kwargs=family.attention_kwargs,
                    kept_heads=cut.structure.heads if cut is not None else None,
                )
                trainer = Trainer(
                    model=student, inputs=prepared.training_inputs(), config=stage, seed=recipe.seed,
                    fingerprint=fingerprint, plugin=plugin, stage=StagePosition(index, stage.name, offset),
                    progress=progress, show_progress=options.show_progress,
                )
                if options.resume and index == resume_stage:
                    trainer.resume()
                progress = trainer.fit()
            offset += steps
            if stage.prune:
                pruning_offset += steps
    assert progress is not None

    structure = CompressionRecord(layer_map=layer_map, method=recipe.method)
    if cut is not None:
        structure.cut = {"seconds": cut.score_seconds, "validation_before_training": cut.before_training}
    if recipe.pruning is not None:
        structure.granularity = recipe.pruning.granularity
        structure.sparsity = cut.sparsity if cut is not None else pruner.sparsity_report() if pruner else None
    kept = cut.kept_units() if cut is not None else pruner.kept_units() if pruner else EncoderShape.of(
        student).full_units()
    structure.flops = flops_report(EncoderShape.of(teacher), *kept, seq_len=recipe.task.max_seq_length)
    if progress.best_step is not None and context().is_main:
        atomic_write_text(run.model_dir / COMPRESSION_FILE, json.dumps(structure.to_dict(), indent=2) + "\n")
    main = spec.main_metric
    student_dev = progress.best_eval or {}
    summary = CompressSummary(
        run_dir=str(run.path), task=spec.name, method=recipe.method, teacher=recipe.teacher.model,
        main_metric=main, dev_split=prepared.dev_name, teacher_dev=teacher_dev, student_dev=student_dev,
        retained=(student_dev[main] / teacher_dev[main]) if student_dev and teacher_dev[main] else None,
        best_step=progress.best_step, steps=progress.step,
        parameters=cut.parameters if cut is not None else parameter_counts(linears),
        structure=structure, train_seconds=round(progress.train_seconds, 1),
        wall_seconds=round(time.perf_counter() - started, 1), data=prepared.data_summary(),
        environment=prepared.environment, model_dir=str(run.model_dir) if progress.best_step else None,
        selected_on="validation" if prepared.validation_data is not None else "dev",
        validation=progress.best_validation, baseline=prepared.dev_baseline(),
    )
    if recipe.export.fold and summary.model_dir and context().is_main:
        summary.fold = fold_model_dir(run.model_dir, run.path / FOLDED_DIR)
    run.write_summary(summary)
    barrier()
    return summary


def _before_training(student: nn.Module, pruner: Pruner, recipe: Recipe, prepared: PreparedRun, *, resume: bool,
                     show_progress: bool) -> OneShotCut | None:
    """What pruning does before the first step: a warm start's first-order scores, or the whole one-shot cut
    (scored, checked, folded, evaluated on the validation rows and recorded; rebuilt from its record on resume)."""
    assert recipe.pruning is not None
    stage = recipe.stages[0]
    scoring = Scoring(train_data=prepared.train_data, collate=prepared.collate, batch_size=stage.batch_size,
                      batches=recipe.pruning.score_batches, seed=recipe.seed, head=prepared.head,
                      device=prepared.device, precision=prepared.precision)
    if not pruner.cuts_before_training:
        if recipe.pruning.warm_start and not resume:
            score_units(student, pruner, scoring)  # the criterion's state is checkpointed: a resumed run has it
        return None
    cut_file = prepared.run.path / CUT_FILE
    if resume:
        return restore_cut(student, cut_file)
    check_cut_target(recipe.pruning, EncoderShape.of(student))
    cut = cut_student(student, pruner, scoring)
    if prepared.validation_data is not None:  # how good the cut is before any training
        cut = replace(cut, before_training=evaluate(
            student, prepared.validation_data, prepared.spec, collate=prepared.collate, device=prepared.device,
            batch_size=stage.eval_batch_size, description="cut validation", show_progress=show_progress))
    if context().is_main:
        write_cut(cut, cut_file)
    return cut
