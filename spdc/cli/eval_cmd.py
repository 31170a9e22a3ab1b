"""`spdc eval MODEL_DIR`: score a model on a task split with the task's official metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from spdc.cli.common import handle_errors, json_option, metrics_table, quiet_libraries
from spdc.console import print_json, stderr
from spdc.recipe import TaskConfig, load_recipe, validate_task


def _model_dir(path: Path) -> Path:
    """Accept a run directory (its model/ subfolder) as well as a model directory."""
    return path / "model" if (path / "model" / "config.json").is_file() else path


@click.command("eval")
@click.argument("model_path", metavar="MODEL_DIR", type=click.Path(path_type=Path))
@click.option("--task", "task_name", help="GLUE task name (e.g. mrpc); or use --recipe for a custom task.")
@click.option("--recipe", "recipe_file", type=click.Path(path_type=Path), help="Take the task section from a recipe.")
@click.option("--split", default=None, help="Split to score (default: the task's dev split).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Folder holding the task's TSV files.")
@click.option("--max-samples", type=click.IntRange(min=1), help="Score only the first N rows.")
@click.option("--max-seq-length", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@json_option
@handle_errors
def eval_command(
    model_path: Path, task_name: str | None, recipe_file: Path | None, split: str | None, data_dir: Path | None,
    max_samples: int | None, max_seq_length: int, batch_size: int, device: str, json_output: bool,
) -> None:
    """Score a model directory (or a run directory) on a task split with the task's official metrics."""
    task_config = _task_config(task_name, recipe_file, data_dir, max_samples, max_seq_length)
    quiet_libraries()
    from spdc.data.batching import DynamicPaddingCollator, encode
    from spdc.data.sources import load_split, task_spec
    from spdc.models import load_classifier
    from spdc.runtime import resolve_device
    from spdc.training.evaluation import evaluate

    spec = task_spec(task_config)
    split_name = split or spec.dev_splits[0]
    data = load_split(task_config, split_name)
    loaded = load_classifier(str(_model_dir(model_path)), spec)
    torch_device = resolve_device(device)
    metrics = evaluate(
        loaded.model.to(torch_device), encode(data.examples, loaded.tokenizer, task_config.max_seq_length), spec,
        collate=DynamicPaddingCollator(loaded.tokenizer, regression=spec.is_regression), batch_size=batch_size,
        device=torch_device, description=f"eval {spec.name} {split_name}", show_progress=not json_output,
    )
    result: dict[str, Any] = {
        "model": str(model_path), "task": spec.name, "split": split_name, "rows": len(data.examples),
        "dropped": data.dropped, "source": data.source, "main_metric": spec.main_metric, "metrics": metrics,
    }
    if json_output:
        print_json({"ok": True, **result})
    else:
        stderr.print(metrics_table(f"{spec.name} {split_name}: {len(data.examples)} rows from {data.source}", metrics))


def _task_config(
    task_name: str | None, recipe_file: Path | None, data_dir: Path | None, max_samples: int | None,
    max_seq_length: int,
) -> TaskConfig:
    if (task_name is None) == (recipe_file is None):
        raise click.UsageError("give exactly one of --task or --recipe")
    if recipe_file is not None:
        base = load_recipe(recipe_file).task
    else:
        base = validate_task({"name": task_name})
    updates: dict[str, Any] = {"max_seq_length": max_seq_length}
    if data_dir is not None:
        updates["data_dir"] = data_dir
    if max_samples is not None:
        updates["max_eval_samples"] = max_samples
    return base.model_copy(update=updates)
