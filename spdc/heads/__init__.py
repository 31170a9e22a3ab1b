"""Task heads: what a task's model outputs, how its rows are batched, what the student learns from the teacher's
outputs, the hard loss, the metric and the parity comparison. A new head is one entry of `HEADS`."""

from __future__ import annotations

from collections.abc import Sequence

from spdc.data.tasks import TaskSpec
from spdc.heads.base import Outputs, TaskHead
from spdc.heads.sequence import SequenceClassification, SequenceRegression

HEADS: dict[str, TaskHead] = {head.name: head for head in (SequenceClassification(), SequenceRegression())}


def head_named(name: str) -> TaskHead:
    if name not in HEADS:
        raise KeyError(f"unknown task head {name!r}; known: {', '.join(HEADS)}")
    return HEADS[name]


def head_of_task(task: TaskSpec) -> TaskHead:
    """The head a task's outputs need."""
    return head_named(task.head)


def head_of_architectures(architectures: Sequence[str] | None) -> TaskHead:
    """A head that builds a saved model as config.json's `architectures` names it (the sequence heads share
    one model class); a model saved without a head, such as a base encoder, gets the sequence classifier's."""
    for head in HEADS.values():
        if any(name.endswith(head.architecture_suffix) for name in architectures or ()):
            return head
    return HEADS[SequenceClassification.name]


__all__ = ["HEADS", "Outputs", "TaskHead", "head_named", "head_of_architectures", "head_of_task"]
