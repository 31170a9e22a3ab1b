"""Task heads: the registry, the sequence heads' losses, metrics and baselines against hand-computed values, and
how a recipe names a head."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spdc.core.errors import RecipeError
from spdc.data.tasks import GLUE_TASKS
from spdc.heads import HEADS, head_of_architectures, head_of_task
from spdc.heads.sequence import soft_cross_entropy
from spdc.recipe import validate_task
from spdc.recipe.loading import validate_recipe

CLASSIFIER, REGRESSOR = HEADS["sequence-classification"], HEADS["sequence-regression"]


def test_every_glue_task_has_a_registered_head() -> None:
    assert {spec.name: head_of_task(spec).name for spec in GLUE_TASKS.values()}["stsb"] == "sequence-regression"
    assert {head_of_task(spec).name for name, spec in GLUE_TASKS.items() if name != "stsb"} == {
        "sequence-classification"}
    assert head_of_architectures(["BertForSequenceClassification"]) is CLASSIFIER
    assert head_of_architectures(None) is CLASSIFIER  # a base encoder gets the classifier's class


def test_soft_cross_entropy_hand_value() -> None:
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[math.log(3.0), 0.0]])  # softmax = [0.75, 0.25]
    assert soft_cross_entropy(student, teacher, 1.0).item() == pytest.approx(math.log(2.0))
    # temperature 2: teacher softmax([log3/2, 0]) = [sqrt3/(sqrt3+1), 1/(sqrt3+1)]; uniform student -> log 2 again
    assert soft_cross_entropy(student, teacher, 2.0).item() == pytest.approx(math.log(2.0))
    peaked = torch.tensor([[2.0, 0.0]])
    expected = -(0.75 * torch.log_softmax(peaked, -1)[0, 0] + 0.25 * torch.log_softmax(peaked, -1)[0, 1])
    assert soft_cross_entropy(peaked, teacher, 1.0).item() == pytest.approx(expected.item())
    assert CLASSIFIER.distillation_loss({"logits": peaked}, {"logits": teacher}, temperature=1.0).item() == (
        pytest.approx(expected.item()))


def test_regression_and_hard_losses() -> None:
    assert REGRESSOR.distillation_loss({"logits": torch.tensor([[1.0], [3.0]])},
                                       {"logits": torch.tensor([[0.0], [1.0]])},
                                       temperature=5.0).item() == pytest.approx((1 + 4) / 2)
    assert CLASSIFIER.hard_loss({"logits": torch.tensor([[0.0, 0.0]])}, torch.tensor([1])).item() == pytest.approx(
        math.log(2.0))
    assert REGRESSOR.hard_loss({"logits": torch.tensor([[2.0]])}, torch.tensor([0.5])).item() == pytest.approx(2.25)


def test_scores_take_the_argmax_or_the_single_logit() -> None:
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert CLASSIFIER.score({"logits": logits}, np.array([1, 0, 0]), ["accuracy"]) == {
        "accuracy": pytest.approx(2 / 3)}
    scores = REGRESSOR.score({"logits": np.array([[1.0], [2.0], [3.0]])}, np.array([1.0, 2.0, 3.0]), ["pearson"])
    assert scores["pearson"] == pytest.approx(1.0)
    assert CLASSIFIER.agreement({"logits": logits}, {"logits": logits[:, ::-1]}) == pytest.approx(0.0)
    assert REGRESSOR.agreement({"logits": logits}, {"logits": logits}) is None


def test_the_constant_baseline_predicts_the_majority_label_or_the_mean() -> None:
    mrpc, stsb = GLUE_TASKS["mrpc"], GLUE_TASKS["stsb"]  # f1 + accuracy; pearson + spearman
    assert CLASSIFIER.constant_baseline([1, 1, 1, 0], mrpc) == pytest.approx({"accuracy": 0.75, "f1": 6 / 7})
    assert CLASSIFIER.constant_baseline([0, 0, 1], mrpc) == pytest.approx({"accuracy": 2 / 3, "f1": 0.0})
    assert REGRESSOR.constant_baseline([0.5, 2.0, 4.5], stsb) == {"pearson": 0.0, "spearman": 0.0}


def test_a_recipe_names_its_head_or_has_it_implied() -> None:
    assert validate_task({"name": "stsb", "head": "sequence-regression"}).head == "sequence-regression"
    assert validate_task({"name": "sst2"}).head is None
    unknown = r"task\.head: unknown head \(known: sequence-classification, .*got 'token-tagger'"
    with pytest.raises(RecipeError, match=unknown):
        validate_task({"name": "sst2", "head": "token-tagger"})
    mismatch = r"task\.head: task 'stsb' needs the sequence-regression head, got 'sequence-classification'"
    with pytest.raises(RecipeError, match=mismatch):
        validate_task({"name": "stsb", "head": "sequence-classification"})
    custom = {"name": "custom", "train_file": "t.csv", "dev_file": "d.csv", "regression": True,
              "columns": {"text": "text", "label": "score"}}
    with pytest.raises(RecipeError, match=r"task\.head"):
        validate_task({**custom, "head": "sequence-classification"})


def test_the_head_field_leaves_existing_fingerprints_alone() -> None:
    """Runs started before `task.head` existed still resume: a head left implied is not hashed (the values are
    what spdc computed for this recipe before the field was added); a named head is part of the recipe."""
    data = {"name": "x", "task": {"name": "sst2"}, "teacher": {"model": "minilm"},
            "stages": [{"name": "a", "epochs": 1}]}
    plain = validate_recipe(data, source="test")
    assert (plain.fingerprint(), plain.teacher_fingerprint()) == ("5c59ffc04127ba69", "d13dff12af8d20a2")
    named = validate_recipe({**data, "task": {"name": "sst2", "head": "sequence-classification"}}, source="test")
    assert named.fingerprint() != plain.fingerprint()
