"""onnxruntime's transformer optimizer (O1 basic rewrites, O2 + fusions, O3 + GELU approximation), with every
candidate graph checked against the plain export: a fusion that changes the outputs is dropped with a note."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spdc.deploy.sessions import create_session
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
