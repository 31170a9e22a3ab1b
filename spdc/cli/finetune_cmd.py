"""`spdc finetune RECIPE`: fine-tune a teacher into a run directory."""

from __future__ import annotations

from pathlib import Path

import click

from spdc.cli.common import handle_errors, json_option, run_directory_options, metrics_table, quiet_libraries, set_option
from spdc.console import print_json, stderr
from spdc.recipe import load_recipe


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
    recipe = load_recipe(recipe_file, list(overrides))
    quiet_libraries()
    from spdc.finetune import finetune
    from spdc.pipeline import RunOptions

    summary = finetune(
        recipe, RunOptions(output_dir=output_dir, resume=resume, overwrite=overwrite)
    )
    if json_output:
        print_json({"ok": True, **summary})
        return
    for name, info in summary["data"].items():
        dropped = f", {info['dropped']} bad rows dropped" if info["dropped"] else ""
        stderr.print(f"{name}: {info['rows']} rows from {info['source']}{dropped}")
    stderr.print(metrics_table(f"{summary['task']} {summary['dev_split']} (best step {summary['best_step']})",
                                summary["dev"]))
    stderr.print(f"model: {summary['model_dir']}  ({summary['train_seconds']} s training)")
