"""PyTorch -> ONNX with torch.onnx: one self-contained file, dynamic batch and sequence axes, the task head's
named outputs out (the names optimum's ORTModel classes read)."""

from __future__ import annotations

import contextlib
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from spdc.data.synthetic import synthetic_inputs
from spdc.heads import TaskHead
from spdc.models.families import model_config


class _HeadOutputs(nn.Module):
    """Positional inputs in a fixed order, the head's outputs out in its order: the graph signature ORTModel
    expects."""

    def __init__(self, model: nn.Module, input_names: list[str], head: TaskHead) -> None:
        super().__init__()
        self.model = model
        self.input_names = input_names
        self.head = head

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.head.outputs(self.model(**dict(zip(self.input_names, inputs, strict=True))))
        return tuple(outputs.values())


def export_to_onnx(model: nn.Module, path: Path, input_names: list[str], head: TaskHead, *, opset: int,
                   dynamo: bool) -> None:
    """One self-contained .onnx file with dynamic batch and sequence axes."""
    wrapped = _HeadOutputs(model, input_names, head).eval()
    output_names = list(head.output_names)
    example = tuple(torch.from_numpy(array) for array in synthetic_inputs(
        input_names, model_config(model).vocab_size, batch=2, seq_len=16).values())
    with contextlib.redirect_stdout(sys.stderr), torch.no_grad(), warnings.catch_warnings():
        # stdout stays clean for --json; tracer warnings about shape-only conditions are expected here
        warnings.simplefilter("ignore")
        if dynamo:
            batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
            torch.onnx.export(wrapped, example, str(path), input_names=input_names, output_names=output_names,
                              dynamic_shapes=(tuple({0: batch, 1: sequence} for _ in input_names),),
                              opset_version=opset, dynamo=True, external_data=False, verbose=False)
        else:
            axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
            torch.onnx.export(wrapped, example, str(path), input_names=input_names, output_names=output_names,
                              dynamic_axes={**axes, **{name: {0: "batch"} for name in output_names}},
                              opset_version=opset, dynamo=False)
