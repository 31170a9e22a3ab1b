"""Latency and throughput that can be compared: every model measured in the same process, interleaved.

For each (batch size, sequence length) cell the models take turns in rounds (the starting model rotates each
round), each warming up then running for its share of the time; onnxruntime sessions do not spin idle threads,
so a model waiting its turn does not steal cores from the one being timed. Speedups are against the first model;
efficiency = speedup / FLOP ratio, where 1.0 is what removing those FLOPs could buy at best.
"""

from __future__ import annotations

import datetime as dt
import functools
import resource
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from spdc.benchmark.document import (
    BenchDocument,
    BenchModelRecord,
    BenchSettingsRecord,
    CellResult,
    OrderEntry,
)
from spdc.benchmark.machine import machine_info
from spdc.benchmark.models import BenchModel, bench_inputs, engine_of, load_bench_model, resolve_bench_provider
from spdc.benchmark.timing import interleaved_order, latency_stats, time_calls
from spdc.core.errors import ArtifactError, OutputError
from spdc.core.version import VERSION
from spdc.deploy.manifest import MANIFEST_FILE
from spdc.deploy.model_card import record_bench
from spdc.models.families import check_sequence_length
from spdc.recipe.schema import TaskConfig

UNSTEADY_BASELINE = 0.10  # baseline std / median above which a cell's speedups are flagged in the notes


@dataclass
class BenchSettings:
    batch_sizes: list[int]
    seq_lens: list[int]
    threads: int | None = None
    provider: str = "cpu"
    engine: str = "auto"
    warmup_s: float = 1.0
    time_s: float = 3.0
    rounds: int = 3
    task: TaskConfig | None = None
    semi_structured: bool = False  # torch engine on CUDA: run 2:4-pruned Linears with sparse tensor-core kernels
    notes: list[str] = field(default_factory=list)


def run_bench(paths: list[Path], settings: BenchSettings,
              on_step: Callable[[str], None] | None = None) -> BenchDocument:
    """Measure every model in every cell, interleaved."""
    models: list[BenchModel] = []
    notes: list[str] = []
    for path in paths:
        engine = engine_of(path, settings.engine)
        provider, note = resolve_bench_provider(settings.provider, engine)
        if note and note not in notes:
            notes.append(note)
        if settings.semi_structured and engine == "torch" and provider != "cuda":
            note = "2:4 sparse kernels need CUDA: the torch engine measured dense kernels on CPU"
            if note not in notes:
                notes.append(note)
        models.append(load_bench_model(path, engine=engine, provider=provider, threads=settings.threads,
                                       semi_structured=settings.semi_structured))
        for seq_len in settings.seq_lens:  # a length the model cannot embed fails before any timing
            check_sequence_length(models[-1].config, seq_len, what="seq_lens (--seq-lens)", model=str(path))
    provider = "cuda" if any(model.provider == "cuda" for model in models) else "cpu"
    order = interleaved_order(len(models), settings.rounds)
    results: list[CellResult] = []
    schedule: list[OrderEntry] = []
    for seq_len in settings.seq_lens:
        for batch in settings.batch_sizes:
            feeds = bench_inputs(models[0], batch=batch, seq_len=seq_len, task=settings.task)
            timings: list[list[float]] = [[] for _ in models]
            for round_index, round_order in enumerate(order):
                for index in round_order:
                    schedule.append(OrderEntry(batch=batch, seq_len=seq_len, round=round_index, model=index))
                    if on_step:
                        on_step(f"{models[index].label} b{batch} s{seq_len} round {round_index + 1}")
                    timings[index] += time_calls(functools.partial(models[index].run, feeds),
                                                 warmup_s=settings.warmup_s / settings.rounds,
                                                 time_s=settings.time_s / settings.rounds)
            cells = _cell_results(models, timings, batch=batch, seq_len=seq_len)
            note = unsteady_baseline(cells)
            if note:
                notes.append(note)
            results += cells
    document = BenchDocument(
        spdc=VERSION, created=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        machine=machine_info(provider, intra_op_threads=settings.threads),
        settings=BenchSettingsRecord(
            batch_sizes=settings.batch_sizes, seq_lens=settings.seq_lens, threads=settings.threads,
            provider_requested=settings.provider, provider=provider, warmup_s=settings.warmup_s,
            time_s=settings.time_s, rounds=settings.rounds,
            inputs=f"task:{settings.task.name}" if settings.task else "synthetic",
        ),
        models=[BenchModelRecord(
            index=index, label=model.label, path=str(model.path), engine=model.engine, provider=model.provider,
            precision=model.precision, file_bytes=model.file_bytes, parameters=model.parameters,
            load_mb=round(model.load_mb, 1), load_seconds=round(model.load_seconds, 3),
        ) for index, model in enumerate(models)],
        order=schedule, results=results, notes=[*settings.notes, *notes],
    )
    record_in_artifacts(document)
    return document


def record_in_artifacts(document: BenchDocument) -> None:
    """Each spdc artifact benched keeps its own cells and the machine block (its model card shows them); an
    artifact that cannot be written (read-only, in use) is said in the document's notes, never fatal."""
    baseline = document.models[0]
    for model in document.models:
        folder = Path(model.path)
        if model.engine != "ort" or not (folder / MANIFEST_FILE).is_file():
            continue
        cells = [{"batch": cell.batch, "seq_len": cell.seq_len, "p50_ms": cell.latency_ms["median"],
                  "items_per_s": cell.items_per_s, "speedup": cell.speedup}
                 for cell in document.results if cell.model == model.index]
        try:
            record_bench(folder, {"created": document.created, "baseline": baseline.path,
                                  "machine": document.machine.to_dict(), "cells": cells})
        except (OutputError, ArtifactError) as error:
            document.notes.append(f"the bench was not recorded in {folder}: {error}")


def unsteady_baseline(cells: list[CellResult]) -> str | None:
    """A note when the baseline (model 0, every speedup's numerator) ran unsteadily in a cell: on shared or
    virtual machines its reading has moved 10-20% between benches minutes apart, and every ratio moves with it."""
    baseline = cells[0]
    spread = baseline.latency_ms["std"] / baseline.latency_ms["median"]
    if spread <= UNSTEADY_BASELINE:
        return None
    return (f"{baseline.label} (the baseline) was unsteady at batch {baseline.batch}, length {baseline.seq_len}: "
            f"std {spread:.0%} of its median latency; that cell's speedups move with it, bench again to confirm")


def _cell_results(models: list[BenchModel], timings: list[list[float]], *, batch: int, seq_len: int
                  ) -> list[CellResult]:
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    baseline_median = statistics.median(timings[0])
    baseline_flops = models[0].flops_per_sequence(seq_len)
    cells = []
    for index, (model, seconds) in enumerate(zip(models, timings, strict=True)):
        flops = model.flops_per_sequence(seq_len)
        speedup = baseline_median / statistics.median(seconds)
        flop_ratio = baseline_flops / flops
        cells.append(CellResult(
            model=index, label=model.label, batch=batch, seq_len=seq_len, runs=len(seconds),
            latency_ms=latency_stats(seconds), items_per_s=batch * len(seconds) / sum(seconds),
            process_peak_rss_mb=round(peak_mb, 1), encoder_flops_per_sequence=flops, speedup=speedup,
            flop_ratio=flop_ratio, efficiency=speedup / flop_ratio,
        ))
    return cells
