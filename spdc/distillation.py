"""Distillation losses. Padding never counts: hidden-state and attention errors are averaged over real tokens."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def hidden_mse(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], token_mask: torch.Tensor) -> torch.Tensor:
    """Mean over matched pairs of the per-element squared error on real tokens; states are [batch, seq, hidden]."""
    weights = token_mask.unsqueeze(-1).to(student[0].dtype)
    losses = []
    for s, t in zip(student, teacher, strict=True):
        squared = (s - t).pow(2) * weights
        losses.append(squared.sum() / (weights.sum() * s.size(-1)))
    return torch.stack(losses).mean()


def attention_mse(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], token_mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error of attention probabilities [batch, heads, query, key] over real query/key pairs."""
    pair = (token_mask[:, None, :, None] * token_mask[:, None, None, :]).to(student[0].dtype)
    losses = []
    for s, t in zip(student, teacher, strict=True):
        squared = (s - t).pow(2) * pair
        losses.append(squared.sum() / (pair.sum() * s.size(1)))
    return torch.stack(losses).mean()


def soft_cross_entropy(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """-sum softmax(t/T) * log_softmax(s/T), averaged over the batch."""
    targets = F.softmax(teacher_logits / temperature, dim=-1)
    return -(targets * F.log_softmax(student_logits / temperature, dim=-1)).sum(dim=-1).mean()


def logit_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, *, temperature: float,
               regression: bool) -> torch.Tensor:
    if regression:
        return F.mse_loss(student_logits.view(-1), teacher_logits.view(-1))
    return soft_cross_entropy(student_logits, teacher_logits, temperature)


def hard_label_loss(logits: torch.Tensor, labels: torch.Tensor, *, regression: bool) -> torch.Tensor:
    if regression:
        return F.mse_loss(logits.view(-1), labels.view(-1).to(logits.dtype))
    return F.cross_entropy(logits, labels)


def uniform_layer_map(student_layers: int, teacher_layers: int) -> list[int]:
    """Student layer i learns from teacher layer (i+1)*T/S - 1: the last student layer matches the last teacher layer."""
    return [(index + 1) * teacher_layers // student_layers - 1 for index in range(student_layers)]
