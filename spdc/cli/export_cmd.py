"""`spdc export [RUN_DIR|RECIPE|MODEL_DIR] --onnx`: fold, export, optimise, quantise, then check parity."""

from __future__ import annotations

from pathlib import Path

import click

from spdc.cli.common import handle_errors, json_option, option_type, quiet_libraries
from spdc.cli.parity_view import parity_table
from spdc.core.console import print_json, stderr


@click.command("export")
@click.argument("path", metavar="[RUN_DIR|RECIPE|MODEL_DIR]", required=False, type=click.Path(path_type=Path))
@click.option("--onnx", "onnx_format", is_flag=True, default=True, help="Export to ONNX (the only format; default).")
@click.option("--opset", type=option_type("opset"), help="ONNX opset (default: recipe, else 17).")
@click.option("--optimize", type=option_type("optimize"), help="Optimisation level (default O2).")
@click.option("--quantize", type=option_type("quantize"),
              help="int8 quantisation (default none): dynamic, or static calibrated on the task's training rows.")
@click.option("--int8-weights", type=click.Choice(["per-channel", "per-tensor"]), help="int8 weight scales.")
@click.option("--int8-graph", type=click.Choice(["fused", "plain"]),
              help="Quantise after onnxruntime's transformer fusions (fused) or the plain export.")
@click.option("--int8-embeddings/--no-int8-embeddings", default=None, help="Quantise the embedding table too.")
@click.option("--int8-fallback/--no-int8-fallback", default=None,
              help="Keep the most sensitive operators in fp32 until int8 parity passes (default on).")
@click.option("--precision", type=option_type("precision"),
              help="Float precision of the graph (default fp32); fp16 halves the file, for GPUs.")
@click.option("--max-metric-drop", type=option_type("max_metric_drop"),
              help="int8 parity: largest allowed drop of the main metric (default: recipe, else 0.005).")
@click.option("--sparse", type=option_type("sparse"),
              help="Store mostly-zero matrices as sparse initializers (default auto).")
@click.option("--dynamo/--no-dynamo", default=None, help="torch.export-based exporter (default: TorchScript).")
@click.option("--task", "task_name", help="Task for the parity check when exporting a bare model directory.")
@click.option("--samples", type=option_type("samples"), help="Parity on the first N dev rows (default: all).")
@click.option("--fold/--no-fold", "fold_units", default=True, show_default=True,
              help="Cut pruned heads/neurons out first; --no-fold keeps the full-size masked model (comparisons).")
@click.option("--validate/--no-validate", default=True, show_default=True, help="Run the parity check.")
@click.option("--threads", type=option_type("threads"), help="onnxruntime threads for the parity check.")
@click.option("--out", "output_dir", type=click.Path(path_type=Path),
              help="Artifact folder (default RUN_DIR/onnx[-int8] or MODEL_DIR-onnx[-int8]).")
@json_option
@handle_errors
def export_command(
    path: Path | None, onnx_format: bool, opset: int | None, optimize: str | None, quantize: str | None,
    int8_weights: str | None, int8_graph: str | None, int8_embeddings: bool | None, int8_fallback: bool | None,
    precision: str | None, max_metric_drop: float | None, sparse: str | None, dynamo: bool | None,
    task_name: str | None, samples: int | None, fold_units: bool, validate: bool, threads: int | None,
    output_dir: Path | None, json_output: bool,
) -> None:
    """Export a run (its student, folded), the run of a RECIPE, or a model directory to a validated ONNX
    artifact; with no path, the run the last `spdc compress` finished in this directory. Settings come from the
    run's recipe `export` section; options given here override them. Exit code 7 when parity fails (the
    artifact is kept and marked failed in spdc_manifest.json)."""
    del onnx_format  # ONNX is the only format so far
    import spdc
    from spdc.api import resolve_export_source

    source = resolve_export_source(path)
    if not json_output and source.reason != "given":
        stderr.print(f"exporting {source.path}: {source.reason}")
    quiet_libraries()

    def show_step(step: str) -> None:
        if not json_output:
            stderr.print(f"{step}...")

    result = spdc.export(source.path, output_dir=output_dir, task=task_name, opset=opset, optimize=optimize,
                         quantize=quantize, dynamo=dynamo, samples=samples, fold_units=fold_units, validate=validate,
                         threads=threads,
                         int8_per_channel=None if int8_weights is None else int8_weights == "per-channel",
                         int8_after_fusion=None if int8_graph is None else int8_graph == "fused",
                         int8_embeddings=int8_embeddings, int8_fallback=int8_fallback, sparse=sparse,
                         max_metric_drop=max_metric_drop, precision=precision,
                         show_progress=not json_output, on_step=show_step)
    if json_output:
        print_json(result.to_json())
        return
    manifest, export = result.manifest, result.manifest.export
    fused = ", ".join(f"{name} x{count}" for name, count in export.fused_operators.items()) or "none"
    stderr.print(f"exported {source.path} -> {result.artifact}/model.onnx ({manifest.sizes.onnx_bytes / 1e6:.1f} MB, "
                 f"{export.precision}, {export.optimize}, fused: {fused})")
    for note in export.notes:
        stderr.print(f"[yellow]note:[/] {note}")
    if export.int8 is not None:
        stderr.print(f"int8: {export.int8.reason}")
        if export.int8.fp32_operators:
            stderr.print(f"kept in fp32: {', '.join(export.int8.fp32_operators)}")
    if export.sparse is not None:
        stderr.print(f"sparse storage: {export.sparse.matrices} matrices, {export.sparse.dense_bytes / 1e6:.1f} MB -> "
                     f"{export.sparse.sparse_bytes / 1e6:.1f} MB")
    if manifest.parity:
        stderr.print(parity_table(manifest.parity))
    stderr.print(f"status: {manifest.status}")
