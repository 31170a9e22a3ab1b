"""What this CPU is and which instruction-set features it has: int8 and bf16 speed depend on them (VNNI and AMX
make int8 GEMMs ~2x faster than fp32; AMX-BF16 / AVX512-BF16 make bf16 autocast pay), so every performance
number is recorded with them and `precision: auto` decides from them."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import cache
from pathlib import Path

# /proc/cpuinfo flag -> the name spdc reports
ISA_FLAGS = {
    "avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "AVX512-VNNI", "avx_vnni": "AVX-VNNI",
    "amx_int8": "AMX-INT8", "amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16",
}


@dataclass(frozen=True)
class CpuInfo:
    model: str
    logical_cores: int
    usable_cores: int  # this process's affinity mask
    features: dict[str, bool]  # ISA_FLAGS values -> present

    @property
    def fast_int8(self) -> bool:
        return self.features["AVX512-VNNI"] or self.features["AVX-VNNI"] or self.features["AMX-INT8"]

    @property
    def fast_bf16(self) -> bool:
        return self.features["AMX-BF16"] or self.features["AVX512-BF16"]

    def feature_line(self) -> str:
        return feature_line(self.features)


def feature_line(features: dict[str, bool]) -> str:
    """The features present and, as plainly, those absent: a number measured without VNNI or AMX says so."""
    present = [name for name, has in features.items() if has]
    absent = [name for name, has in features.items() if not has]
    return (", ".join(present) or "none of the int8/bf16 accelerating features") + (
        f" (absent: {', '.join(absent)})" if absent else "")


def parse_cpuinfo(text: str) -> tuple[str, set[str]]:
    """(model name, flags) from /proc/cpuinfo's first processor block."""
    model, flags = "", set[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return model, flags


@cache
def cpu_info() -> CpuInfo:
    try:
        model, flags = parse_cpuinfo(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
    except OSError:
        model, flags = "", set()
    logical = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    return CpuInfo(model=model or platform.processor() or platform.machine(), logical_cores=logical,
                   usable_cores=usable, features={name: flag in flags for flag, name in ISA_FLAGS.items()})
