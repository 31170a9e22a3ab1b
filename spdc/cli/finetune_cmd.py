"""`spdc finetune RECIPE`: fine-tune a teacher into a run directory."""

from __future__ import annotations

from pathlib import Path

import click

from spdc.cli.common import (
    handle_errors,
    json_option,
    metrics_table,
    quiet_libraries,
    run_directory_options,
    set_option,
)
from spdc.core.console import print_json, stderr


@click.command("finetune")
@click.argument("recipe_file", metavar="RECIPE", type=click.Path(path_type=Path))
@set_option
@run_directory_options
@json_option
@handle_errors
def finetune_command(
    recipe_file: Path, overrides: tuple[str, ...], output_dir: Path | None, resume: bool, overwrite: bool,
    json_output: bool,
) -> None:
    """Fine-tune the recipe's teacher on its task; writes a run directory with the best model."""
    import spdc

    recipe = spdc.load_recipe(recipe_file, overrides)
    quiet_libraries()
    summary = spdc.finetune(recipe, output_dir=output_dir, resume=resume, overwrite=overwrite)
    if json_output:
        print_json(summary.to_json())
        return
    for name, info in summary.data.items():
        dropped = f", {info.dropped} bad rows dropped" if info.dropped else ""
        stderr.print(f"{name}: {info.rows} rows from {info.source}{dropped}")
    stderr.print(metrics_table(f"{summary.task} {summary.dev_split} (best step {summary.best_step})",
                               summary.best_dev(), summary.baseline))
    stderr.print(f"model: {summary.model_dir}  ({summary.train_seconds} s training)")
