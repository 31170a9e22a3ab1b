"""int8 quantisation with onnxruntime's own quantizer, and accuracy-aware fallback.

- dynamic int8: weights int8 ahead of time, activations quantised at run time (MatMul -> DynamicQuantizeMatMul,
  the fused Attention -> QAttention);
- static int8: activations too, with ranges calibrated on training rows of the task (QDQ format).

Options that change the graph: per-channel or per-tensor weight scales, quantising after the transformer
fusions (fused attention becomes QAttention) or before them, and whether the embedding table is quantised.

When the int8 model loses more of the task metric than the recipe allows, `quantize_with_fallback` measures how
much each quantisable operator moves the logits on its own (on a calibration slice of training rows), then
keeps the fewest of the most sensitive operators in fp32 until the parity check passes, in the spirit of
Intel Neural Compressor's accuracy-aware tuning, with onnxruntime's `nodes_to_exclude`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spdc.core.errors import ArtifactError, OutputError
from spdc.deploy.sessions import create_session, quiet_onnxruntime_tools

Feeds = dict[str, np.ndarray]
# The operators whose weights dominate compute, as onnxruntime's quantizer handles them: dynamic int8 has
# integer MatMul and QAttention; static (QDQ) has MatMul but no fused Attention, which then stays fp32.
QUANTIZABLE = {"dynamic": ("MatMul", "Attention"), "static": ("MatMul",)}
EMBEDDING = ("EmbedLayerNormalization", "Gather")


@dataclass(frozen=True)
class Int8Options:
    mode: str = "dynamic"  # or "static"
    per_channel: bool = True
    embeddings: bool = False

    def label(self) -> str:
        scales = "per-channel" if self.per_channel else "per-tensor"
        return f"{self.mode} int8, {scales} weights{', embeddings too' if self.embeddings else ''}"


def quantizable_nodes(path: Path, mode: str) -> list[str]:
    """Names of the operators int8 would quantise, in graph order."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {tensor.name for tensor in graph.initializer}
    return [node.name for node in graph.node
            if node.op_type in QUANTIZABLE[mode] and any(name in initializers for name in node.input[1:3])]


def head_nodes(path: Path) -> list[str]:
    """The Gemm nodes (pooler, classifier): they run once per sequence, so int8 saves nothing there and only
    costs accuracy. onnxruntime's dynamic quantizer first rewrites each into `<name>_MatMul` + Add, so both names
    are listed for exclusion."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return [name for node in graph.node if node.op_type == "Gemm" for name in (node.name, f"{node.name}_MatMul")]


class _Calibration:
    """onnxruntime's CalibrationDataReader protocol over a list of feeds."""

    def __init__(self, feeds: Sequence[Feeds]) -> None:
        self._feeds: Iterator[Feeds] = iter(feeds)

    def get_next(self) -> Feeds | None:
        return next(self._feeds, None)


def onnx_bytes(path: Path) -> int:
    """The size of an ONNX model with its external-data files (named after it, as torch.onnx writes them)."""
    return sum(file.stat().st_size for file in path.parent.glob(f"{path.name}*") if file.is_file())


def check_space(source: Path, out: Path, mode: str) -> None:
    """Refuse to quantise without room for onnxruntime's copies: it writes a shape-inferred copy of `source`
    beside it (static int8 also a calibration copy in the temp folder), and ONNX truncates those silently when
    the disk is full, so the quantizer would fail later on an empty model with an unrelated message."""
    needed = 2 * onnx_bytes(source)
    folders = {source.parent, out.parent, *((Path(tempfile.gettempdir()),) if mode == "static" else ())}
    for folder in sorted(folders):
        free = shutil.disk_usage(folder).free
        if free < needed:
            reason = (f"no space left on the device: int8 quantisation needs about {needed / 2**20:.1f} MiB free "
                      f"in {folder}, {free / 2**20:.1f} MiB are")
            raise OutputError(f"cannot write {out}: {reason}", reason=reason)


def quantize_int8(source: Path, out: Path, options: Int8Options, *, exclude: Sequence[str] = (),
                  only: Sequence[str] | None = None, calibration: Sequence[Feeds] = ()) -> None:
    """Quantise `source` into `out`; `exclude` stays fp32, `only` (when given) is all that is quantised.
    Failures of onnxruntime's quantizer (untyped, deep in its code) become `ArtifactError`s with its message."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    op_types = [*QUANTIZABLE[options.mode], *(EMBEDDING if options.embeddings else ())]
    exclude = [*exclude, *head_nodes(source)]
    # fused contrib ops defeat ONNX shape inference; their outputs are float tensors
    extra = {"DefaultTensorType": onnx.TensorProto.FLOAT}
    if options.mode == "static" and not calibration:
        raise ValueError("static int8 needs calibration rows")
    check_space(source, out, options.mode)
    try:
        with quiet_onnxruntime_tools():
            if options.mode == "static":
                quantize_static(str(source), str(out), _Calibration(calibration), quant_format=QuantFormat.QDQ,
                                op_types_to_quantize=op_types, per_channel=options.per_channel,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                nodes_to_quantize=list(only) if only is not None else None,
                                nodes_to_exclude=list(exclude), calibrate_method=CalibrationMethod.MinMax,
                                extra_options={**extra, "MatMulConstBOnly": True})
            else:
                quantize_dynamic(str(source), str(out), weight_type=QuantType.QInt8,
                                 per_channel=options.per_channel, op_types_to_quantize=op_types,
                                 nodes_to_quantize=list(only) if only is not None else None,
                                 nodes_to_exclude=list(exclude), extra_options=extra)
    except OSError:
        raise  # the staging folder reports it as an OutputError naming the destination
    except Exception as error:
        raise ArtifactError(f"onnxruntime's quantizer failed on the exported fp32 graph ({options.label()}): "
                            f"{type(error).__name__}: {error}") from error


def _logits(path: Path, feeds: Sequence[Feeds]) -> np.ndarray:
    session = create_session(path, threads=None)
    names = [node.name for node in session.get_inputs()]
    return np.concatenate([session.run(["logits"], {name: batch[name] for name in names})[0] for batch in feeds])


def sensitivity(source: Path, scratch: Path, options: Int8Options, calibration: Sequence[Feeds]
                ) -> list[tuple[str, float]]:
    """(operator, mean squared logit change when only it is quantised), most sensitive first."""
    reference = _logits(source, calibration)
    scores = []
    for name in quantizable_nodes(source, options.mode):
        single = scratch / "single.onnx"
        quantize_int8(source, single, options, only=[name], calibration=calibration)
        scores.append((name, float(np.mean((_logits(single, calibration) - reference) ** 2))))
    return sorted(scores, key=lambda item: item[1], reverse=True)


@dataclass
class Fallback:
    """What accuracy-aware fallback did: the operators kept in fp32, and why."""

    excluded: list[str] = field(default_factory=list)
    initial_drop: float | None = None
    final_drop: float | None = None
    limit: float | None = None
    ranking: list[tuple[str, float]] = field(default_factory=list)  # the most sensitive operators first
    tried: list[tuple[int, float]] = field(default_factory=list)  # (operators kept fp32, metric drop)
    passed: bool = True

    def reason(self) -> str:
        if self.initial_drop is None or (not self.excluded and self.passed):
            return "every operator quantised: parity passed"
        verdict = "parity passed" if self.passed else "parity still fails with every operator in fp32"
        return (f"int8 lost {self.initial_drop:.4f} of the main metric (limit {self.limit:.4f}); kept the "
                f"{len(self.excluded)} operator(s) that move the logits most in fp32 (ranked on training rows), "
                f"drop now {self.final_drop:.4f}: {verdict}")


def quantize_with_fallback(source: Path, out: Path, options: Int8Options, *, scratch: Path,
                           metric_drop: Callable[[Path], float], limit: float, calibration: Sequence[Feeds],
                           on_step: Callable[[str], None] = lambda _: None) -> Fallback:
    """Quantise `source` into `out`; when `metric_drop(out)` exceeds `limit`, keep the fewest of the most
    sensitive operators in fp32 that bring it within the limit (found by doubling, then halving the count)."""
    quantize_int8(source, out, options, calibration=calibration)
    drop = metric_drop(out)
    result = Fallback(initial_drop=drop, final_drop=drop, limit=limit, tried=[(0, drop)])
    if drop <= limit:
        return result
    on_step(f"int8 drops the metric by {drop:.4f} > {limit:.4f}: ranking operators by sensitivity")
    result.ranking = sensitivity(source, scratch, options, calibration[:4])
    names = [name for name, _ in result.ranking]

    def attempt(count: int) -> float:
        quantize_int8(source, out, options, exclude=names[:count], calibration=calibration)
        value = metric_drop(out)
        result.tried.append((count, value))
        on_step(f"int8 with {count} operator(s) in fp32: drop {value:.4f}")
        return value

    low, high = 0, 1
    while attempt(high) > limit:
        if high == len(names):
            result.passed = False
            break
        low, high = high, min(2 * high, len(names))
    while result.passed and high - low > 1:  # the smallest count that passes lies in (low, high]
        middle = (low + high) // 2
        if attempt(middle) <= limit:
            high = middle
        else:
            low = middle
    result.excluded = names[:high]
    result.final_drop = attempt(high)
    return result


def to_fp16(source: Path, out: Path) -> None:
    """fp16 weights and activations with onnxruntime's converter; inputs and logits stay fp32 (`keep_io_types`),
    so callers feed and read the same tensors as the fp32 model."""
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(source)))
    with quiet_onnxruntime_tools():
        model.convert_float_to_float16(keep_io_types=True)
    model.save_model_to_file(str(out))
