"""`spdc eval MODEL_DIR`: score a model on a task split with the task's official metrics."""

from __future__ import annotations

from pathlib import Path

import click

from spdc.cli.common import handle_errors, json_option, metrics_table, option_type, quiet_libraries
from spdc.core.console import print_json, stderr


@click.command("eval")
@click.argument("model_path", metavar="MODEL_DIR", type=click.Path(path_type=Path))
@click.option("--task", "task_name", help="GLUE task name (e.g. mrpc); or use --recipe for a custom task.")
@click.option("--recipe", "recipe_file", type=click.Path(path_type=Path), help="Take the task section from a recipe.")
@click.option("--split", default=None, help="Split to score (default: the task's dev split).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Folder holding the task's TSV files.")
@click.option("--max-samples", type=option_type("max_samples"), help="Score only the first N rows.")
@click.option("--max-seq-length", type=option_type("max_seq_length"),
              help="Tokens per row (default: the recipe's, else 128; capped to the model's positions).")
@click.option("--batch-size", type=option_type("batch_size"), default=64, show_default=True)
@click.option("--device", type=option_type("device"), default="auto", show_default=True)
@json_option
@handle_errors
def eval_command(
    model_path: Path, task_name: str | None, recipe_file: Path | None, split: str | None, data_dir: Path | None,
    max_samples: int | None, max_seq_length: int | None, batch_size: int, device: str, json_output: bool,
) -> None:
    """Score a model directory (or a run directory) on a task split with the task's official metrics."""
    if (task_name is None) == (recipe_file is None):
        raise click.UsageError("give exactly one of --task or --recipe")
    import spdc

    quiet_libraries()
    result = spdc.evaluate(model_path, task=task_name, recipe=recipe_file, split=split, data_dir=data_dir,
                           max_samples=max_samples, max_seq_length=max_seq_length, batch_size=batch_size,
                           device=device, show_progress=not json_output)
    if json_output:
        print_json(result.to_json())
    else:
        stderr.print(metrics_table(f"{result.task} {result.split}: {result.rows} rows from {result.source}",
                                   result.metrics, result.baseline))
