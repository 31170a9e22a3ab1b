"""Metric functions against values computed by hand."""

import numpy as np
import pytest

from spdc.data.metrics import accuracy, f1, matthews_corrcoef, pearson, spearman

PREDS = [1, 1, 0, 0, 1, 0]
REFS = [1, 0, 0, 1, 1, 0]  # tp=2, fp=1, fn=1, tn=2


def test_accuracy():
    assert accuracy(PREDS, REFS) == pytest.approx(4 / 6)


def test_f1_positive_class():
    # precision 2/3, recall 2/3 -> F1 = 2/3
    assert f1(PREDS, REFS) == pytest.approx(2 / 3)
    assert f1([0, 0], [0, 0]) == 0.0


def test_matthews():
    # (2*2 - 1*1) / sqrt(3*3*3*3) = 3/9
    assert matthews_corrcoef(PREDS, REFS) == pytest.approx(1 / 3)
    assert matthews_corrcoef([1, 1, 1], [1, 0, 1]) == 0.0  # a constant prediction has no correlation


def test_pearson():
    # x = [1,2,3], y = [2,4,7]: centred x = [-1,0,1]; sum of centred products = 7/3 + 8/3 = 5
    x, y = [1.0, 2.0, 3.0], [2.0, 4.0, 7.0]
    dy = np.array(y) - 13 / 3
    expected = 5 / np.sqrt(2 * np.sum(dy**2))
    assert pearson(x, y) == pytest.approx(expected)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_spearman_with_ties():
    # ranks of x = [1, 2.5, 2.5, 4]; ranks of y = [1, 2, 3, 4]
    x, y = [10, 20, 20, 30], [1, 2, 3, 4]
    assert spearman(x, y) == pytest.approx(pearson([1, 2.5, 2.5, 4], [1, 2, 3, 4]))
    assert spearman([1, 5, 2], [10, 30, 11]) == pytest.approx(1.0)
