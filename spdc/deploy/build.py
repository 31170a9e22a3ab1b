"""Export: a classifier (run directory or model directory) becomes a validated ONNX artifact.

Steps: fold dead heads/neurons (a smaller dense graph), `torch.onnx` export, onnxruntime's transformer
optimizer, optional dynamic int8 quantisation, then the parity check. The parity rows are read before any of
that, so missing data fails in a second rather than after the export. The artifact folder is staged beside its
destination (scratch files included) and renamed into place, so a failed export leaves nothing half-written.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from spdc.compression.folding import fold
from spdc.core.atomic import atomic_directory
from spdc.core.errors import ArtifactError, ParityError
from spdc.core.outputs import check_output, mark_output
from spdc.core.version import VERSION
from spdc.data.synthetic import model_input_names, synthetic_inputs
from spdc.deploy.manifest import (
    ONNX_FILE,
    ArtifactSizes,
    ExportManifest,
    ExportSettings,
    ManifestSource,
    write_manifest,
)
from spdc.deploy.onnx_export import export_to_onnx
from spdc.deploy.optimize import AttentionShape, Optimization, optimize_graph
from spdc.deploy.parity import check_parity, parity_rows
from spdc.deploy.quantize import quantize_int8
from spdc.models.families import family_of
from spdc.models.loading import load_classifier
from spdc.models.structure import FoldedStructure, parameter_count, structure_of
from spdc.recipe.loading import load_recipe
from spdc.recipe.schema import ExportConfig, TaskConfig


@dataclass
class ExportSource:
    """What to export: a model directory, with the task and settings of its run when it comes from one."""

    path: Path
    kind: Literal["run", "model"]
    model_dir: Path
    task: TaskConfig | None
    settings: ExportConfig
    recipe_fingerprint: str | None = None

    @classmethod
    def resolve(cls, path: Path) -> ExportSource:
        if (path / "recipe.yaml").is_file() and (path / "model" / "config.json").is_file():
            recipe = load_recipe(path / "recipe.yaml")
            return cls(path=path, kind="run", model_dir=path / "model", task=recipe.task, settings=recipe.export,
                       recipe_fingerprint=recipe.fingerprint())
        if (path / "config.json").is_file():
            return cls(path=path, kind="model", model_dir=path, task=None, settings=ExportConfig())
        raise ArtifactError(f"{path} is neither a run directory (recipe.yaml + model/) nor a model directory "
                            "(config.json)")

    def default_output(self, settings: ExportConfig) -> Path:
        suffix = "onnx" if settings.quantize == "none" else "onnx-int8"
        return self.path / suffix if self.kind == "run" else self.path.with_name(f"{self.path.name}-{suffix}")


def export_artifact(source: ExportSource, out: Path, settings: ExportConfig, *, validate: bool = True,
                    fold_units: bool = True, threads: int | None = None, show_progress: bool = True,
                    on_step: Callable[[str], None] = lambda _: None) -> ExportManifest:
    """Build the artifact folder at `out` and return its manifest; raises ParityError (artifact kept, marked
    failed) when parity fails. `fold_units=False` exports a masked model at full size (for comparisons)."""
    if validate and source.task is None:
        raise ArtifactError(f"{source.path} is a model directory: name its task with --task (or use --no-validate)")
    check_output(out, "artifact", inputs=[source.path, source.model_dir], replace=True, what="artifact folder")
    reference = load_classifier(str(source.model_dir), None)
    rows = parity_rows(source.task, reference.tokenizer, settings.samples) if validate and source.task else None
    model, tokenizer = copy.deepcopy(reference.model).float().eval(), reference.tokenizer
    model.set_attn_implementation("eager")  # the graph onnxruntime's fusions know
    structure = (fold(model) if fold_units else None) or structure_of(model.config)
    names = model_input_names(tokenizer)
    precision = "int8" if settings.quantize == "dynamic-int8" else "fp32"
    with atomic_directory(out) as staging:
        scratch = staging / ".scratch"
        scratch.mkdir()
        raw, optimized = scratch / "raw.onnx", scratch / "optimized.onnx"
        on_step(f"exporting with torch.onnx ({'dynamo' if settings.dynamo else 'TorchScript'}, "
                f"opset {settings.opset})")
        export_to_onnx(model, raw, names, opset=settings.opset, dynamo=settings.dynamo)
        on_step(f"optimising ({settings.optimize})")
        feeds = synthetic_inputs(names, model.config.vocab_size, batch=3, seq_len=24, seed=1)
        optimization = optimize_graph(raw, optimized, level=settings.optimize,
                                      model_type=family_of(model).onnx_model_type, feeds=feeds,
                                      attention=AttentionShape.of(model.config, structure))
        if precision == "int8":
            on_step("quantising (dynamic int8, per channel)")
            quantize_int8(optimized, staging / ONNX_FILE)
        else:
            optimized.replace(staging / ONNX_FILE)
        for leftover in scratch.iterdir():
            leftover.unlink()
        scratch.rmdir()
        model.config.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        manifest = _manifest(source, settings, optimization, structure, precision,
                             onnx_bytes=(staging / ONNX_FILE).stat().st_size,
                             parameters=parameter_count(model), source_parameters=parameter_count(reference.model))
        if validate and source.task is not None:
            on_step("checking parity")
            manifest = manifest.with_parity(check_parity(
                staging / ONNX_FILE, reference.model, tokenizer, source.task, precision=precision,
                thresholds=settings.parity, threads=threads, show_progress=show_progress, rows=rows))
        write_manifest(staging, manifest)
        mark_output(staging, "artifact")  # last: it records the files the artifact holds
    if manifest.status == "failed":
        raise ParityError(f"parity failed for {out} (artifact kept, marked failed): " + manifest.failed_checks(),
                          artifact=out, precision=precision)
    return manifest


def _manifest(source: ExportSource, settings: ExportConfig, optimization: Optimization,
              structure: FoldedStructure | None, precision: str, *, onnx_bytes: int, parameters: int,
              source_parameters: int) -> ExportManifest:
    import onnx
    import onnxruntime

    return ExportManifest(
        spdc=VERSION, created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        source=ManifestSource(path=str(source.path), kind=source.kind, model_dir=str(source.model_dir),
                              recipe_fingerprint=source.recipe_fingerprint),
        task=source.task.model_dump(mode="json") if source.task else None,
        folded=structure.to_config() if structure else None,
        export=ExportSettings(
            exporter="dynamo" if settings.dynamo else "torchscript", opset=settings.opset,
            optimize=optimization.level, requested_optimize=settings.optimize,
            fused_operators=optimization.fused_operators, notes=optimization.notes, quantize=settings.quantize,
            precision=precision,
            versions={"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
        ),
        sizes=ArtifactSizes(onnx_bytes=onnx_bytes, parameters=parameters, source_parameters=source_parameters),
        thresholds=settings.parity.model_dump(), samples=settings.samples,
    )
