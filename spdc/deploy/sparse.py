"""Sparse storage of pruned weights: matrices that are mostly exact zeros (unstructured pruning) are written as
ONNX sparse initializers (the non-zero values and their linear positions, int32 or int16), which onnxruntime
turns back into dense tensors when it loads the model. The file shrinks; the computation is unchanged."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MIN_SPARSITY = 0.5  # below this the positions cost more than the zeros they replace


@dataclass
class SparseStorage:
    matrices: int = 0
    dense_bytes: int = 0
    sparse_bytes: int = 0
    names: list[str] = field(default_factory=list)


def _index_dtype(size: int) -> type[np.signedinteger]:
    return np.int16 if size <= np.iinfo(np.int16).max else np.int32


def store_sparse(path: Path, *, min_sparsity: float = MIN_SPARSITY) -> SparseStorage:
    """Rewrite the model at `path` with its mostly-zero matrices as sparse initializers, when that saves bytes."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    report = SparseStorage()
    kept = []
    for tensor in graph.initializer:
        array = numpy_helper.to_array(tensor)
        flat = array.reshape(-1)
        nonzero = np.flatnonzero(flat)
        index_type = _index_dtype(flat.size)
        sparse_bytes = nonzero.size * (array.itemsize + np.dtype(index_type).itemsize)
        if array.ndim != 2 or 1 - nonzero.size / max(1, flat.size) < min_sparsity or sparse_bytes >= array.nbytes:
            kept.append(tensor)
            continue
        values = numpy_helper.from_array(flat[nonzero], tensor.name)
        indices = numpy_helper.from_array(nonzero.astype(index_type), f"{tensor.name}_indices")
        graph.sparse_initializer.append(helper.make_sparse_tensor(values, indices, list(array.shape)))
        report.matrices += 1
        report.dense_bytes += array.nbytes
        report.sparse_bytes += sparse_bytes
        report.names.append(tensor.name)
    if report.matrices:
        del graph.initializer[:]
        graph.initializer.extend(kept)
        onnx.save(model, str(path))
    return report
