"""The export artifact: one folder that optimum's ORTModelForSequenceClassification can read (model.onnx,
config.json, tokenizer files) plus `spdc_manifest.json`: where it came from, how it was built, sizes, and the
parity result that says whether it may be deployed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from spdc.atomic import atomic_write_text
from spdc.errors import ArtifactError

ONNX_FILE = "model.onnx"
MANIFEST_FILE = "spdc_manifest.json"
MANIFEST_FORMAT = "spdc-onnx-artifact"


def read_manifest(artifact: Path) -> dict[str, Any]:
    path = artifact / MANIFEST_FILE
    if not (artifact / ONNX_FILE).is_file() or not path.is_file():
        raise ArtifactError(f"{artifact} is not an spdc export artifact (needs {ONNX_FILE} and {MANIFEST_FILE}); "
                            "make one with `spdc export RUN_DIR --onnx`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"cannot read {path}: {exc}") from None
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ArtifactError(f"{path} is not an spdc manifest (format {manifest.get('format')!r})")
    return manifest


def write_manifest(artifact: Path, manifest: dict[str, Any]) -> None:
    atomic_write_text(artifact / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")


def record_parity(manifest: dict[str, Any], report: dict[str, Any] | None) -> dict[str, Any]:
    """Store a parity result and the status it implies ('passed', 'failed' or 'not-validated')."""
    status = "not-validated" if report is None else ("passed" if report["passed"] else "failed")
    return {**manifest, "parity": report, "status": status}
