"""`spdc compress RECIPE`: run the recipe's compression stages into a run directory."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from spdc.cli.common import handle_errors, json_option, run_directory_options, quiet_libraries, set_option
from spdc.console import print_json, stderr
from spdc.recipe import load_recipe


@click.command("compress")
@click.argument("recipe_file", metavar="RECIPE", type=click.Path(path_type=Path))
@set_option
@run_directory_options
@json_option
@handle_errors
def compress_command(
    recipe_file: Path, overrides: tuple[str, ...], output_dir: Path | None, resume: bool, overwrite: bool,
    json_output: bool,
) -> None:
    """Compress the recipe's fine-tuned teacher (method spd, kd or magnitude) stage by stage."""
    recipe = load_recipe(recipe_file, list(overrides))
    quiet_libraries()
    from spdc.compress import compress  # checks the compress-only rules before writing anything
    from spdc.pipeline import RunOptions

    summary = compress(recipe, RunOptions(output_dir=output_dir, resume=resume, overwrite=overwrite))
    if json_output:
        print_json({"ok": True, **summary})
        return
    main = summary["main_metric"]
    table = Table(title=f"{summary['task']} {summary['dev_split']}: {summary['method']}", min_width=40)
    for column in ("model", main, "sparsity (encoder matrices)", "FLOPs reduction"):
        table.add_column(column, justify="right")
    sparsity = summary["structure"].get("sparsity", {}).get("overall", 0.0)
    flops = summary["structure"].get("flops", {}).get("reduction", 0.0)
    table.add_row("teacher", f"{summary['teacher_dev'][main]:.4f}", "0.000", "0.000")
    student = summary["student_dev"].get(main)
    table.add_row("student", f"{student:.4f}" if student is not None else "-", f"{sparsity:.3f}", f"{flops:.3f}")
    stderr.print(table)
    stderr.print(f"student: {summary['model_dir']}  ({summary['train_seconds']} s training)")
