"""The export artifact: one folder that optimum's ORTModelForSequenceClassification can read (model.onnx,
config.json, tokenizer files) plus `spdc_manifest.json`: where it came from, how it was built, sizes, and the
parity result that says whether it may be deployed. The manifest and parity report are typed here once, for
the writer (`spdc export`) and the readers (`spdc validate`, `spdc bench`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from spdc.core.atomic import atomic_write_text
from spdc.core.errors import ArtifactError
from spdc.core.records import Record, Result

ONNX_FILE = "model.onnx"
MANIFEST_FILE = "spdc_manifest.json"
MANIFEST_FORMAT = "spdc-onnx-artifact"


class ParityCheck(Record):
    name: str
    value: float
    limit: float
    passed: bool


class ParityReport(Record):
    precision: str
    task: str
    split: str
    rows: int
    main_metric: str
    max_abs_diff: float
    mean_abs_diff: float
    agreement: float | None  # None for regression
    metrics_torch: dict[str, float]
    metrics_onnx: dict[str, float]
    checks: list[ParityCheck]
    passed: bool

    def metric_drop(self) -> float:
        """How much of the main metric the ONNX model lost against PyTorch (negative: it gained)."""
        return self.metrics_torch[self.main_metric] - self.metrics_onnx[self.main_metric]


class ManifestSource(Record):
    path: str
    kind: Literal["run", "model"]
    model_dir: str
    recipe_fingerprint: str | None


class Int8Record(Record):
    """How the int8 model was built, and which operators stayed fp32 and why."""

    mode: str
    per_channel: bool
    after_fusion: bool
    embeddings: bool
    fp32_operators: list[str]
    reason: str
    initial_drop: float | None = None
    final_drop: float | None = None
    sensitivity: list[tuple[str, float]] = Field(default_factory=list)  # most sensitive first (up to 10)
    tried: list[tuple[int, float]] = Field(default_factory=list)  # (operators kept fp32, metric drop), in order


class SparseRecord(Record):
    matrices: int
    dense_bytes: int
    sparse_bytes: int


class ExportSettings(Record):
    exporter: str
    opset: int
    optimize: str
    requested_optimize: str
    fused_operators: dict[str, int]
    notes: list[str]
    quantize: str
    precision: str
    versions: dict[str, str]
    int8: Int8Record | None = None
    sparse: SparseRecord | None = None


class ArtifactSizes(Record):
    onnx_bytes: int
    parameters: int
    source_parameters: int


class ExportManifest(Record):
    format: Literal["spdc-onnx-artifact"] = "spdc-onnx-artifact"
    version: int = 1
    spdc: str
    created: str
    source: ManifestSource
    task: dict[str, Any] | None
    folded: dict[str, Any] | None
    export: ExportSettings
    sizes: ArtifactSizes
    thresholds: dict[str, float]
    samples: int | None
    parity: ParityReport | None = None
    status: Literal["passed", "failed", "not-validated"] = "not-validated"

    def with_parity(self, report: ParityReport | None) -> ExportManifest:
        """This manifest with a parity result and the status it implies."""
        status = "not-validated" if report is None else ("passed" if report.passed else "failed")
        return self.model_copy(update={"parity": report, "status": status})

    def failed_checks(self) -> str:
        checks = self.parity.checks if self.parity else []
        return "; ".join(f"{c.name} = {c.value:.6g} (limit {c.limit:.6g})" for c in checks if not c.passed)


class ExportResult(Result):
    """`spdc export`: where the artifact is and its manifest."""

    artifact: str
    manifest: ExportManifest


class ValidateResult(Result):
    """`spdc validate`: the parity report, recorded in the artifact's manifest."""

    artifact: str
    reference: str
    parity: ParityReport

    @property
    def ok(self) -> bool:
        return self.parity.passed


def read_manifest(artifact: Path) -> ExportManifest:
    path = artifact / MANIFEST_FILE
    if not (artifact / ONNX_FILE).is_file() or not path.is_file():
        raise ArtifactError(f"{artifact} is not an spdc export artifact (needs {ONNX_FILE} and {MANIFEST_FILE}); "
                            "make one with `spdc export RUN_DIR --onnx`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ArtifactError(f"{path} is not an spdc manifest (format {found!r})")
    try:
        return ExportManifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise ArtifactError(f"{path} is not a valid spdc manifest: {problems}") from None


def write_manifest(artifact: Path, manifest: ExportManifest) -> None:
    atomic_write_text(artifact / MANIFEST_FILE, json.dumps(manifest.to_dict(), indent=2) + "\n")
