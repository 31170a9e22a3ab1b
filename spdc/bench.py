"""Latency and throughput that can be compared: every model measured in the same process, interleaved.

For each (batch size, sequence length) cell the models take turns in rounds (the starting model rotates each
round), each warming up then running for its share of the time; onnxruntime sessions do not spin idle threads,
so a model waiting its turn does not steal cores from the one being timed. Speedups are against the first model;
efficiency = speedup / FLOP ratio, where 1.0 is what removing those FLOPs could buy at best.
The JSON document (`SCHEMA`) is documented in docs/bench.md; fields are only ever added.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spdc import __version__
from spdc.architectures import encoder_flops_per_token
from spdc.artifact import ONNX_FILE
from spdc.errors import SpdcError
from spdc.folding import structure_of
from spdc.recipe import TaskConfig
from spdc.synthetic import model_input_names, synthetic_inputs

SCHEMA = "spdc-bench/1"
PERCENTILES = (90, 95, 99)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")  # overlapping lines stay distinguishable


def latency_stats(seconds: list[float]) -> dict[str, float]:
    """Milliseconds: mean, median, std (sample), min, max and the tail percentiles (linear interpolation)."""
    if not seconds:
        raise ValueError("no timings")
    values = np.asarray(seconds, dtype=np.float64) * 1000.0
    stats = {
        "mean": float(values.mean()), "median": float(np.median(values)),
        "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "min": float(values.min()), "max": float(values.max()),
    }
    stats.update({f"p{q}": float(np.percentile(values, q)) for q in PERCENTILES})
    return stats


def interleaved_order(models: int, rounds: int) -> list[list[int]]:
    """Model order per round: round r starts at model r mod n, so no model always runs first or last."""
    return [[(start + offset) % models for offset in range(models)] for start in range(rounds)]


def time_calls(call: Callable[[], None], *, warmup_s: float, time_s: float, min_calls: int = 3,
               clock: Callable[[], float] = time.perf_counter) -> list[float]:
    """Warm up for `warmup_s` (at least one call), then time single calls until `time_s` has passed."""
    start = clock()
    call()
    while clock() - start < warmup_s:
        call()
    timings: list[float] = []
    start = clock()
    while clock() - start < time_s or len(timings) < min_calls:
        before = clock()
        call()
        timings.append(clock() - before)
    return timings


@dataclass
class BenchModel:
    """One model under test, loaded and ready: `run(feeds)` does one forward pass."""

    label: str
    path: Path
    engine: str
    provider: str
    precision: str
    file_bytes: int
    parameters: int | None
    config: Any
    tokenizer: Any
    run: Callable[[dict[str, np.ndarray]], None]
    load_mb: float = 0.0

    def flops_per_sequence(self, seq_len: int) -> float:
        """Encoder FLOPs for one sequence: folded heads/neurons count, unstructured zeros do not (dense kernels)."""
        config = self.config
        head_dim = config.hidden_size // config.num_attention_heads
        structure = structure_of(config)
        layers = config.num_hidden_layers
        heads = [len(kept) for kept in structure.heads] if structure else [config.num_attention_heads] * layers
        neurons = structure.neurons if structure else [config.intermediate_size] * layers
        return seq_len * encoder_flops_per_token(hidden=config.hidden_size, seq_len=seq_len, head_dim=head_dim,
                                                 heads_per_layer=heads, neurons_per_layer=neurons)


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _engine_of(path: Path, engine: str) -> str:
    is_onnx = path.suffix == ".onnx" or (path / ONNX_FILE).is_file()
    if engine == "auto":
        return "ort" if is_onnx else "torch"
    if engine == "ort" and not is_onnx:
        raise SpdcError(f"{path} has no {ONNX_FILE}: export it first (`spdc export {path} --onnx`) or use "
                        "--engine torch")
    if engine == "torch" and is_onnx and not (path / "config.json").is_file():
        raise SpdcError(f"{path} is an ONNX file; --engine torch needs a model or run directory")
    return engine


def load_bench_model(path: Path, *, engine: str, provider: str, threads: int | None) -> BenchModel:
    """Open `path` (artifact dir, .onnx file, model dir or run dir) for timing on `provider` (cpu or cuda)."""
    from transformers import AutoConfig, AutoTokenizer

    engine = _engine_of(path, engine)
    before = _rss_mb()
    if engine == "ort":
        from spdc.onnx_runtime import create_session

        onnx_file = path if path.suffix == ".onnx" else path / ONNX_FILE
        folder = onnx_file.parent
        session = create_session(onnx_file, threads=threads, provider=provider, spinning=False)
        names = [node.name for node in session.get_inputs()]
        manifest = _manifest_or_none(folder)
        model = BenchModel(
            label=_label(path), path=path, engine="ort",
            provider="cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu",
            precision=manifest["export"]["precision"] if manifest else "fp32",
            file_bytes=onnx_file.stat().st_size,
            parameters=manifest["sizes"]["parameters"] if manifest else None,
            config=AutoConfig.from_pretrained(folder), tokenizer=AutoTokenizer.from_pretrained(folder),
            run=lambda feeds: session.run(["logits"], {name: feeds[name] for name in names}),
        )
    else:
        model = _torch_model(path, provider, threads)
    model.run(synthetic_inputs(model_input_names(model.tokenizer), model.config.vocab_size, batch=1, seq_len=8))
    model.load_mb = max(0.0, _rss_mb() - before)
    return model


def _label(path: Path) -> str:
    parts = path.parts[-2:] if path.name in ("model", "folded", "onnx", "onnx-int8", ONNX_FILE) else path.parts[-1:]
    return "/".join(parts)


def _manifest_or_none(folder: Path) -> dict[str, Any] | None:
    from spdc.artifact import read_manifest

    try:
        return read_manifest(folder)
    except SpdcError:
        return None


def _torch_model(path: Path, provider: str, threads: int | None) -> BenchModel:
    import torch

    from spdc.folding import parameter_count
    from spdc.models import load_classifier

    model_dir = path / "model" if (path / "model" / "config.json").is_file() else path
    loaded = load_classifier(str(model_dir), None)
    if threads:
        torch.set_num_threads(threads)
    device = torch.device("cuda" if provider == "cuda" else "cpu")
    network = loaded.model.eval().to(device)

    @torch.inference_mode()
    def run(feeds: dict[str, np.ndarray]) -> None:
        inputs = {name: torch.from_numpy(array).to(device) for name, array in feeds.items()}
        if device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                network(**inputs)
            torch.cuda.synchronize()
        else:
            network(**inputs)

    weights = model_dir / "model.safetensors"
    return BenchModel(
        label=_label(path), path=path, engine="torch", provider="cuda" if device.type == "cuda" else "cpu",
        precision="bf16-autocast" if device.type == "cuda" else "fp32",
        file_bytes=weights.stat().st_size if weights.is_file() else 0, parameters=parameter_count(network),
        config=loaded.model.config, tokenizer=loaded.tokenizer, run=run,
    )


def resolve_bench_provider(requested: str, engine: str) -> tuple[str, str | None]:
    """'cuda' or 'cpu' for one engine, and a note when CUDA was asked for but this engine has none here
    (measured on CPU instead of failing)."""
    if requested == "cpu":
        return "cpu", None
    if engine == "ort":
        import onnxruntime as ort

        available = ort.get_available_providers()
        has_cuda, detail = "CUDAExecutionProvider" in available, f"onnxruntime providers: {', '.join(available)}"
    else:
        import torch

        has_cuda, detail = torch.cuda.is_available(), f"torch {torch.__version__}: torch.cuda.is_available() False"
    if has_cuda:
        return "cuda", None
    note = f"CUDA requested but absent for {engine} here ({detail}): measured on CPU" if requested == "cuda" else None
    return "cpu", note


def bench_inputs(model: BenchModel, *, batch: int, seq_len: int, task: TaskConfig | None) -> dict[str, np.ndarray]:
    """Real dev sentences of `task` padded or cut to `seq_len` (cycled to fill the batch), else random ids."""
    names = model_input_names(model.tokenizer)
    if task is None:
        return synthetic_inputs(names, model.config.vocab_size, batch=batch, seq_len=seq_len, padded=False)
    from spdc.data.sources import load_split, task_spec

    examples = load_split(task.model_copy(update={"max_eval_samples": batch}), task_spec(task).dev_splits[0]).examples
    rows = [examples[index % len(examples)] for index in range(batch)]
    pairs = [row.text_pair for row in rows]
    encoded = model.tokenizer([row.text for row in rows], pairs if any(p is not None for p in pairs) else None,
                              padding="max_length", truncation=True, max_length=seq_len, return_tensors="np")
    return {name: encoded[name].astype(np.int64) for name in names}


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
    notes: list[str] = field(default_factory=list)


def run_bench(paths: list[Path], settings: BenchSettings,
              on_step: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure every model in every cell, interleaved; returns the JSON document."""
    models, notes = [], []
    for path in paths:
        engine = _engine_of(path, settings.engine)
        provider, note = resolve_bench_provider(settings.provider, engine)
        if note and note not in notes:
            notes.append(note)
        models.append(load_bench_model(path, engine=engine, provider=provider, threads=settings.threads))
    provider = "cuda" if any(model.provider == "cuda" for model in models) else "cpu"
    order = interleaved_order(len(models), settings.rounds)
    results, schedule = [], []
    for seq_len in settings.seq_lens:
        for batch in settings.batch_sizes:
            feeds = bench_inputs(models[0], batch=batch, seq_len=seq_len, task=settings.task)
            timings: list[list[float]] = [[] for _ in models]
            for round_index, round_order in enumerate(order):
                for index in round_order:
                    schedule.append({"batch": batch, "seq_len": seq_len, "round": round_index, "model": index})
                    if on_step:
                        on_step(f"{models[index].label} b{batch} s{seq_len} round {round_index + 1}")
                    timings[index] += time_calls(lambda m=models[index]: m.run(feeds),
                                                 warmup_s=settings.warmup_s / settings.rounds,
                                                 time_s=settings.time_s / settings.rounds)
            results += _cell_results(models, timings, batch=batch, seq_len=seq_len)
    return {
        "schema": SCHEMA, "spdc": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(provider),
        "settings": {
            "batch_sizes": settings.batch_sizes, "seq_lens": settings.seq_lens, "threads": settings.threads,
            "provider_requested": settings.provider, "provider": provider, "warmup_s": settings.warmup_s,
            "time_s": settings.time_s, "rounds": settings.rounds,
            "inputs": f"task:{settings.task.name}" if settings.task else "synthetic",
        },
        "models": [{
            "index": index, "label": model.label, "path": str(model.path), "engine": model.engine,
            "provider": model.provider, "precision": model.precision, "file_bytes": model.file_bytes,
            "parameters": model.parameters, "load_mb": round(model.load_mb, 1),
        } for index, model in enumerate(models)],
        "order": schedule,
        "results": results,
        "notes": [*settings.notes, *notes],
    }


def _cell_results(models: list[BenchModel], timings: list[list[float]], *, batch: int, seq_len: int
                  ) -> list[dict[str, Any]]:
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    baseline_median = statistics.median(timings[0])
    baseline_flops = models[0].flops_per_sequence(seq_len)
    cells = []
    for index, (model, seconds) in enumerate(zip(models, timings, strict=True)):
        stats = latency_stats(seconds)
        flops = model.flops_per_sequence(seq_len)
        speedup = baseline_median / statistics.median(seconds)
        flop_ratio = baseline_flops / flops
        cells.append({
            "model": index, "label": model.label, "batch": batch, "seq_len": seq_len, "runs": len(seconds),
            "latency_ms": stats, "items_per_s": batch * len(seconds) / sum(seconds),
            "process_peak_rss_mb": round(peak_mb, 1), "encoder_flops_per_sequence": flops,
            "speedup": speedup, "flop_ratio": flop_ratio, "efficiency": speedup / flop_ratio,
        })
    return cells


def machine_info(provider: str) -> dict[str, Any]:
    import onnxruntime
    import torch

    info = {
        "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__, "provider": provider,
    }
    if provider == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def plot_latency(document: dict[str, Any], path: Path) -> Path:
    """Median latency vs batch size, one panel per sequence length, one line per model."""
    from spdc.plots import Panel, Series, plot_panels

    panels = []
    for seq_len in document["settings"]["seq_lens"]:
        panel = Panel(title=f"sequence length {seq_len}", ylabel="median latency (ms, log scale)",
                      xlabel="batch size", log2_x=True, log_y=True)
        for model in document["models"]:
            cells = [r for r in document["results"] if r["model"] == model["index"] and r["seq_len"] == seq_len]
            panel.series.append(Series(
                f"#{model['index']} {model['label']} ({model['engine']} {model['precision']})",
                [c["batch"] for c in cells], [c["latency_ms"]["median"] for c in cells],
                style="--" if model["engine"] == "torch" else "-", marker=MARKERS[model["index"] % len(MARKERS)]))
        panels.append(panel)
    settings = document["settings"]
    return plot_panels(panels, path, title=f"spdc bench: {settings['provider']}, "
                                           f"{settings['threads'] or 'default'} threads, {settings['inputs']} inputs",
                       legend_below=True)
