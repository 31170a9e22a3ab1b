"""`spdc compress RECIPE`: the whole compression job of a recipe into a run directory."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from spdc.cli.common import handle_errors, json_option, quiet_libraries, run_directory_options, set_option
from spdc.core.console import print_json, stderr


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
    """Compress the recipe's teacher (method spd, kd or magnitude) stage by stage: the teacher is fine-tuned
    first when `teacher.finetuned: false`, the student is folded with `export.fold` and exported to ONNX with a
    parity check with `export.onnx`. The run becomes the one `spdc export` and `spdc bench` use by default."""
    import spdc

    quiet_libraries()

    def show_step(step: str) -> None:
        if not json_output:
            stderr.print(f"{step}...")

    summary = spdc.compress(recipe_file, overrides=overrides, output_dir=output_dir, resume=resume,
                            overwrite=overwrite, on_step=show_step)
    if json_output:
        print_json(summary.to_json())
        return
    main = summary.main_metric
    table = Table(title=f"{summary.task} {summary.dev_split}: {summary.method}", min_width=40)
    for column in ("model", main, "sparsity (encoder matrices)", "FLOPs reduction"):
        table.add_column(column, justify="right")
    sparsity = (summary.structure.sparsity or {}).get("overall", 0.0)
    flops = (summary.structure.flops or {}).get("reduction", 0.0)
    table.add_row("teacher", f"{summary.teacher_dev[main]:.4f}", "0.000", "0.000")
    student = summary.student_dev.get(main)
    table.add_row("student", f"{student:.4f}" if student is not None else "-", f"{sparsity:.3f}", f"{flops:.3f}")
    if summary.baseline and main in summary.baseline:
        table.add_row("majority baseline", f"{summary.baseline[main]:.4f}", "", "")
    stderr.print(table)
    stderr.print(f"student: {summary.model_dir}  ({summary.train_seconds} s training)")
    if summary.fold:
        stderr.print(f"folded: {summary.fold.folded_dir}")
    if summary.artifact:
        stderr.print(f"ONNX artifact: {summary.artifact.path} ({summary.artifact.precision}, parity "
                     f"{summary.artifact.status})")
