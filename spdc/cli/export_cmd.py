"""`spdc export RUN_DIR|MODEL_DIR --onnx`: fold, export, optimise, quantise, then check parity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from spdc.cli.common import handle_errors, json_option, quiet_libraries
from spdc.cli.parity_view import parity_table
from spdc.console import print_json, stderr
from spdc.recipe import ExportConfig, validate_task


@click.command("export")
@click.argument("path", metavar="RUN_DIR|MODEL_DIR", type=click.Path(path_type=Path))
@click.option("--onnx", "onnx_format", is_flag=True, default=True, help="Export to ONNX (the only format; default).")
@click.option("--opset", type=click.IntRange(14, 23), help="ONNX opset (default: recipe, else 17).")
@click.option("--optimize", type=click.Choice(["O0", "O1", "O2", "O3"]), help="Optimisation level (default O2).")
@click.option("--quantize", type=click.Choice(["none", "dynamic-int8"]), help="Quantisation (default none).")
@click.option("--dynamo/--no-dynamo", default=None, help="torch.export-based exporter (default: TorchScript).")
@click.option("--task", "task_name", help="Task for the parity check when exporting a bare model directory.")
@click.option("--samples", type=click.IntRange(min=1), help="Parity on the first N dev rows (default: all).")
@click.option("--fold/--no-fold", "fold_units", default=True, show_default=True,
              help="Cut pruned heads/neurons out first; --no-fold keeps the full-size masked model (comparisons).")
@click.option("--validate/--no-validate", default=True, show_default=True, help="Run the parity check.")
@click.option("--threads", type=click.IntRange(min=1), help="onnxruntime threads for the parity check.")
@click.option("--out", "output_dir", type=click.Path(path_type=Path),
              help="Artifact folder (default RUN_DIR/onnx[-int8] or MODEL_DIR-onnx[-int8]).")
@json_option
@handle_errors
def export_command(
    path: Path, onnx_format: bool, opset: int | None, optimize: str | None, quantize: str | None,
    dynamo: bool | None, task_name: str | None, samples: int | None, fold_units: bool, validate: bool,
    threads: int | None,
    output_dir: Path | None, json_output: bool,
) -> None:
    """Export a run (its student, folded) or a model directory to a validated ONNX artifact. Settings come from
    the run's recipe `export` section; options given here override them. Exit code 7 when parity fails (the
    artifact is kept and marked failed in spdc_manifest.json)."""
    del onnx_format  # ONNX is the only format so far
    quiet_libraries()
    from spdc.export import ExportSource, export_artifact

    source = ExportSource.resolve(path)
    if task_name is not None:
        source.task = validate_task({"name": task_name})
    overrides: dict[str, Any] = {key: value for key, value in (
        ("opset", opset), ("optimize", optimize), ("quantize", quantize), ("dynamo", dynamo), ("samples", samples),
    ) if value is not None}
    settings = ExportConfig.model_validate({**source.settings.model_dump(), **overrides})
    out = output_dir or source.default_output(settings)
    def show_step(step: str) -> None:
        if not json_output:
            stderr.print(f"{step}...")

    manifest = export_artifact(source, out, settings, validate=validate, fold_units=fold_units, threads=threads,
                               show_progress=not json_output, on_step=show_step)
    if json_output:
        print_json({"ok": True, "artifact": str(out), "manifest": manifest})
        return
    export = manifest["export"]
    stderr.print(f"exported {path} -> {out}/model.onnx ({manifest['sizes']['onnx_bytes'] / 1e6:.1f} MB, "
                 f"{export['precision']}, {export['optimize']}, fused: "
                 f"{', '.join(f'{k} x{v}' for k, v in export['fused_operators'].items()) or 'none'})")
    for note in export["notes"]:
        stderr.print(f"[yellow]note:[/] {note}")
    if manifest["parity"]:
        stderr.print(parity_table(manifest["parity"]))
    stderr.print(f"status: {manifest['status']}")
