"""`spdc fold RUN_DIR|MODEL_DIR`: remove pruned heads and FFN neurons for a physically smaller model."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from spdc.cli.common import handle_errors, json_option, quiet_libraries
from spdc.core.console import print_json, stderr


@click.command("fold")
@click.argument("path", metavar="RUN_DIR|MODEL_DIR", type=click.Path(path_type=Path))
@click.option("--out", "output_dir", type=click.Path(path_type=Path),
              help="Folded model directory (default RUN_DIR/folded, or MODEL_DIR-folded).")
@json_option
@handle_errors
def fold_command(path: Path, output_dir: Path | None, json_output: bool) -> None:
    """Fold masks into weights: pruned heads and FFN neurons are cut out of the matrices (exact), unstructured
    zeros stay as zeros. The logits are checked against the unfolded model before anything is written."""
    import spdc

    quiet_libraries()
    report = spdc.fold(path, output_dir=output_dir)
    if json_output:
        print_json(report.to_json())
        return
    structure = report.structure
    if structure:
        table = Table(title=f"folded {report.source}", min_width=40)
        for column in ("layer", "heads kept", "FFN neurons kept"):
            table.add_column(column, justify="right")
        for layer, (heads, neurons) in enumerate(zip(structure["kept_heads"], structure["kept_neurons"], strict=True)):
            table.add_row(str(layer), f"{heads}/{structure['heads_per_layer']}",
                          f"{neurons}/{structure['neurons_per_layer']}")
        stderr.print(table)
    else:
        stderr.print("no whole head or neuron is pruned: the model keeps its shape (zeros stay as zeros)")
    parameters = report.parameters
    stderr.print(f"parameters {parameters['before']:,} -> {parameters['after']:,}; max logit difference "
                 f"{report.max_logit_difference:.1e}; written to {report.folded_dir}")
