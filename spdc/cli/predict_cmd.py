"""`spdc predict ARTIFACT --input FILE --output FILE`: batch inference with an exported artifact."""

from __future__ import annotations

from pathlib import Path

import click

from spdc.cli.common import handle_errors, json_option, option_type, quiet_libraries
from spdc.core.console import print_json, stderr


@click.command("predict")
@click.argument("artifact", metavar="ARTIFACT", type=click.Path(path_type=Path))
@click.option("--input", "input_file", required=True, type=click.Path(path_type=Path),
              help="CSV, TSV, JSON or JSONL rows with the task's text columns (labels are not needed).")
@click.option("--output", "output_file", required=True, type=click.Path(path_type=Path),
              help="JSONL predictions: row number, label and scores (regression: score).")
@click.option("--batch-size", type=option_type("batch_size"), default=32, show_default=True)
@click.option("--threads", type=option_type("threads"), help="onnxruntime threads (default: the runtime's).")
@click.option("--skip-bad-rows", is_flag=True, help="Leave out rows that cannot be read (reported by number) "
              "instead of stopping before any output is written.")
@json_option
@handle_errors
def predict_command(artifact: Path, input_file: Path, output_file: Path, batch_size: int, threads: int | None,
                    skip_bad_rows: bool, json_output: bool) -> None:
    """Predict every row of a file with an exported artifact, into a JSONL file."""
    import spdc

    quiet_libraries()
    result = spdc.predict(artifact, input_file, output_file, batch_size=batch_size, threads=threads,
                          skip_bad_rows=skip_bad_rows, show_progress=not json_output)
    if json_output:
        print_json(result.to_json())
        return
    skipped = f", {result.skipped} bad rows left out" if result.skipped else ""
    stderr.print(f"{result.predicted} rows predicted into {result.output} ({result.rows_per_second} rows/s)"
                 f"{skipped}", highlight=False)
    for reason in result.skip_reasons:
        stderr.print(f"  skipped: {reason}", markup=False, highlight=False)
