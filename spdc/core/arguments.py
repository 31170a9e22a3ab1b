"""The bounds of every command option that the Python API takes too: one table, read by the CLI (its click types)
and by the API (its checks), so `spdc.bench(rounds=0)` fails exactly as `spdc bench --rounds 0` does, with a
UsageError (exit 2) naming the argument, before any work starts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spdc.core.errors import UsageError


@dataclass(frozen=True)
class Bound:
    flag: str  # the CLI option, named in messages beside the API argument
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    integer: bool = True


BOUNDS: dict[str, Bound] = {
    "threads": Bound("--threads", 1),
    "batch_size": Bound("--batch-size", 1),
    "batch_sizes": Bound("--batch-sizes", 1),
    "seq_lens": Bound("--seq-lens", 1),
    "rounds": Bound("--rounds", 1),
    "warmup_s": Bound("--warmup-s", 0, integer=False),
    "time_s": Bound("--time-s", 0.01, integer=False),
    "samples": Bound("--samples", 1),
    "max_samples": Bound("--max-samples", 1),
    "max_seq_length": Bound("--max-seq-length", 1),
    "opset": Bound("--opset", 14, 23),
    "max_metric_drop": Bound("--max-metric-drop", 0, integer=False),
    "device": Bound("--device", choices=("auto", "cpu", "cuda")),
    "provider": Bound("--provider", choices=("cpu", "cuda", "auto")),
    "engine": Bound("--engine", choices=("auto", "ort", "torch")),
    "optimize": Bound("--optimize", choices=("O0", "O1", "O2", "O3")),
    "quantize": Bound("--quantize", choices=("none", "dynamic-int8", "static-int8")),
    "precision": Bound("--precision", choices=("fp32", "fp16")),
    "sparse": Bound("--sparse", choices=("auto", "never")),
}


def _named(name: str) -> str:
    return f"{name} ({BOUNDS[name].flag})" if name in BOUNDS else name


def checked(name: str, value: Any) -> Any:
    """`value` if it is within the bounds of argument `name` (None passes: the default applies)."""
    if value is None:
        return None
    bound = BOUNDS[name]
    if bound.choices:
        if not isinstance(value, str) or value not in bound.choices:
            raise UsageError(f"{_named(name)}: {value!r} is not one of {', '.join(bound.choices)}")
        return value
    number_types = (int,) if bound.integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, number_types) or not math.isfinite(value):
        kind = "a whole number" if bound.integer else "a number"
        raise UsageError(f"{_named(name)}: expected {kind}, got {value!r}")
    if bound.minimum is not None and value < bound.minimum:
        raise UsageError(f"{_named(name)}: {value!r} is below the smallest allowed, {bound.minimum:g}")
    if bound.maximum is not None and value > bound.maximum:
        raise UsageError(f"{_named(name)}: {value!r} is above the largest allowed, {bound.maximum:g}")
    return value


def checked_list(name: str, values: Any) -> list[int]:
    """A non-empty list of numbers, each within the bounds of `name`."""
    if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
        raise UsageError(f"{_named(name)}: expected a non-empty list of whole numbers, got {values!r}")
    return [checked(name, value) for value in values]


def checked_paths(name: str, values: Any) -> list[Path]:
    """A list of paths; one string is refused rather than read letter by letter."""
    if isinstance(values, str | Path) or not isinstance(values, Sequence | tuple):
        raise UsageError(f"{name}: expected a list of paths, got {values!r} (wrap one path in a list)")
    if not all(isinstance(value, str | Path) for value in values):
        raise UsageError(f"{name}: expected paths, got {list(values)!r}")
    return [Path(value) for value in values]
