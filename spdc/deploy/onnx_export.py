"""PyTorch -> ONNX with torch.onnx: one self-contained file, dynamic batch and sequence axes, logits out."""

from __future__ import annotations

import contextlib
import sys
import warnings
from pathlib import Path

import torch
from torch import nn

from spdc.data.synthetic import synthetic_inputs
from spdc.models.families import model_config


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
        input_names, model_config(model).vocab_size, batch=2, seq_len=16).values())
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
