"""The machine a benchmark ran on, recorded in every bench document and printed above its table: CPU model,
cores, the ISA features that decide int8/bf16 speed, library versions, execution provider, graph optimisation
level and threads. A number without these cannot be compared with another."""

from __future__ import annotations

import platform

from spdc.benchmark.document import MachineInfo
from spdc.core.cpu import cpu_info, feature_line

ORT_GRAPH_OPTIMIZATION = "ORT_ENABLE_ALL"  # onnxruntime's session default, which spdc keeps


def machine_info(provider: str, *, intra_op_threads: int | None) -> MachineInfo:
    import onnxruntime
    import torch

    cpu = cpu_info()
    return MachineInfo(
        platform=platform.platform(), processor=platform.processor() or platform.machine(),
        cpu_model=cpu.model, cpu_count=cpu.logical_cores, cpu_usable=cpu.usable_cores, isa=cpu.features,
        python=platform.python_version(), torch=torch.__version__, onnxruntime=onnxruntime.__version__,
        provider=provider, execution_provider="CUDAExecutionProvider" if provider == "cuda" else "CPUExecutionProvider",
        ort_graph_optimization=ORT_GRAPH_OPTIMIZATION, ort_intra_op_threads=intra_op_threads,
        torch_threads=torch.get_num_threads(),
        gpu=torch.cuda.get_device_name(0) if provider == "cuda" else None,
    )


def machine_header(machine: MachineInfo) -> str:
    """One line per aspect, for the top of the bench table."""
    threads = machine.ort_intra_op_threads or "default"
    return "\n".join([
        f"machine: {machine.cpu_model} ({machine.cpu_usable} of {machine.cpu_count} cores usable)"
        + (f", GPU {machine.gpu}" if machine.gpu else ""),
        f"ISA: {feature_line(machine.isa)}",
        (f"onnxruntime {machine.onnxruntime} {machine.execution_provider} {machine.ort_graph_optimization}, "
        f"{threads} intra-op threads; torch {machine.torch}, {machine.torch_threads} threads"),
    ])
