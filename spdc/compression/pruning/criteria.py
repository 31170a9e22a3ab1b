"""Importance criteria: a score per weight element; patterns sum them over a unit (head, neuron) when structured."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from spdc.models.families import PrunableMatrix


class Criterion(Protocol):
    """Scores every weight element; may accumulate statistics after each backward pass."""

    needs_gradients: bool

    def observe(self, linears: dict[str, PrunableMatrix]) -> None: ...
    def scores(self, name: str, linear: PrunableMatrix) -> torch.Tensor: ...
    def state_dict(self) -> dict[str, torch.Tensor]: ...
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None: ...


class MagnitudeCriterion:
    """|w|: the paper's criterion."""

    needs_gradients = False

    def observe(self, linears: dict[str, PrunableMatrix]) -> None:
        """Nothing to accumulate."""

    def scores(self, name: str, linear: PrunableMatrix) -> torch.Tensor:
        return linear.weight.detach().abs()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Stateless."""


class FirstOrderCriterion:
    """First-order Taylor importance, sum over steps of |w * dL/dw|: how much the loss moves if the weight goes.

    Accumulated after every backward pass between two mask updates, then reset; before any gradient has been
    seen (the first update at step 0) it falls back to magnitude.
    """

    needs_gradients = True

    def __init__(self) -> None:
        self.accumulated: dict[str, torch.Tensor] = {}

    def observe(self, linears: dict[str, PrunableMatrix]) -> None:
        with torch.no_grad():
            for name, matrix in linears.items():
                grad = matrix.grad
                if grad is None:
                    continue
                contribution = (matrix.weight * grad).abs()
                if name in self.accumulated:
                    self.accumulated[name].add_(contribution)
                else:
                    self.accumulated[name] = contribution.clone()

    def scores(self, name: str, linear: PrunableMatrix) -> torch.Tensor:
        if name in self.accumulated:
            return self.accumulated.pop(name)
        return linear.weight.detach().abs()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.accumulated)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.accumulated = {name: tensor.clone() for name, tensor in state.items()}


CRITERIA: dict[str, Callable[[], Criterion]] = {"magnitude": MagnitudeCriterion, "first_order": FirstOrderCriterion}
