"""spdc: Sparse Progressive Distillation Compressor for BERT-class classifiers.

The public API mirrors the CLI; every function returns a typed result whose `to_json()` is what the command
prints with `--json`:

    load_recipe(path, overrides)      -> Recipe
    finetune(recipe, ...)             -> FinetuneSummary
    compress(recipe, ...)             -> CompressSummary   (fine-tune teacher, stages, fold, export)
    fold(run_or_model_dir, ...)       -> FoldResult
    export(run_or_model_dir, ...)     -> ExportResult      (ONNX artifact + manifest, parity checked)
    validate(artifact, ...)           -> ValidateResult
    evaluate(model_dir, task=...)     -> EvalResult
    bench(paths, ...)                 -> BenchDocument
    report(run_dirs, ...)             -> ReportResult

Errors are `SpdcError` subclasses carrying the CLI's exit code (see `spdc.core.errors`).
"""

from spdc.api import bench, compress, evaluate, export, finetune, fold, load_recipe, predict, report, validate
from spdc.benchmark.document import BenchDocument
from spdc.core.errors import (
    ArtifactError,
    CheckpointError,
    DataError,
    DivergedError,
    ModelLoadError,
    OutputError,
    ParityError,
    PeerLostError,
    RecipeError,
    SpdcError,
    UsageError,
)
from spdc.core.version import VERSION as __version__  # noqa: F401 (the package version)
from spdc.deploy.manifest import ExportManifest, ExportResult, ValidateResult
from spdc.recipe.schema import Recipe
from spdc.reporting.report import ReportResult
from spdc.runs.records import CompressSummary, EvalResult, FinetuneSummary, FoldResult

__all__ = [
    "ArtifactError", "BenchDocument", "CheckpointError", "CompressSummary", "DataError", "DivergedError",
    "EvalResult", "ExportManifest", "ExportResult", "FinetuneSummary", "FoldResult", "ModelLoadError", "OutputError",
    "ParityError", "PeerLostError", "Recipe", "RecipeError", "ReportResult", "SpdcError", "UsageError",
    "ValidateResult", "bench", "compress", "evaluate", "export",
    "finetune", "fold", "load_recipe", "predict", "report", "validate",
]
