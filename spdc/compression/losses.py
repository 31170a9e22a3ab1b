"""Distillation losses, as a registry keyed by the recipe's loss-weight names (`distillation.weights`).
Padding never counts: hidden-state and attention errors are averaged over real tokens.

Each registered loss says whether it needs the teacher's forward pass; the objective runs the teacher only
when some loss with a non-zero weight does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from spdc.heads import Outputs, TaskHead


def hidden_mse(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], token_mask: torch.Tensor
               ) -> torch.Tensor:
    """Mean over matched pairs of the per-element squared error on real tokens; states are [batch, seq, hidden].
    Computed in fp32 whatever precision the forward ran in."""
    weights = token_mask.unsqueeze(-1).float()
    losses = []
    for s, t in zip(student, teacher, strict=True):
        squared = (s.float() - t.float()).pow(2) * weights
        losses.append(squared.sum() / (weights.sum() * s.size(-1)))
    return torch.stack(losses).mean()


def attention_mse(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], token_mask: torch.Tensor
                  ) -> torch.Tensor:
    """Mean squared error of attention probabilities [batch, heads, query, key] over real query/key pairs."""
    pair = (token_mask[:, None, :, None] * token_mask[:, None, None, :]).float()
    losses = []
    for s, t in zip(student, teacher, strict=True):
        squared = (s.float() - t.float()).pow(2) * pair
        losses.append(squared.sum() / (pair.sum() * s.size(1)))
    return torch.stack(losses).mean()


@dataclass
class ForwardOutputs:
    """One forward pass as the losses see it: the head's named outputs, hidden states (embedding output first)
    and attention probabilities in the order the layers ran."""

    outputs: Outputs
    hidden: list[torch.Tensor]
    attentions: list[torch.Tensor]


@dataclass
class LossInputs:
    """Everything a loss may read at one step. `teacher` is None when no loss in use needs it."""

    student: ForwardOutputs
    teacher: ForwardOutputs | None
    labels: torch.Tensor
    token_mask: torch.Tensor
    layer_map: list[int]  # student layer i learns from teacher layer layer_map[i]
    temperature: float
    head: TaskHead
    attention_heads: list[list[int]] | None = None  # per student layer, the teacher heads it has (None: all)

    def teacher_outputs(self) -> ForwardOutputs:
        if self.teacher is None:
            raise RuntimeError("this loss needs the teacher's forward pass")
        return self.teacher


@dataclass(frozen=True)
class DistillationLoss:
    needs_teacher: bool
    compute: Callable[[LossInputs], torch.Tensor]


def _hidden(inputs: LossInputs) -> torch.Tensor:
    teacher = inputs.teacher_outputs().hidden
    matched = [teacher[0]] + [teacher[j + 1] for j in inputs.layer_map]
    return hidden_mse(inputs.student.hidden, matched, inputs.token_mask)


def _attention(inputs: LossInputs) -> torch.Tensor:
    """Each student layer against its teacher layer; a folded student's layers against the same heads of the
    teacher's (a layer left without heads records no attention, and is left out)."""
    teacher = inputs.teacher_outputs().attentions
    if inputs.attention_heads is None:
        matched = [teacher[j] for j in inputs.layer_map]
    else:
        matched = [teacher[j][:, heads] for j, heads in zip(inputs.layer_map, inputs.attention_heads, strict=True)
                   if heads]
    if not matched:
        return inputs.token_mask.new_zeros((), dtype=torch.float32)
    return attention_mse(inputs.student.attentions, matched, inputs.token_mask)


def _logits(inputs: LossInputs) -> torch.Tensor:
    """The head's distillation target on its outputs (soft cross-entropy of logits for a classifier)."""
    return inputs.head.distillation_loss(inputs.student.outputs, inputs.teacher_outputs().outputs,
                                         temperature=inputs.temperature)


def _hard_label(inputs: LossInputs) -> torch.Tensor:
    return inputs.head.hard_loss(inputs.student.outputs, inputs.labels)


LOSSES: dict[str, DistillationLoss] = {
    "hidden": DistillationLoss(needs_teacher=True, compute=_hidden),
    "attention": DistillationLoss(needs_teacher=True, compute=_attention),
    "logits": DistillationLoss(needs_teacher=True, compute=_logits),
    "hard_label": DistillationLoss(needs_teacher=False, compute=_hard_label),
}
LOSS_NAMES = {"hidden": "loss_hidden", "attention": "loss_attention", "logits": "loss_logits",
              "hard_label": "loss_hard"}  # the metrics.jsonl key of each part
