"""Export: a classifier (run directory or model directory) becomes a validated ONNX artifact.

Steps: fold dead heads/neurons (a smaller dense graph), `torch.onnx` export, onnxruntime's transformer
optimizer, optional dynamic int8 quantisation, then the parity check. The parity rows are read before any of
that, so missing data fails in a second rather than after the export. The artifact folder is staged beside its
destination (scratch files included) and renamed into place, so a failed export leaves nothing half-written.
"""

from __future__ import annotations

import copy
import datetime as dt
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from spdc.compression.folding import fold
from spdc.core.atomic import atomic_directory
from spdc.core.errors import ArtifactError, ParityError
from spdc.core.outputs import check_output, mark_output, output_lock
from spdc.core.version import VERSION
from spdc.data.sources import load_split, task_spec
from spdc.data.synthetic import model_input_names, synthetic_inputs
from spdc.deploy.manifest import (
    ONNX_FILE,
    ArtifactSizes,
    ExportManifest,
    ExportSettings,
    Int8Record,
    ManifestSource,
    ParityReport,
    SparseRecord,
)
from spdc.deploy.model_card import record_manifest
from spdc.deploy.onnx_export import export_to_onnx
from spdc.deploy.optimize import HeadLayout, Optimization, optimize_graph
from spdc.deploy.parity import check_parity, parity_rows
from spdc.deploy.quantize import Fallback, Int8Options, quantize_int8, quantize_with_fallback, to_fp16
from spdc.deploy.sparse import store_sparse
from spdc.heads import head_of_architectures, head_of_task
from spdc.models.families import family_of
from spdc.models.loading import load_model
from spdc.models.structure import FoldedStructure, parameter_count, structure_of
from spdc.recipe.loading import load_recipe
from spdc.recipe.schema import ExportConfig, TaskConfig
from spdc.runs.directory import RunDirectory, locate_model
from spdc.training.evaluation import batches


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
        location = locate_model(path)
        if not location.is_run:
            return cls(path=path, kind="model", model_dir=location.model_dir, task=None, settings=ExportConfig())
        run = RunDirectory(path)
        if not run.recipe_file.is_file():
            raise ArtifactError(f"run directory {path} has no recipe.yaml: its task and export settings are unknown")
        recipe = load_recipe(run.recipe_file)
        return cls(path=path, kind="run", model_dir=location.model_dir, task=recipe.task, settings=recipe.export,
                   recipe_fingerprint=recipe.fingerprint())

    def default_output(self, settings: ExportConfig) -> Path:
        suffix = {"none": "onnx", "dynamic-int8": "onnx-int8", "static-int8": "onnx-int8-static"}[settings.quantize]
        if settings.precision == "fp16":
            suffix = "onnx-fp16"
        return self.path / suffix if self.kind == "run" else self.path.with_name(f"{self.path.name}-{suffix}")


def calibration_feeds(task: TaskConfig, tokenizer: Any, names: list[str], rows: int, batch_size: int = 16
                      ) -> list[dict[str, np.ndarray]]:
    """Padded batches of the task's first training rows: static int8 calibrates on them and the int8 fallback
    ranks operators on them (never on dev)."""
    head = head_of_task(task_spec(task))
    data = load_split(task.model_copy(update={"max_train_samples": rows}), "train")
    encoded = head.encode(data.examples, tokenizer, task.max_seq_length)
    collate = head.collator(tokenizer)
    feeds = []
    for batch in batches(encoded, range(len(encoded)), batch_size, collate):
        feeds.append({name: batch[name].numpy().astype(np.int64) for name in names if name in batch})
    return feeds


def export_artifact(source: ExportSource, out: Path, settings: ExportConfig, *, validate: bool = True,
                    fold_units: bool = True, threads: int | None = None, show_progress: bool = True,
                    on_step: Callable[[str], None] = lambda _: None) -> ExportManifest:
    """Build the artifact folder at `out` and return its manifest; raises ParityError (artifact kept, marked
    failed) when parity fails. `fold_units=False` exports a masked model at full size (for comparisons)."""
    with output_lock(out, what="artifact folder"):
        return _export_artifact(source, out, settings, validate=validate, fold_units=fold_units, threads=threads,
                                show_progress=show_progress, on_step=on_step)


def _export_artifact(source: ExportSource, out: Path, settings: ExportConfig, *, validate: bool, fold_units: bool,
                     threads: int | None, show_progress: bool, on_step: Callable[[str], None]) -> ExportManifest:
    if validate and source.task is None:
        raise ArtifactError(f"{source.path} is a model directory: name its task with --task (or use --no-validate)")
    int8 = settings.quantize != "none"
    static = settings.quantize == "static-int8"
    if static and source.task is None:
        raise ArtifactError(f"static int8 calibrates on the task's training rows: name the task of {source.path} "
                            "with --task")
    out = check_output(out, "artifact", inputs=[source.path, source.model_dir], replace=True, what="artifact folder")
    reference = load_model(str(source.model_dir), None)
    model, tokenizer = copy.deepcopy(reference.model).float().eval(), reference.tokenizer
    names = model_input_names(tokenizer)
    # what can fail cheaply (missing data) fails before the export
    rows = parity_rows(source.task, tokenizer, settings.samples) if validate and source.task else None
    needs_calibration = static or (int8 and validate and settings.int8_fallback)
    calibration = calibration_feeds(source.task, tokenizer, names, settings.calibration_samples) \
        if needs_calibration and source.task else []
    model.set_attn_implementation("eager")  # the graph onnxruntime's fusions know
    structure = (fold(model) if fold_units else None) or structure_of(model.config)
    precision = "int8" if int8 else settings.precision

    def parity(path: Path) -> ParityReport:
        assert source.task is not None
        return check_parity(path, reference.model, tokenizer, source.task, precision=precision,
                            thresholds=settings.parity, threads=threads, show_progress=show_progress, rows=rows)

    with atomic_directory(out) as staging:
        scratch = staging / ".scratch"
        scratch.mkdir()
        raw, optimized, final = scratch / "raw.onnx", scratch / "optimized.onnx", staging / ONNX_FILE
        on_step(f"exporting with torch.onnx ({'dynamo' if settings.dynamo else 'TorchScript'}, "
                f"opset {settings.opset})")
        head = (head_of_task(task_spec(source.task)) if source.task is not None
                else head_of_architectures(model.config.architectures))
        export_to_onnx(model, raw, names, head, opset=settings.opset, dynamo=settings.dynamo)
        on_step(f"optimising ({settings.optimize})")
        feeds = synthetic_inputs(names, model.config.vocab_size, batch=3, seq_len=24, seed=1)
        family = family_of(model)
        optimization = optimize_graph(raw, optimized, level=settings.optimize, model_type=family.onnx_model_type,
                                      feeds=feeds, layout=HeadLayout.of(model.config, structure),
                                      attention_fusion=family.fused_attention)
        int8_record = None
        if int8:
            options = Int8Options(mode="static" if static else "dynamic", per_channel=settings.int8_per_channel,
                                  embeddings=settings.int8_embeddings)
            # Static (QDQ) calibration cannot see the activations of fused contrib ops (shape inference fails on
            # them), so static int8 quantises the plain export; onnxruntime fuses its QDQ pairs when loading it.
            after_fusion = settings.int8_after_fusion and not static
            if static and settings.int8_after_fusion:
                optimization.notes.append("static int8 is built from the plain export: onnxruntime's QDQ "
                                          "calibration cannot see activations inside fused attention/layer-norm ops")
            base = optimized if after_fusion else raw
            on_step(f"quantising ({options.label()})")
            if validate and settings.int8_fallback:
                fallback = quantize_with_fallback(
                    base, final, options, scratch=scratch, limit=settings.parity.max_metric_drop,
                    metric_drop=lambda path: parity(path).metric_drop(), calibration=calibration, on_step=on_step)
            else:
                quantize_int8(base, final, options, calibration=calibration)
                fallback = Fallback()
            int8_record = Int8Record(
                mode=options.mode, per_channel=options.per_channel, after_fusion=after_fusion,
                embeddings=options.embeddings, fp32_operators=fallback.excluded, reason=fallback.reason(),
                initial_drop=fallback.initial_drop, final_drop=fallback.final_drop,
                sensitivity=fallback.ranking[:10], tried=fallback.tried)
        elif precision == "fp16":
            on_step("converting to fp16 (inputs and logits stay fp32)")
            to_fp16(optimized, final)
        else:
            optimized.replace(final)
        sparse = store_sparse(final) if settings.sparse == "auto" else None
        shutil.rmtree(scratch)
        model.config.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        manifest = _manifest(source, settings, optimization, structure, precision,
                             onnx_bytes=final.stat().st_size, parameters=parameter_count(model),
                             source_parameters=parameter_count(reference.model))
        manifest.export.int8 = int8_record
        if sparse is not None and sparse.matrices:
            manifest.export.sparse = SparseRecord(matrices=sparse.matrices, dense_bytes=sparse.dense_bytes,
                                                  sparse_bytes=sparse.sparse_bytes)
        if validate and source.task is not None:
            on_step("checking parity")
            manifest = manifest.with_parity(parity(final))
        record_manifest(out, manifest, location=staging)
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
