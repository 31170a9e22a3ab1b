"""The official GLUE metrics, computed with numpy so results do not depend on an extra package.

Every function takes predictions and references as 1-D sequences and returns a float in the usual
GLUE scale (0..1; correlations -1..1). Each task head turns its model outputs into predictions for them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

ArrayLike = Sequence[float] | np.ndarray


def accuracy(predictions: ArrayLike, references: ArrayLike) -> float:
    preds, refs = np.asarray(predictions), np.asarray(references)
    return float(np.mean(preds == refs)) if len(refs) else 0.0


def f1(predictions: ArrayLike, references: ArrayLike) -> float:
    """Binary F1 of the positive class (label 1), as GLUE reports for MRPC and QQP."""
    preds, refs = np.asarray(predictions), np.asarray(references)
    true_pos = float(np.sum((preds == 1) & (refs == 1)))
    false_pos = float(np.sum((preds == 1) & (refs != 1)))
    false_neg = float(np.sum((preds != 1) & (refs == 1)))
    denominator = 2 * true_pos + false_pos + false_neg
    return 2 * true_pos / denominator if denominator else 0.0


def matthews_corrcoef(predictions: ArrayLike, references: ArrayLike) -> float:
    """Matthews correlation for binary labels (CoLA); 0 when a row or column of the confusion matrix is empty."""
    preds, refs = np.asarray(predictions), np.asarray(references)
    tp = float(np.sum((preds == 1) & (refs == 1)))
    tn = float(np.sum((preds != 1) & (refs != 1)))
    fp = float(np.sum((preds == 1) & (refs != 1)))
    fn = float(np.sum((preds != 1) & (refs == 1)))
    denominator = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return float((tp * tn - fp * fn) / denominator) if denominator else 0.0


def pearson(predictions: ArrayLike, references: ArrayLike) -> float:
    preds = np.asarray(predictions, dtype=np.float64)
    refs = np.asarray(references, dtype=np.float64)
    if np.ptp(preds) == 0 or np.ptp(refs) == 0:  # a constant correlates with nothing (and rounds to noise)
        return 0.0
    preds_c, refs_c = preds - preds.mean(), refs - refs.mean()
    denominator = np.sqrt(np.sum(preds_c**2) * np.sum(refs_c**2))
    return float(np.sum(preds_c * refs_c) / denominator) if denominator else 0.0


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks starting at 1, ties sharing the mean of their ranks (what Spearman needs)."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_values = values[order]
    start = 0
    while start < len(values):
        end = start
        while end + 1 < len(values) and sorted_values[end + 1] == sorted_values[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(predictions: ArrayLike, references: ArrayLike) -> float:
    preds = np.asarray(predictions, dtype=np.float64)
    refs = np.asarray(references, dtype=np.float64)
    return pearson(_average_ranks(preds), _average_ranks(refs))


METRICS: dict[str, Callable[[ArrayLike, ArrayLike], float]] = {
    "accuracy": accuracy,
    "f1": f1,
    "mcc": matthews_corrcoef,
    "pearson": pearson,
    "spearman": spearman,
}
