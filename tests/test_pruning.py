"""Pruning building blocks: the cubic schedule, criteria, patterns and the pruner's mask invariants."""

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from spdc.compression.pruning.criteria import FirstOrderCriterion, MagnitudeCriterion
from spdc.compression.pruning.patterns import head_masks, neuron_masks, unstructured_masks
from spdc.compression.pruning.pruner import Pruner
from spdc.compression.pruning.schedules import CubicSchedule
from spdc.models.families import PrunableMatrix, encoder_layers, family_of, prunable_linears
from spdc.models.shape import EncoderShape, encoder_flops_per_token, flops_report
from spdc.recipe import PruningConfig


def tiny_bert(seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=24, max_position_embeddings=32)
    return BertForSequenceClassification(config)


def linears_of(model: BertForSequenceClassification) -> dict:
    arch = family_of(model)
    return prunable_linears(encoder_layers(model, arch), arch)


SHAPE = EncoderShape(num_layers=2, hidden=16, num_heads=4, head_dim=4, intermediate=24)


def test_cubic_schedule_values() -> None:
    schedule = CubicSchedule(initial=0.0, final=0.9, total_steps=100, num_updates=4)
    assert schedule.sparsity_at(0) == 0.0
    assert schedule.sparsity_at(50) == pytest.approx(0.9 - 0.9 * 0.5**3)  # 0.7875
    assert schedule.sparsity_at(75) == pytest.approx(0.9 - 0.9 * 0.25**3)
    assert schedule.sparsity_at(100) == pytest.approx(0.9)
    assert schedule.sparsity_at(150) == pytest.approx(0.9)
    assert schedule.update_steps() == [25, 50, 75, 100]
    # The paper's code: 12 updates over the pruning epochs.
    assert len(CubicSchedule(0.0, 0.9, total_steps=3450, num_updates=12).update_steps()) == 12


def test_unstructured_local_and_global() -> None:
    scores = {"a": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "b": torch.tensor([[10.0, 20.0], [30.0, 40.0]])}
    local = unstructured_masks(scores, 0.5, scope="local")
    assert local.weight["a"].tolist() == [[0.0, 0.0], [1.0, 1.0]]
    assert local.weight["b"].tolist() == [[0.0, 0.0], [1.0, 1.0]]
    glob = unstructured_masks(scores, 0.5, scope="global")
    assert glob.weight["a"].sum() == 0 and glob.weight["b"].sum() == 4


def test_head_and_neuron_masks_cover_whole_units() -> None:
    model = tiny_bert()
    linears = linears_of(model)
    scores = {name: linear.weight.detach().abs() for name, linear in linears.items()}
    masks = head_masks(scores, linears, 0.5, num_layers=2, head_dim=4, scope="local")
    for layer in range(2):
        kept = masks.heads[layer]
        assert int(kept.sum()) == 2
        rows = masks.weight[f"{layer}.query"].view(4, 4, 16)  # head, dim, hidden
        for head in range(4):
            assert bool((rows[head] == float(kept[head])).all())
            cols = masks.weight[f"{layer}.attention_output"][:, head * 4 : (head + 1) * 4]
            assert bool((cols == float(kept[head])).all())
        assert masks.bias[f"{layer}.key"].view(4, 4)[:, 0].tolist() == kept.float().tolist()
    neurons = neuron_masks(scores, linears, 0.25, num_layers=2, scope="local")
    for layer in range(2):
        kept = neurons.neurons[layer]
        assert int(kept.sum()) == 18
        assert torch.equal(neurons.weight[f"{layer}.intermediate"][:, 0], kept.float())
        assert torch.equal(neurons.weight[f"{layer}.output"][0, :], kept.float())


def test_pruner_follows_schedule_and_keeps_exact_zeros() -> None:
    model = tiny_bert()
    linears = linears_of(model)
    config = PruningConfig(final_sparsity=0.8, num_updates=4)
    pruner = Pruner(config, linears, SHAPE, total_steps=20)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05)
    inputs = torch.randint(0, 40, (4, 8))
    for step in range(1, 21):
        loss = model(input_ids=inputs, labels=torch.tensor([0, 1, 0, 1])).loss
        loss.backward()
        pruner.after_backward()
        optimizer.step()
        optimizer.zero_grad()
        changed = pruner.after_step(step)
        report = pruner.sparsity_report()
        if changed:
            expected = pruner.schedules["weights"].sparsity_at(step)
            for value in report["per_matrix"].values():
                assert value == pytest.approx(expected, abs=1 / 256)  # exact up to rounding of one element
        # Pruned weights stay exactly zero after every optimizer step (AdamW momentum would revive them).
        for name, mask in pruner.masks.weight.items():
            assert bool((linears[name].weight[mask == 0] == 0).all())
    assert pruner.sparsity_report()["overall"] == pytest.approx(0.8, abs=0.01)


def test_structured_pruner_zeros_heads_neurons_and_reports_flops() -> None:
    model = tiny_bert()
    linears = linears_of(model)
    config = PruningConfig(granularity="structured", head_sparsity=0.5, neuron_sparsity=0.5, schedule="oneshot")
    pruner = Pruner(config, linears, SHAPE, total_steps=5)
    pruner.after_step(1)
    for layer in range(2):
        dropped = (~pruner.masks.heads[layer]).nonzero().flatten().tolist()
        assert len(dropped) == 2
        for head in dropped:
            assert bool((linears[f"{layer}.value"].weight[head * 4 : (head + 1) * 4] == 0).all())
            assert bool((linears[f"{layer}.value"].bias[head * 4 : (head + 1) * 4] == 0).all())
        gone = (~pruner.masks.neurons[layer]).nonzero().flatten()
        assert bool((linears[f"{layer}.intermediate"].bias[gone] == 0).all())
    report = pruner.sparsity_report()
    assert report["kept_heads"] == {0: 2, 1: 2} and report["kept_neurons"] == {0: 12, 1: 12}
    assert pruner.kept_units() == ([2, 2], [12, 12])
    flops = flops_report(SHAPE, *pruner.kept_units(), seq_len=8)
    dense = encoder_flops_per_token(hidden=16, seq_len=8, head_dim=4, heads_per_layer=[4, 4],
                                    neurons_per_layer=[24, 24])
    assert flops["dense"] == dense and flops["reduction"] == pytest.approx(0.5)


def test_a_shallower_student_counts_its_missing_layers_as_removed_flops() -> None:
    one_layer = flops_report(SHAPE, [4], [24], seq_len=8)  # 1 of SHAPE's 2 layers, nothing pruned
    assert one_layer["reduction"] == pytest.approx(0.5)
    assert flops_report(SHAPE, *SHAPE.full_units(), seq_len=8)["reduction"] == 0.0


def test_first_order_criterion_accumulates_weight_times_gradient() -> None:
    linear = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[2.0, -3.0]]))
    criterion = FirstOrderCriterion()
    matrix = PrunableMatrix(linear)
    for grad in ([[0.5, 1.0]], [[-0.5, 1.0]]):
        linear.weight.grad = torch.tensor(grad)
        criterion.observe({"m": matrix})
    # |2*0.5| + |2*-0.5| = 2 ; |-3*1| + |-3*1| = 6
    assert criterion.scores("m", matrix).tolist() == [[2.0, 6.0]]
    assert criterion.scores("m", matrix).tolist() == [[2.0, 3.0]]  # reset: falls back to magnitude
    assert MagnitudeCriterion().scores("m", matrix).tolist() == [[2.0, 3.0]]
