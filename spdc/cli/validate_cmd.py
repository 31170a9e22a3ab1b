"""`spdc validate ARTIFACT`: re-run the parity check of an export artifact and record the verdict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from spdc.cli.common import handle_errors, json_option, quiet_libraries
from spdc.cli.parity_view import parity_table
from spdc.console import print_json, stderr
from spdc.errors import ArtifactError, ParityError
from spdc.recipe import ParityThresholds, TaskConfig, validate_task


@click.command("validate")
@click.argument("artifact", metavar="ARTIFACT", type=click.Path(path_type=Path))
@click.option("--task", "task_name", help="Task to check on (default: the task recorded in the manifest).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Folder holding the task's TSV files.")
@click.option("--samples", type=click.IntRange(min=1), help="Check the first N dev rows (default: manifest, else all).")
@click.option("--reference", type=click.Path(path_type=Path),
              help="PyTorch model to compare with (default: the source recorded in the manifest).")
@click.option("--threads", type=click.IntRange(min=1), help="onnxruntime threads.")
@json_option
@handle_errors
def validate_command(
    artifact: Path, task_name: str | None, data_dir: Path | None, samples: int | None, reference: Path | None,
    threads: int | None, json_output: bool,
) -> None:
    """Compare ARTIFACT/model.onnx with its PyTorch source on the task's dev rows: logit differences, top-1
    agreement and the task metric, against the thresholds in the manifest. Exit code 7 when a check fails."""
    from spdc.artifact import ONNX_FILE, read_manifest, record_parity, write_manifest

    manifest = read_manifest(artifact)
    task = _task(manifest, task_name, data_dir)
    reference_dir = reference or Path(manifest["source"]["model_dir"])
    quiet_libraries()
    from spdc.models import load_classifier
    from spdc.validation import check_parity

    loaded = load_classifier(str(reference_dir), None)
    report = check_parity(
        artifact / ONNX_FILE, loaded.model, loaded.tokenizer, task, precision=manifest["export"]["precision"],
        thresholds=ParityThresholds.model_validate(manifest["thresholds"]), samples=samples or manifest.get("samples"),
        threads=threads, show_progress=not json_output,
    ).to_json()
    manifest = record_parity(manifest, report)
    write_manifest(artifact, manifest)
    if json_output:
        print_json({"ok": report["passed"], "artifact": str(artifact), "reference": str(reference_dir),
                    "parity": report})
    else:
        stderr.print(parity_table(report))
    if not report["passed"]:
        if json_output:
            raise SystemExit(ParityError.exit_code)
        raise ParityError(f"parity failed for {artifact}; the manifest now says status: failed")


def _task(manifest: dict[str, Any], task_name: str | None, data_dir: Path | None) -> TaskConfig:
    if task_name is not None:
        task = validate_task({"name": task_name})
    elif manifest.get("task"):
        task = TaskConfig.model_validate(manifest["task"])
    else:
        raise ArtifactError("the manifest records no task: name one with --task")
    return task.model_copy(update={"data_dir": data_dir}) if data_dir is not None else task
