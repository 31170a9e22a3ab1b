"""`spdc compress`: build the student from a fine-tuned teacher and run the recipe's stages (SPD, KD or
magnitude pruning), leaving a run directory with the best student at the final sparsity."""

from __future__ import annotations

import json
import math
import time
from typing import Any

from spdc.architectures import architecture_for, encoder_layers, prunable_linears
from spdc.atomic import atomic_write_text
from spdc.errors import RecipeError
from spdc.finetune import finetune
from spdc.folded_model import fold_model_dir
from spdc.pipeline import RunOptions, prepare_run
from spdc.plots import plot_train_dev
from spdc.pruning.pruner import EncoderShape, Pruner
from spdc.recipe import Recipe
from spdc.spd import CompressionPlugin
from spdc.student import OutputRecorder, build_student
from spdc.training.checkpoint import latest_checkpoint, read_header
from spdc.training.evaluation import evaluate
from spdc.training.loop import StagePosition, Trainer

STRUCTURE_FILE = "spdc_structure.json"
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
    grafted = [i for i, stage in enumerate(recipe.stages) if stage.grafting is not None]
    reshaped = recipe.student.num_layers is not None or recipe.distillation.layer_map is not None
    if recipe.method == "spd" and grafted and reshaped:
        problems.append(f"stages.{grafted[0]}.grafting: grafting swaps layer i of the student and the teacher, so "
                        "it needs a student with every teacher layer (student.num_layers and "
                        "distillation.layer_map null)")
    if problems:
        raise RecipeError(f"invalid recipe for compress ({recipe.name}):\n  " + "\n  ".join(problems))


def _steps(stage_config: Any, rows: int) -> int:
    return stage_config.max_steps or stage_config.epochs * math.ceil(rows / stage_config.batch_size)


def with_finetuned_teacher(recipe: Recipe, options: RunOptions) -> Recipe:
    """When `teacher.finetuned` is false, fine-tune the teacher first (or reuse/resume that run) into
    <run dir>-teacher and point the recipe at its model."""
    if recipe.teacher.finetuned:
        return recipe
    out = options.output_dir or recipe.resolved_output_dir()
    teacher_dir = out.with_name(f"{out.name}-teacher")
    if not (teacher_dir / "summary.json").is_file():
        resumable = (teacher_dir / "checkpoints" / "latest").is_file()
        finetune(recipe, RunOptions(output_dir=teacher_dir, resume=resumable, overwrite=not resumable,
                                    show_progress=options.show_progress))
    teacher = recipe.teacher.model_copy(update={"model": str(teacher_dir / "model"), "finetuned": True})
    return recipe.model_copy(update={"teacher": teacher})


def compress(recipe: Recipe, options: RunOptions) -> dict[str, Any]:
    check_compress_recipe(recipe)
    started = time.perf_counter()
    recipe = with_finetuned_teacher(recipe, options)
    prepared = prepare_run(recipe, options)
    spec, device, run, teacher = prepared.spec, prepared.device, prepared.run, prepared.model
    if recipe.method != "magnitude":
        teacher.set_attn_implementation("eager")  # attention probabilities are a distillation target
    arch = architecture_for(teacher)
    student, layer_map = build_student(teacher, arch, recipe.student, recipe.distillation.layer_map)
    teacher.to(device)
    train_data, dev_data, collate = prepared.train_data, prepared.dev_data, prepared.collate
    teacher_dev = evaluate(teacher, dev_data, spec, collate=collate, batch_size=recipe.stages[0].eval_batch_size,
                           device=device, description="teacher dev", show_progress=options.show_progress)

    student_layers = encoder_layers(student, arch)
    linears = prunable_linears(student_layers, arch)
    shape = EncoderShape.of(student.config)
    stage_steps = [_steps(stage, len(train_data)) for stage in recipe.stages]
    pruning_total = sum(steps for steps, stage in zip(stage_steps, recipe.stages, strict=True) if stage.prune)
    pruner = Pruner(recipe.pruning, linears, shape, pruning_total) if recipe.pruning else None
    teacher_layers = encoder_layers(teacher, arch)
    recorder = OutputRecorder(arch, [teacher, student], [teacher_layers, student_layers])

    resume_stage = 0
    if options.resume:
        checkpoint = latest_checkpoint(run.checkpoints_dir)
        resume_stage = read_header(checkpoint)["stage"] if checkpoint else 0
    progress = None
    offset = pruning_offset = 0
    fingerprint = recipe.fingerprint()
    for index, (stage, steps) in enumerate(zip(recipe.stages, stage_steps, strict=True)):
        if index >= resume_stage:  # stages before the checkpoint's are done; their state is in the checkpoint
            plugin = CompressionPlugin(
                method=recipe.method, stage=stage, stage_index=index, stage_steps=steps,
                distillation=recipe.distillation, teacher=teacher, teacher_layers=teacher_layers,
                student_layers=student_layers, layers_path=arch.layers, layer_map=layer_map, recorder=recorder,
                regression=spec.is_regression, pruner=pruner, pruning_offset=pruning_offset, seed=recipe.seed,
            )
            trainer = Trainer(
                model=student, tokenizer=prepared.tokenizer, task=spec, train_data=train_data, dev_data=dev_data,
                collate=collate, config=stage, run=run, device=device, seed=recipe.seed, fingerprint=fingerprint,
                plugin=plugin, stage=StagePosition(index, stage.name, offset), progress=progress,
                show_progress=options.show_progress,
            )
            if options.resume and index == resume_stage:
                trainer.resume()
            progress = trainer.fit()
        offset += steps
        if stage.prune:
            pruning_offset += steps
    assert progress is not None

    structure: dict[str, Any] = {"layer_map": layer_map, "method": recipe.method}
    if pruner is not None:
        structure.update(granularity=recipe.pruning.granularity if recipe.pruning else None,
                         sparsity=pruner.sparsity_report(), flops=pruner.flops(recipe.task.max_seq_length))
    if progress.best_step is not None:
        atomic_write_text(run.model_dir / STRUCTURE_FILE, json.dumps(structure, indent=2) + "\n")
    main = spec.main_metric
    student_dev = progress.best_eval or {}
    summary = {
        "run_dir": str(run.path), "task": spec.name, "method": recipe.method, "teacher": recipe.teacher.model,
        "main_metric": main, "dev_split": prepared.dev_name, "teacher_dev": teacher_dev, "student_dev": student_dev,
        "retained": (student_dev[main] / teacher_dev[main]) if student_dev and teacher_dev[main] else None,
        "best_step": progress.best_step, "steps": progress.step,
        "parameters": _parameter_counts(linears),
        "structure": structure,
        "train_seconds": round(progress.train_seconds, 1), "wall_seconds": round(time.perf_counter() - started, 1),
        "data": prepared.data_summary(), "environment": prepared.environment,
        "model_dir": str(run.model_dir) if progress.best_step else None,
    }
    if recipe.export.fold and summary["model_dir"]:
        summary["fold"] = fold_model_dir(run.model_dir, run.path / FOLDED_DIR)
    run.write_summary(summary)
    plot_train_dev(run.read_metrics(), main, run.path / "train_dev.png", title=f"{recipe.name}: {spec.name} {main}")
    return summary


def _parameter_counts(linears: dict[str, Any]) -> dict[str, int]:
    total = sum(linear.weight.numel() for linear in linears.values())
    nonzero = sum(int(linear.weight.count_nonzero()) for linear in linears.values())
    return {"encoder_matrices": total, "encoder_matrices_nonzero": nonzero}
