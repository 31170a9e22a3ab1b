"""The public Python API: one function per CLI command, each returning a typed result whose `to_json()` is
exactly what the command prints with `--json`. The CLI adds only argument parsing, rendering and exit codes.

Heavy libraries (torch, transformers, onnxruntime) are imported when a function runs, so `import spdc` is cheap.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from spdc.core.arguments import checked, checked_list, checked_paths
from spdc.core.errors import ArtifactError, ParityError, RecipeError, UsageError
from spdc.recipe.loading import load_recipe as _load_recipe_file
from spdc.recipe.loading import validate_export, validate_recipe, validate_task
from spdc.recipe.schema import ExportConfig, Recipe, TaskConfig
from spdc.runs.directory import locate_model
from spdc.runs.distributed import context
from spdc.runs.latest import ResolvedRun, resolve_run
from spdc.runs.records import CompressSummary, EvalResult, FinetuneSummary, FoldResult

if TYPE_CHECKING:
    from spdc.benchmark.document import BenchDocument
    from spdc.deploy.manifest import ExportResult, ValidateResult
    from spdc.deploy.predict import PredictResult
    from spdc.reporting.frontier import FrontierResult
    from spdc.reporting.report import ReportResult
    from spdc.runs.setup import RunOptions

PathLike = str | Path
StepCallback = Callable[[str], None]
ARTIFACT_DIRS = ("onnx", "onnx-int8")


def load_recipe(path: PathLike, overrides: Sequence[str] = ()) -> Recipe:
    """Read and validate a recipe, applying `KEY.PATH=VALUE` overrides; RecipeError names the key path."""
    if isinstance(overrides, str | bytes) or not all(isinstance(item, str) for item in overrides):
        raise RecipeError(f"overrides: expected a list of 'KEY.PATH=VALUE' strings, got {overrides!r}")
    return _load_recipe_file(Path(path), list(overrides))


def _as_recipe(recipe: Recipe | PathLike, overrides: Sequence[str]) -> tuple[Recipe, Path | None]:
    """The recipe to run. A Recipe object is validated again: `model_copy(update=...)` skips pydantic's checks,
    so a changed copy could otherwise carry any value."""
    if isinstance(recipe, Recipe):
        return validate_recipe(recipe.model_dump(mode="json"), source=f"object {recipe.name!r}"), None
    if not isinstance(recipe, str | Path):
        raise UsageError(f"recipe: expected a Recipe or a path, got {type(recipe).__name__}")
    return load_recipe(recipe, overrides), Path(recipe)


def finetune(recipe: Recipe | PathLike, *, overrides: Sequence[str] = (), output_dir: PathLike | None = None,
             resume: bool = False, overwrite: bool = False, show_progress: bool = True) -> FinetuneSummary:
    """Fine-tune the recipe's teacher on its task into a run directory (`spdc finetune`)."""
    from spdc.runs.setup import RunOptions
    from spdc.training.finetune import finetune as run_finetune

    resolved, _ = _as_recipe(recipe, overrides)
    return run_finetune(resolved, RunOptions(output_dir=Path(output_dir) if output_dir else None, resume=resume,
                                             overwrite=overwrite, show_progress=show_progress))


def compress(recipe: Recipe | PathLike, *, overrides: Sequence[str] = (), output_dir: PathLike | None = None,
             resume: bool = False, overwrite: bool = False, show_progress: bool = True,
             on_step: StepCallback | None = None) -> CompressSummary:
    """The whole compression job (`spdc compress`): the teacher fine-tuned first when `teacher.finetuned` is
    false, the recipe's stages, folding (`export.fold`) and an ONNX export with its parity check
    (`export.onnx`). The run is recorded as the latest one of this working directory, so `export` and `bench`
    find it without a path. A failed parity check raises ParityError after the run is recorded."""
    from spdc.runs.directory import run_lock
    from spdc.runs.setup import RunOptions

    resolved, recipe_file = _as_recipe(recipe, overrides)
    out = Path(output_dir) if output_dir else resolved.resolved_output_dir()
    with run_lock(out):
        return _compress_locked(resolved, recipe_file, RunOptions(
            output_dir=out, resume=resume, overwrite=overwrite, show_progress=show_progress), on_step)


def _compress_locked(resolved: Recipe, recipe_file: Path | None, options: RunOptions,
                     on_step: StepCallback | None) -> CompressSummary:
    from spdc.compression.compress import compress as run_compress
    from spdc.reporting.report import plot_train_dev
    from spdc.runs.latest import record_latest
    from spdc.runs.records import ArtifactRef

    show_progress = options.show_progress
    summary = run_compress(resolved, options)
    if not context().is_main:  # under torchrun, rank 0 folds, exports and records the run
        return summary
    from spdc.runs.directory import RunDirectory

    run = RunDirectory(Path(summary.run_dir))
    plot_train_dev(run.read_metrics(), summary.main_metric, run.path / "train_dev.png",
                   title=f"{resolved.name}: {summary.task} {summary.main_metric}")
    parity_error = None
    if resolved.export.onnx and summary.model_dir:
        try:
            result = export(run.path, show_progress=show_progress, on_step=on_step)
            summary.artifact = ArtifactRef(path=result.artifact, status=result.manifest.status,
                                           precision=result.manifest.export.precision)
        except ParityError as error:
            parity_error = error
            summary.artifact = ArtifactRef(path=str(error.artifact), status="failed", precision=str(error.precision))
        run.write_summary(summary)
    record_latest(run.path, recipe_file)
    if parity_error is not None:
        raise parity_error
    return summary


def fold(path: PathLike, *, output_dir: PathLike | None = None) -> FoldResult:
    """Cut pruned heads and FFN neurons out of a run's student or a model directory (`spdc fold`); the logits
    are checked against the unfolded model before anything is written."""
    from spdc.compression.compress import FOLDED_DIR
    from spdc.compression.folding import fold_model_dir

    location = locate_model(Path(path))
    default = (location.path / FOLDED_DIR if location.is_run
               else location.path.with_name(f"{location.path.name}-folded"))
    return fold_model_dir(location.model_dir, Path(output_dir) if output_dir else default)


def resolve_export_source(path: PathLike | None) -> ResolvedRun:
    """The run or model directory `spdc export` acts on: as given, the run of a recipe, or the latest run."""
    return resolve_run(Path(path) if path is not None else None)


def export(path: PathLike | None = None, *, output_dir: PathLike | None = None, task: str | None = None,
           opset: int | None = None, optimize: str | None = None, quantize: str | None = None,
           dynamo: bool | None = None, samples: int | None = None, fold_units: bool = True, validate: bool = True,
           threads: int | None = None, int8_per_channel: bool | None = None, int8_after_fusion: bool | None = None,
           int8_embeddings: bool | None = None, int8_fallback: bool | None = None, sparse: str | None = None,
           max_metric_drop: float | None = None, precision: str | None = None, show_progress: bool = True,
           on_step: StepCallback | None = None) -> ExportResult:
    """Export a run (its student, folded), a recipe's run, the latest run (no path) or a model directory to a
    validated ONNX artifact (`spdc export --onnx`). Settings come from the run's recipe `export` section;
    arguments given here override them. Raises ParityError (artifact kept, marked failed) when parity fails."""
    from spdc.deploy.build import ExportSource, export_artifact
    from spdc.deploy.manifest import ExportResult

    for name, value in (("opset", opset), ("optimize", optimize), ("quantize", quantize), ("samples", samples),
                        ("threads", threads), ("sparse", sparse), ("max_metric_drop", max_metric_drop),
                        ("precision", precision)):
        checked(name, value)
    source = ExportSource.resolve(resolve_export_source(path).path)
    if task is not None:
        source.task = validate_task({"name": task})
    overrides = {key: value for key, value in (
        ("opset", opset), ("optimize", optimize), ("quantize", quantize), ("dynamo", dynamo), ("samples", samples),
        ("int8_per_channel", int8_per_channel), ("int8_after_fusion", int8_after_fusion),
        ("int8_embeddings", int8_embeddings), ("int8_fallback", int8_fallback), ("sparse", sparse),
        ("precision", precision),
    ) if value is not None}
    base = source.settings.model_dump()
    if max_metric_drop is not None:
        base["parity"] = {**base["parity"], "max_metric_drop": max_metric_drop}
    settings = validate_export({**base, **overrides})
    out = Path(output_dir) if output_dir else source.default_output(settings)
    manifest = export_artifact(source, out, settings, validate=validate, fold_units=fold_units, threads=threads,
                               show_progress=show_progress, on_step=on_step or (lambda _: None))
    return ExportResult(artifact=str(out), manifest=manifest)


def validate(artifact: PathLike, *, task: str | None = None, data_dir: PathLike | None = None,
             samples: int | None = None, reference: PathLike | None = None, threads: int | None = None,
             show_progress: bool = True) -> ValidateResult:
    """Re-check an artifact's parity against its PyTorch source on the task's dev rows (`spdc validate`); the
    verdict is written to its manifest. `result.ok` is False when a check failed."""
    from spdc.deploy.parity import validate_artifact

    checked("samples", samples)
    checked("threads", threads)
    return validate_artifact(Path(artifact), task=validate_task({"name": task}) if task else None,
                             data_dir=Path(data_dir) if data_dir else None, samples=samples,
                             reference=Path(reference) if reference else None, threads=threads,
                             show_progress=show_progress)


def evaluate(model: PathLike, *, task: str | TaskConfig | None = None, recipe: PathLike | None = None,
             split: str | None = None, data_dir: PathLike | None = None, max_samples: int | None = None,
             max_seq_length: int | None = None, batch_size: int = 64, device: str = "auto",
             show_progress: bool = True) -> EvalResult:
    """Score a model or run directory on a split of a task (`spdc eval`): the task by name, as a TaskConfig,
    or the task section of a recipe (exactly one of `task` and `recipe`)."""
    from spdc.training.evaluation import evaluate_model

    if (task is None) == (recipe is None):
        raise UsageError("give exactly one of task or recipe")
    for name, value in (("max_samples", max_samples), ("max_seq_length", max_seq_length),
                        ("batch_size", batch_size), ("device", device)):
        checked(name, value)
    if recipe is not None:
        config = load_recipe(recipe).task
    elif isinstance(task, TaskConfig):
        config = task
    else:
        config = validate_task({"name": task})
    updates: dict[str, object] = {}
    if data_dir is not None:
        updates["data_dir"] = Path(data_dir)
    if max_samples is not None:
        updates["max_eval_samples"] = max_samples
    return evaluate_model(Path(model), config.model_copy(update=updates), split=split, batch_size=batch_size,
                          device=device, show_progress=show_progress, max_seq_length=max_seq_length)


def predict(artifact: PathLike, input_file: PathLike, output_file: PathLike, *, batch_size: int = 32,
            threads: int | None = None, skip_bad_rows: bool = False, show_progress: bool = True) -> PredictResult:
    """Batch inference with an exported artifact over a CSV / TSV / JSON / JSONL file of the task's columns into a
    JSONL file (`spdc predict`). A bad row stops the job before anything is written, unless `skip_bad_rows`."""
    from spdc.deploy.predict import predict_file

    checked("batch_size", batch_size)
    checked("threads", threads)
    return predict_file(Path(artifact), Path(input_file), Path(output_file), batch_size=batch_size,
                        threads=threads, skip_bad_rows=skip_bad_rows, show_progress=show_progress)


def bench_paths(run: ResolvedRun, *, show_progress: bool = True) -> list[Path]:
    """What `spdc bench` compares for a run: the dense teacher's fp32 artifact first (exported now if it has
    none yet), then every artifact exported from the run's student."""
    from spdc.deploy.build import ExportSource, export_artifact
    from spdc.deploy.manifest import MANIFEST_FILE

    recipe = _load_recipe_file(run.path / "recipe.yaml")
    students = sorted(child for child in run.path.iterdir() if (child / MANIFEST_FILE).is_file()
                      and child.name != "teacher-onnx")
    if not students:
        raise ArtifactError(f"{run.path} has no exported student: run `spdc export {run.path} --onnx` first")
    teacher_model = Path(recipe.teacher.model)
    teacher_run = teacher_model.parent if (teacher_model.parent / "recipe.yaml").is_file() else None
    teacher_artifact = teacher_run / "onnx" if teacher_run else run.path / "teacher-onnx"
    if not (teacher_artifact / MANIFEST_FILE).is_file():
        source = ExportSource.resolve(teacher_run or teacher_model)
        source.task = recipe.task
        export_artifact(source, teacher_artifact, ExportConfig(), fold_units=False, show_progress=show_progress)
    return [teacher_artifact, *students]


def bench(paths: Sequence[PathLike] = (), *, batch_sizes: Sequence[int] = (1, 8, 32),
          seq_lens: Sequence[int] = (32, 128), threads: int | None = None, provider: str = "cpu",
          engine: str = "auto", warmup_s: float = 1.0, time_s: float = 3.0, rounds: int = 3,
          task: str | None = None, data_dir: PathLike | None = None, plot: PathLike | None = None,
          semi_structured: bool = False, show_progress: bool = True,
          on_step: StepCallback | None = None) -> BenchDocument:
    """Latency and throughput of models measured interleaved in one process (`spdc bench`); the first model is
    the baseline. No path (or one recipe path): the latest (or the recipe's) run's teacher against its
    exported students."""
    from spdc.benchmark.plot import plot_latency
    from spdc.benchmark.runner import BenchSettings, run_bench

    given = checked_paths("paths", paths)
    batch_sizes, seq_lens = checked_list("batch_sizes", batch_sizes), checked_list("seq_lens", seq_lens)
    for name, value in (("threads", threads), ("provider", provider), ("engine", engine), ("warmup_s", warmup_s),
                        ("time_s", time_s), ("rounds", rounds)):
        checked(name, value)
    settings_task = None
    if task is not None:
        settings_task = validate_task({"name": task, **({"data_dir": str(data_dir)} if data_dir else {})})
    notes: list[str] = []
    if not given or (len(given) == 1 and given[0].suffix in (".yaml", ".yml")):
        run = resolve_run(given[0] if given else None)
        given = bench_paths(run, show_progress=show_progress)
        notes.append(f"models of {run.path} ({run.reason}): dense teacher first, as the baseline")
    settings = BenchSettings(batch_sizes=list(batch_sizes), seq_lens=list(seq_lens), threads=threads,
                             provider=provider, engine=engine, warmup_s=warmup_s, time_s=time_s, rounds=rounds,
                             task=settings_task, semi_structured=semi_structured, notes=notes)
    document = run_bench(given, settings, on_step=on_step)
    if plot is not None:
        plot_latency(document, Path(plot))
        document.plot = str(plot)
    return document


def report(run_dirs: Sequence[PathLike] = (), *, out: PathLike | None = None) -> ReportResult:
    """A markdown report with plots of one run (default: the latest), or a comparison of several (`spdc report`)."""
    from spdc.reporting.report import write_report

    runs = [Path(path) for path in run_dirs] or [resolve_run(None).path]
    default = runs[0] / "report.md" if len(runs) == 1 else Path("report.md")
    return write_report(runs, Path(out) if out else default)


def frontier(bench_document: PathLike, run_dirs: Sequence[PathLike] = (), *, out: PathLike = "frontier.md",
             cells: Sequence[tuple[int, int]] = ((1, 128), (32, 128))) -> FrontierResult:
    """The accuracy-speed frontier (`spdc report --frontier BENCH.json`): each artifact of a saved bench document
    as a point (its dev metric from parity, its speedup over the first, dense fp32, model), per (batch, length)
    cell, with the Pareto front marked; `run_dirs` keeps only artifacts of those runs (and the baseline)."""
    from spdc.benchmark.document import read_bench_document
    from spdc.reporting.frontier import write_frontier

    runs = [Path(path) for path in run_dirs]
    command = shlex.join(["spdc", "report", *map(_shown, runs), "--frontier", _shown(Path(bench_document)), "--cells",
                          ",".join(f"{batch}x{seq_len}" for batch, seq_len in cells), "--out", _shown(Path(out))])
    return write_frontier(read_bench_document(Path(bench_document)), Path(out), cells=list(cells), runs=runs,
                          command=command)


def _shown(path: Path) -> str:
    """A path as a reader would type it from the working directory: relative where it lies below it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
