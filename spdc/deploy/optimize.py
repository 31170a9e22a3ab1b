"""onnxruntime's transformer optimizer (O1 basic rewrites, O2 + fusions, O3 + GELU approximation), with every
candidate graph checked against the plain export: a fusion that changes the outputs is dropped with a note."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spdc.deploy.sessions import create_session, quiet_onnxruntime_tools
from spdc.models.structure import FoldedStructure

GRAPH_CHECK_ATOL = 1e-4  # an optimised graph must match the plain export this closely on synthetic inputs


def _outputs(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    session = create_session(path, threads=1)
    return session.run(["logits"], {node.name: feeds[node.name] for node in session.get_inputs()})[0]


@dataclass
class Optimization:
    level: str
    fused_operators: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class HeadLayout:
    """Attention heads per layer (0: the layer's attention was pruned away) and the head size."""

    heads: tuple[int, ...]
    head_dim: int

    @classmethod
    def of(cls, config: Any, structure: FoldedStructure | None) -> HeadLayout:
        if structure is None:
            return cls((config.num_attention_heads,) * config.num_hidden_layers,
                       config.hidden_size // config.num_attention_heads)
        return cls(tuple(len(kept) for kept in structure.heads), structure.head_dim)

    def uniform(self) -> int | None:
        """The one head count of every layer, or None when layers differ (or a layer has none)."""
        counts = set(self.heads)
        return counts.pop() if len(counts) == 1 and 0 not in counts else None


LAYER_IN_NAME = re.compile(r"layer\.(\d+)/")


def _constant_values(graph: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    values = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def pin_head_counts(model: Any, layout: HeadLayout) -> bool:
    """Write every layer's head count into the shapes its query/key/value are reshaped to ([batch, seq, -1,
    head_dim] becomes [batch, seq, heads, head_dim]), so onnxruntime's attention fusion reads the count per
    layer instead of taking one for all. Returns False, leaving the graph as it was, unless the graph has
    exactly three such shapes for every layer that has heads."""
    from onnx import numpy_helper

    graph = model.graph
    values = _constant_values(graph)
    reshaped = {node.input[1] for node in graph.node if node.op_type == "Reshape"}

    def constant(name: str) -> list[int] | None:
        value = values.get(name)
        return value.astype(np.int64).reshape(-1).tolist() if value is not None and value.size == 1 else None

    shapes = [node for node in graph.node if node.op_type == "Concat" and len(node.input) == 4
              and node.output[0] in reshaped and constant(node.input[2]) == [-1]
              and constant(node.input[3]) == [layout.head_dim]]
    layers = [index for index, count in enumerate(layout.heads) if count > 0]
    if len(shapes) != 3 * len(layers):
        return False
    named = [LAYER_IN_NAME.search(node.name) for node in shapes]
    if all(named):
        owners = [int(match.group(1)) for match in named if match]
    else:  # exporters that do not keep module names: the projections of a layer come together, in order
        owners = [layers[position // 3] for position in range(len(shapes))]
    if sorted(owners) != sorted(layer for layer in layers for _ in range(3)):
        return False
    for node, layer in zip(shapes, owners, strict=True):
        name = f"spdc_heads_layer_{layer}"
        if name not in values:
            graph.initializer.append(numpy_helper.from_array(np.array([layout.heads[layer]], dtype=np.int64), name))
            values[name] = np.array([layout.heads[layer]])
        node.input[2] = name
    return True


@dataclass(frozen=True)
class AttentionPlan:
    """One way to run the attention fusion: on which graph, with which head count (0: read per layer)."""

    graph: Path
    num_heads: int
    hidden_size: int
    label: str


def _transformer_optimize(plan: AttentionPlan | None, raw: Path, out: Path, *, model_type: str,
                          level: str) -> dict[str, int]:
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions(model_type)
    options.enable_attention = plan is not None
    options.enable_gelu_approximation = level == "O3"
    with quiet_onnxruntime_tools():
        optimized = optimize_model(str(plan.graph if plan else raw), model_type=model_type,
                                   num_heads=plan.num_heads if plan else 0, hidden_size=plan.hidden_size if plan else 0,
                                   optimization_options=options, opt_level=1, only_onnxruntime=level == "O1")
        optimized.save_model_to_file(str(out))
    return {name: count for name, count in optimized.get_fused_operator_statistics().items() if count}


def attention_plans(raw: Path, layout: HeadLayout, scratch: Path) -> tuple[list[AttentionPlan], list[str]]:
    """Fusion plans in order of preference: every layer with its own head count (graph pinned), else one count
    for all layers when they share it. Notes say why a plan is missing."""
    import onnx

    plans, notes = [], []
    model = onnx.load(str(raw))
    if pin_head_counts(model, layout):
        pinned = scratch / "pinned.onnx"
        onnx.save(model, str(pinned))
        plans.append(AttentionPlan(pinned, 0, 0, "per layer"))
    else:
        notes.append("head counts could not be written into the graph's attention reshapes")
    uniform = layout.uniform()
    if uniform is not None:
        plans.append(AttentionPlan(raw, uniform, uniform * layout.head_dim, "one head count"))
    return plans, notes


def optimize_graph(raw: Path, out: Path, *, level: str, model_type: str, feeds: dict[str, np.ndarray],
                   layout: HeadLayout, attention_fusion: bool = True) -> Optimization:
    """Optimise `raw` into `out`; every candidate graph is checked against `raw` on `feeds` and a rewrite that
    changes the outputs is dropped with a note. Attention is fused per layer with each layer's own head count
    (layers pruned unevenly keep fused attention); a layer with no heads has no attention to fuse."""
    result = Optimization(level=level)
    if level == "O0":
        out.write_bytes(raw.read_bytes())
        return result
    plans: list[AttentionPlan | None] = [None]
    if level != "O1" and attention_fusion:
        found, notes = attention_plans(raw, layout, out.parent)
        plans = [*found, None]
        result.notes += notes
    elif level != "O1":
        result.notes.append("onnxruntime's attention fusion does not match this family's attention graph; "
                            "attention runs unfused (the other fusions apply)")
    expected = _outputs(raw, feeds)
    expected_layers = sum(1 for count in layout.heads if count)
    for plan in plans:
        fused = _transformer_optimize(plan, raw, out, model_type=model_type, level=level)
        difference = float(np.abs(_outputs(out, feeds) - expected).max())
        if level == "O3" or difference <= GRAPH_CHECK_ATOL:  # O3 changes numerics on purpose; parity judges it
            result.fused_operators = fused
            attention_nodes = fused.get("Attention", 0)
            if level != "O1" and attention_fusion and attention_nodes < expected_layers:
                result.notes.append(f"attention fused in {attention_nodes} of {expected_layers} layers with heads; "
                                    "the others run unfused")
            return result
        result.notes.append(f"fusion {'(' + plan.label + ' attention)' if plan else 'without attention'} moved "
                            f"the outputs by {difference:.2e}; falling back")
    out.write_bytes(raw.read_bytes())
    result.notes.append("no optimisation applied: every optimised graph changed the outputs")
    result.level = "O0"
    return result
