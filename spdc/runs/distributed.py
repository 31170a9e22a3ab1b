"""Data-parallel training under torchrun: which process this is, and the few collective steps spdc needs.

`torchrun --nproc_per_node=N -m spdc compress RECIPE` starts N processes with RANK / WORLD_SIZE / LOCAL_RANK set;
`init_distributed` joins them into one process group (gloo on CPU, nccl on CUDA, one device per rank). Every rank
loads the data and the models, builds the same student and draws the same grafting layers and pruning masks
(the same seeded generators, and weights that DistributedDataParallel keeps identical); each optimizer step's
global batch is split across the ranks. Only rank 0 evaluates and writes the run directory; the others wait for
it at barriers. Without torchrun (WORLD_SIZE unset or 1) everything here is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from spdc.core.console import silence
from spdc.core.errors import SpdcError


@dataclass(frozen=True)
class DistributedContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_CONTEXT = DistributedContext()


def context() -> DistributedContext:
    """This process's place in the run (rank 0 of 1 without torchrun)."""
    return _CONTEXT


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_launch_rank_zero() -> bool:
    """Whether this process is (or, before `init_distributed`, will be) rank 0: torchrun sets RANK."""
    return context().is_main if context().enabled else int(os.environ.get("RANK", "0")) == 0


def init_distributed(device_choice: str) -> DistributedContext:
    """Join the process group torchrun set up, once per process; returns the context."""
    global _CONTEXT
    if not launched_by_torchrun() or _CONTEXT.enabled:
        return _CONTEXT
    use_cuda = device_choice != "cpu" and torch.cuda.is_available()
    if device_choice == "cuda" and not use_cuda:
        raise SpdcError("device: cuda was requested but CUDA is not available on this machine")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    _CONTEXT = DistributedContext(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
                                  local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    if not _CONTEXT.is_main:
        silence()
    return _CONTEXT


def barrier() -> None:
    if _CONTEXT.enabled:
        dist.barrier()


def broadcast_from_main(tensors: dict[str, torch.Tensor]) -> None:
    """Overwrite every rank's tensors with rank 0's, in place (in sorted key order, the same on every rank)."""
    if _CONTEXT.enabled:
        for name in sorted(tensors):
            dist.broadcast(tensors[name], src=0)


def rank_device(device: torch.device) -> torch.device:
    """The device this rank trains on: its own GPU under torchrun on CUDA."""
    if _CONTEXT.enabled and device.type == "cuda":
        return torch.device("cuda", _CONTEXT.local_rank)
    return device


def default_threads() -> int | None:
    """CPU threads per rank when the recipe sets none: the cores shared out among this machine's ranks."""
    if not _CONTEXT.enabled:
        return None
    return max(1, (os.cpu_count() or 1) // max(1, _CONTEXT.local_world_size))


_CHECKPOINTS: list[Path] = []  # the checkpoints folder of the stage this process trains, for messages


def note_checkpoints(folder: Path) -> None:
    _CHECKPOINTS[:] = [folder]


def peer_lost_message(command: list[str]) -> str:
    """What a surviving rank says when another rank of its torchrun job stopped: which one (when it can tell),
    the last checkpoint and the command that resumes the job."""
    ctx = context()
    other = f"rank {1 - ctx.rank}" if ctx.world_size == 2 else "another rank"
    arguments = [arg for arg in command if arg not in ("--overwrite", "--resume")]
    resume = " ".join(["torchrun", f"--nproc_per_node={ctx.world_size}", "-m", "spdc", *arguments, "--resume"])
    checkpoint = "none yet (the job starts again from the beginning)"
    if _CHECKPOINTS and (_CHECKPOINTS[0] / "latest").is_file():  # rank 0 writes it; every rank reads it
        checkpoint = str(_CHECKPOINTS[0] / (_CHECKPOINTS[0] / "latest").read_text(errors="replace").strip())
    return (f"rank {ctx.rank} of {ctx.world_size}: {other} of this torchrun job stopped (its own output, or "
            f"torchrun's summary, says why), so this rank stopped too. Last checkpoint: {checkpoint}. "
            f"Continue with: {resume}")
