"""Recording hidden states and attention probabilities during a forward pass, for the distillation losses.

Forward hooks go on the embeddings, every encoder layer and every self-attention module of the given models;
their handles are kept, and `close()` (or leaving the `with` block) removes them, so a model outlives its
recorder without carrying dead hooks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from spdc.models.families import FamilySpec, optional_module


@dataclass
class Recording:
    hidden: list[torch.Tensor] = field(default_factory=list)  # embedding output, then each layer's output
    attentions: list[torch.Tensor] = field(default_factory=list)  # probabilities [batch, heads, query, key]


def _entry(model: nn.Module, family: FamilySpec) -> nn.Module:
    """The last embedding module present: its output is what enters the first encoder layer."""
    present = [module for path in family.embeddings if (module := optional_module(model, path)) is not None]
    return present[-1]


class OutputRecorder:
    """Layers are recorded in call order, so a grafted mix of teacher and student layers is recorded as it ran."""

    def __init__(self, family: FamilySpec, models: list[nn.Module], layers: list[nn.ModuleList]) -> None:
        self._active: Recording | None = None
        self._handles: list[RemovableHandle] = []
        seen: set[int] = set()
        modules: list[tuple[nn.Module, str]] = [(_entry(model, family), "hidden") for model in models]
        for layer_list in layers:
            for layer in layer_list:
                modules.append((layer, "hidden"))
                attention = optional_module(layer, family.self_attention)
                if attention is not None:  # a folded layer left without heads has no attention to record
                    modules.append((attention, "attentions"))
        for module, kind in modules:
            if id(module) not in seen:
                seen.add(id(module))
                self._handles.append(module.register_forward_hook(self._hook(kind)))

    def _hook(self, kind: str) -> Any:
        def hook(module: nn.Module, inputs: object, output: Any) -> None:
            if self._active is None:
                return
            if kind == "attentions":
                self._active.attentions.append(output[1])  # (context, probabilities); needs eager attention
            else:
                self._active.hidden.append(output[0] if isinstance(output, tuple) else output)

        return hook

    @contextlib.contextmanager
    def record(self) -> Iterator[Recording]:
        self._active = Recording()
        try:
            yield self._active
        finally:
            self._active = None

    def close(self) -> None:
        """Remove every hook this recorder registered."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @property
    def hook_count(self) -> int:
        return len(self._handles)

    def __enter__(self) -> OutputRecorder:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
