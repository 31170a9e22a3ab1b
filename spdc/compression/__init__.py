"""Compression: the `compress` orchestration, the student and its output recorder, grafting, the loss registry,
the methods table, the objective that composes them, pruning (`pruning/`) and folding."""
