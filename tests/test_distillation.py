"""Distillation losses against hand-computed values, grafting probabilities and draws."""


import pytest
import torch

from spdc.compression.grafting import draw_student_layers, grafting_probability
from spdc.compression.losses import attention_mse, hidden_mse
from spdc.compression.student import uniform_layer_map
from spdc.recipe import GraftingConfig


def test_hidden_mse_ignores_padding() -> None:
    student = [torch.tensor([[[1.0, 2.0], [5.0, 5.0]]])]  # batch 1, seq 2, hidden 2
    teacher = [torch.tensor([[[0.0, 0.0], [0.0, 0.0]]])]
    mask = torch.tensor([[1, 0]])  # second token is padding
    assert hidden_mse(student, teacher, mask).item() == pytest.approx((1 + 4) / 2)
    two = hidden_mse(student * 2, teacher * 2, mask)  # mean over pairs of layers
    assert two.item() == pytest.approx(2.5)


def test_attention_mse_over_real_pairs() -> None:
    student = [torch.tensor([[[[0.5, 0.5], [1.0, 0.0]]]])]  # batch 1, heads 1, 2x2
    teacher = [torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])]
    full = torch.tensor([[1, 1]])
    assert attention_mse(student, teacher, full).item() == pytest.approx((0.25 + 0.25 + 1 + 1) / 4)
    first_only = torch.tensor([[1, 0]])
    assert attention_mse(student, teacher, first_only).item() == pytest.approx(0.25)


def test_uniform_layer_map() -> None:
    assert uniform_layer_map(6, 6) == [0, 1, 2, 3, 4, 5]
    assert uniform_layer_map(3, 6) == [1, 3, 5]
    assert uniform_layer_map(4, 12) == [2, 5, 8, 11]


def test_grafting_schedules() -> None:
    assert grafting_probability(None, 5, 10) == 1.0
    constant = GraftingConfig(schedule="constant", p0=0.3)
    assert grafting_probability(constant, 9, 10) == pytest.approx(0.3)
    linear = GraftingConfig(schedule="linear", p0=0.5)
    assert [grafting_probability(linear, s, 5) for s in range(5)] == pytest.approx([0.5, 0.625, 0.75, 0.875, 1.0])
    hold = GraftingConfig(schedule="constant_then_linear", p0=0.2, hold_fraction=0.5)
    values = [grafting_probability(hold, s, 11) for s in range(11)]
    assert values[:6] == pytest.approx([0.2] * 6) and values[-1] == pytest.approx(1.0)
    assert values[8] == pytest.approx(0.2 + 0.8 * (0.8 - 0.5) / 0.5)


def test_grafting_draw_frequency() -> None:
    generator = torch.Generator().manual_seed(0)
    draws = [draw_student_layers(0.3, 6, generator) for _ in range(4000)]
    frequency = sum(sum(draw) for draw in draws) / (4000 * 6)
    assert frequency == pytest.approx(0.3, abs=0.02)
    assert all(all(draw_student_layers(1.0, 6, generator)) for _ in range(10))
    assert not any(draw_student_layers(0.0, 6, generator))
