"""`spdc validate ARTIFACT`: re-run the parity check of an export artifact and record the verdict."""

from __future__ import annotations

from pathlib import Path

import click

from spdc.cli.common import handle_errors, json_option, option_type, quiet_libraries
from spdc.cli.parity_view import parity_table
from spdc.core.console import print_json, stderr
from spdc.core.errors import ParityError


@click.command("validate")
@click.argument("artifact", metavar="ARTIFACT", type=click.Path(path_type=Path))
@click.option("--task", "task_name", help="Task to check on (default: the task recorded in the manifest).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Folder holding the task's TSV files.")
@click.option("--samples", type=option_type("samples"),
              help="Check the first N dev rows (default: manifest, else all).")
@click.option("--reference", type=click.Path(path_type=Path),
              help="PyTorch model to compare with (default: the source recorded in the manifest).")
@click.option("--threads", type=option_type("threads"), help="onnxruntime threads.")
@json_option
@handle_errors
def validate_command(
    artifact: Path, task_name: str | None, data_dir: Path | None, samples: int | None, reference: Path | None,
    threads: int | None, json_output: bool,
) -> None:
    """Compare ARTIFACT/model.onnx with its PyTorch source on the task's dev rows: logit differences, top-1
    agreement and the task metric, against the thresholds in the manifest. Exit code 7 when a check fails."""
    import spdc

    quiet_libraries()
    result = spdc.validate(artifact, task=task_name, data_dir=data_dir, samples=samples, reference=reference,
                           threads=threads, show_progress=not json_output)
    if json_output:
        print_json(result.to_json())
    else:
        stderr.print(parity_table(result.parity))
    if not result.ok:
        if json_output:
            raise SystemExit(ParityError.exit_code)
        raise ParityError(f"parity failed for {artifact}; the manifest now says status: failed")
