"""Process-wide run settings: seeds, CPU threads and device choice, applied once before any model is built."""

from __future__ import annotations

import random

import numpy as np
import torch

from spdc.core.errors import SpdcError


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_threads(threads: int | None) -> int:
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def resolve_device(choice: str) -> torch.device:
    """`auto` picks CUDA when present; asking for `cuda` without it is an error rather than a silent fallback."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise SpdcError("device: cuda was requested but CUDA is not available on this machine")
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(choice)
