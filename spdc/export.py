"""Export: a classifier (run directory or model directory) becomes a validated ONNX artifact.

Steps: fold dead heads/neurons (a smaller dense graph), `torch.onnx` export with dynamic batch and sequence
axes, onnxruntime's transformer optimizer (O1 basic rewrites, O2 + fusions, O3 + GELU approximation), optional
dynamic int8 quantisation with onnxruntime's quantizer, then the parity check. A fusion that changes the
outputs is dropped (attention fusion first, then all fusions) and the manifest says so. The artifact folder is
built in a temp directory and renamed into place, so a failed export leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from spdc import __version__
from spdc.architectures import architecture_for
from spdc.artifact import MANIFEST_FORMAT, ONNX_FILE, record_parity, write_manifest
from spdc.atomic import atomic_directory
from spdc.errors import ArtifactError, ParityError
from spdc.folding import FoldedStructure, fold, parameter_count, structure_of
from spdc.models import load_classifier
from spdc.onnx_runtime import create_session
from spdc.recipe import ExportConfig, TaskConfig, load_recipe
from spdc.synthetic import model_input_names, synthetic_inputs
from spdc.validation import check_parity

GRAPH_CHECK_ATOL = 1e-4  # an optimised graph must match the plain export this closely on synthetic inputs


class _LogitsOnly(nn.Module):
    """Positional inputs in a fixed order, logits out: the graph signature ORTModel expects."""

    def __init__(self, model: nn.Module, input_names: list[str]) -> None:
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.input_names, inputs, strict=True))).logits


def export_to_onnx(model: nn.Module, path: Path, input_names: list[str], *, opset: int, dynamo: bool) -> None:
    """One self-contained .onnx file with dynamic batch and sequence axes."""
    wrapped = _LogitsOnly(model, input_names).eval()
    example = tuple(torch.from_numpy(array) for array in synthetic_inputs(
        input_names, model.config.vocab_size, batch=2, seq_len=16).values())
    with contextlib.redirect_stdout(sys.stderr), torch.no_grad(), warnings.catch_warnings():
        # stdout stays clean for --json; tracer warnings about shape-only conditions are expected here
        warnings.simplefilter("ignore")
        if dynamo:
            batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
            torch.onnx.export(wrapped, example, str(path), input_names=input_names, output_names=["logits"],
                              dynamic_shapes=(tuple({0: batch, 1: sequence} for _ in input_names),),
                              opset_version=opset, dynamo=True, external_data=False, verbose=False)
        else:
            axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
            torch.onnx.export(wrapped, example, str(path), input_names=input_names, output_names=["logits"],
                              dynamic_axes={**axes, "logits": {0: "batch"}}, opset_version=opset, dynamo=False)


def _outputs(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    session = create_session(path, threads=1)
    return session.run(["logits"], {node.name: feeds[node.name] for node in session.get_inputs()})[0]


@dataclass
class Optimization:
    level: str
    fused_operators: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AttentionShape:
    """What onnxruntime's attention fusion must be told: one head count and q/k/v width for every layer.
    It cannot read them from graphs that reshape with -1 heads, and has no per-layer setting."""

    num_heads: int
    width: int

    @classmethod
    def of(cls, config: Any, structure: FoldedStructure | None) -> AttentionShape | None:
        """None when layers differ in head count (uneven pruning) or a layer has no heads left."""
        if structure is None:
            return cls(config.num_attention_heads, config.hidden_size)
        counts = {len(heads) for heads in structure.heads}
        if len(counts) != 1 or 0 in counts:
            return None
        count = counts.pop()
        return cls(count, count * structure.head_dim)


def _transformer_optimize(raw: Path, out: Path, *, model_type: str, level: str,
                          attention: AttentionShape | None) -> dict[str, int]:
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions(model_type)
    options.enable_attention = attention is not None
    options.enable_gelu_approximation = level == "O3"
    with contextlib.redirect_stdout(sys.stderr):
        optimized = optimize_model(str(raw), model_type=model_type, num_heads=attention.num_heads if attention else 0,
                                   hidden_size=attention.width if attention else 0,
                                   optimization_options=options, opt_level=1, only_onnxruntime=level == "O1")
        optimized.save_model_to_file(str(out))
    return {name: count for name, count in optimized.get_fused_operator_statistics().items() if count}


def optimize_graph(raw: Path, out: Path, *, level: str, model_type: str, feeds: dict[str, np.ndarray],
                   attention: AttentionShape | None) -> Optimization:
    """Optimise `raw` into `out`; every candidate graph is checked against `raw` on `feeds` and a rewrite that
    changes the outputs is dropped with a note."""
    result = Optimization(level=level)
    if level == "O0":
        out.write_bytes(raw.read_bytes())
        return result
    if attention is None and level != "O1":
        result.notes.append("attention fusion skipped: layers keep different numbers of heads (or none), and "
                            "onnxruntime's fusion takes one head count for all layers; attention runs unfused")
    expected = _outputs(raw, feeds)
    attempts = [attention] if attention is None or level == "O1" else [attention, None]
    for candidate in attempts:
        fused = _transformer_optimize(raw, out, model_type=model_type, level=level, attention=candidate)
        difference = float(np.abs(_outputs(out, feeds) - expected).max())
        if level == "O3" or difference <= GRAPH_CHECK_ATOL:  # O3 changes numerics on purpose; parity judges it
            result.fused_operators = fused
            if attention is not None and candidate is None:
                result.notes.append("attention fusion dropped: the fused graph changed the outputs")
            elif candidate is not None and level != "O1" and "Attention" not in fused:
                result.notes.append("attention fusion did not match this graph; attention runs unfused")
            return result
        result.notes.append(f"fusions {'with' if candidate else 'without'} attention moved the outputs by "
                            f"{difference:.2e}; falling back")
    out.write_bytes(raw.read_bytes())
    result.notes.append("no optimisation applied: every optimised graph changed the outputs")
    result.level = "O0"
    return result


def quantize_int8(source: Path, out: Path) -> None:
    """Dynamic int8 weights (activations quantised at run time) with onnxruntime's quantizer, per output channel:
    on the MiniLM MRPC teacher that kept 98.0% top-1 agreement with fp32 where per-tensor scales kept 92.6%."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with contextlib.redirect_stdout(sys.stderr):
        # fused contrib ops defeat ONNX shape inference; their outputs are float tensors
        quantize_dynamic(str(source), str(out), weight_type=QuantType.QInt8, per_channel=True,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


@dataclass
class ExportSource:
    """What to export: a model directory, with the task and settings of its run when it comes from one."""

    path: Path
    kind: str  # "run" or "model"
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
                    on_step: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Build the artifact folder at `out` and return its manifest; raises ParityError (artifact kept, marked
    failed) when parity fails. `fold_units=False` exports a masked model at full size (for comparisons)."""
    if validate and source.task is None:
        raise ArtifactError(f"{source.path} is a model directory: name its task with --task (or use --no-validate)")
    reference = load_classifier(str(source.model_dir), None)
    model, tokenizer = copy.deepcopy(reference.model).float().eval(), reference.tokenizer
    model.set_attn_implementation("eager")  # the graph onnxruntime's fusions know
    structure = (fold(model) if fold_units else None) or structure_of(model.config)
    names = model_input_names(tokenizer)
    arch = architecture_for(model)
    precision = "int8" if settings.quantize == "dynamic-int8" else "fp32"
    with atomic_directory(out) as staging, tempfile.TemporaryDirectory() as scratch:
        raw, optimized = Path(scratch) / "raw.onnx", Path(scratch) / "optimized.onnx"
        on_step(f"exporting with torch.onnx ({'dynamo' if settings.dynamo else 'TorchScript'}, "
                f"opset {settings.opset})")
        export_to_onnx(model, raw, names, opset=settings.opset, dynamo=settings.dynamo)
        on_step(f"optimising ({settings.optimize})")
        feeds = synthetic_inputs(names, model.config.vocab_size, batch=3, seq_len=24, seed=1)
        optimization = optimize_graph(raw, optimized, level=settings.optimize, model_type=arch.onnx_model_type,
                                      feeds=feeds, attention=AttentionShape.of(model.config, structure))
        if precision == "int8":
            on_step("quantising (dynamic int8, per channel)")
            quantize_int8(optimized, staging / ONNX_FILE)
        else:
            optimized.replace(staging / ONNX_FILE)
        model.config.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        manifest = _manifest(source, settings, optimization, structure, precision,
                             onnx_bytes=(staging / ONNX_FILE).stat().st_size,
                             parameters=parameter_count(model), source_parameters=parameter_count(reference.model))
        report = None
        if validate:
            assert source.task is not None
            report = check_parity(staging / ONNX_FILE, reference.model, tokenizer, source.task, precision=precision,
                                  thresholds=settings.parity, samples=settings.samples, threads=threads,
                                  show_progress=show_progress).to_json()
        manifest = record_parity(manifest, report)
        write_manifest(staging, manifest)
    if manifest["status"] == "failed":
        raise ParityError(f"parity failed for {out} (artifact kept, marked failed): " + failed_checks(manifest))
    return manifest


def failed_checks(manifest: dict[str, Any]) -> str:
    checks = manifest["parity"]["checks"]
    return "; ".join(f"{c['name']} = {c['value']:.6g} (limit {c['limit']:.6g})" for c in checks if not c["passed"])


def _manifest(source: ExportSource, settings: ExportConfig, optimization: Optimization, structure: Any,
              precision: str, *, onnx_bytes: int, parameters: int, source_parameters: int) -> dict[str, Any]:
    import onnx
    import onnxruntime

    return {
        "format": MANIFEST_FORMAT, "version": 1, "spdc": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "source": {"path": str(source.path), "kind": source.kind, "model_dir": str(source.model_dir),
                   "recipe_fingerprint": source.recipe_fingerprint},
        "task": source.task.model_dump(mode="json") if source.task else None,
        "folded": structure.to_config() if structure else None,
        "export": {
            "exporter": "dynamo" if settings.dynamo else "torchscript", "opset": settings.opset,
            "optimize": optimization.level, "requested_optimize": settings.optimize,
            "fused_operators": optimization.fused_operators, "notes": optimization.notes,
            "quantize": settings.quantize, "precision": precision,
            "versions": {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__},
        },
        "sizes": {"onnx_bytes": onnx_bytes, "parameters": parameters, "source_parameters": source_parameters},
        "thresholds": settings.parity.model_dump(),
        "samples": settings.samples,
    }
