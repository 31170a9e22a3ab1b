"""`spdc bench MODEL...`: latency and throughput of one or more models, measured interleaved in one process."""

from __future__ import annotations

from pathlib import Path

import click
from rich import box
from rich.table import Table

from spdc.benchmark.document import BenchDocument
from spdc.benchmark.machine import machine_header
from spdc.cli.common import handle_errors, json_option, option_type, quiet_libraries
from spdc.core.console import print_json, progress_bar, stderr


def _int_list(value: str) -> list[int]:
    try:
        numbers = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not numbers or min(numbers) < 1:
        raise click.BadParameter(f"expected positive integers, got {value!r}")
    return numbers


@click.command("bench")
@click.argument("paths", metavar="[ARTIFACT_OR_MODEL...|RECIPE]", nargs=-1, type=click.Path(path_type=Path))
@click.option("--batch-sizes", default="1,8,32", show_default=True, help="Comma-separated batch sizes.")
@click.option("--seq-lens", default="32,128", show_default=True, help="Comma-separated sequence lengths.")
@click.option("--threads", type=option_type("threads"), help="Intra-op threads (default: the runtime's).")
@click.option("--provider", type=option_type("provider"), default="cpu", show_default=True)
@click.option("--engine", type=option_type("engine"), default="auto", show_default=True,
              help="auto: onnxruntime for artifacts/.onnx files, PyTorch eager for model/run directories.")
@click.option("--warmup-s", type=option_type("warmup_s"), default=1.0, show_default=True,
              help="Warm-up seconds per model and cell.")
@click.option("--time-s", type=option_type("time_s"), default=3.0, show_default=True,
              help="Timed seconds per model and cell (split over the rounds).")
@click.option("--rounds", type=option_type("rounds"), default=3, show_default=True,
              help="Interleaving rounds per cell; the first model to run rotates every round.")
@click.option("--task", "task_name", help="Use real dev sentences of this task (default: synthetic token ids).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Folder holding the task's TSV files.")
@click.option("--plot", "plot_file", type=click.Path(path_type=Path), help="Write latency vs batch size as PNG.")
@click.option("--semi-structured", is_flag=True,
              help="torch engine on CUDA: run 2:4-pruned Linear layers with torch's sparse tensor-core kernels.")
@json_option
@handle_errors
def bench_command(
    paths: tuple[Path, ...], batch_sizes: str, seq_lens: str, threads: int | None, provider: str, engine: str,
    warmup_s: float, time_s: float, rounds: int, task_name: str | None, data_dir: Path | None,
    plot_file: Path | None, semi_structured: bool, json_output: bool,
) -> None:
    """Measure latency (mean, median, std, p90/p95/p99), items/s and memory per batch size and sequence length.
    The first model is the baseline: the table shows each model's speedup against it and the speedup
    efficiency (speedup / FLOP ratio). With no path (or one RECIPE), the latest (or that recipe's) run is
    benchmarked: its dense teacher's fp32 artifact first, then every artifact exported from its student."""
    sizes, lengths = _int_list(batch_sizes), _int_list(seq_lens)
    import spdc

    quiet_libraries()
    progress = progress_bar()
    progress.disable = json_output
    with progress:
        listed = bool(paths) and not any(path.suffix in (".yaml", ".yml") for path in paths)
        total = len(sizes) * len(lengths) * rounds * len(paths) if listed else None
        bar = progress.add_task("bench", total=total, status="")

        def step(label: str) -> None:
            progress.update(bar, advance=1, status=label)

        document = spdc.bench(paths, batch_sizes=sizes, seq_lens=lengths, threads=threads, provider=provider,
                              engine=engine, warmup_s=warmup_s, time_s=time_s, rounds=rounds, task=task_name,
                              data_dir=data_dir, plot=plot_file, semi_structured=semi_structured,
                              show_progress=not json_output, on_step=step)
    if json_output:
        print_json(document.to_json())
        return
    stderr.print(machine_header(document.machine), highlight=False)
    for note in document.notes:
        stderr.print(f"[yellow]note:[/] {note}")
    stderr.print(models_table(document))
    stderr.print(results_table(document))


def results_table(document: BenchDocument) -> Table:
    """One row per model and cell; full statistics (p95, p99, std, memory) are in --json."""
    settings = document.settings
    table = Table(title=f"spdc bench: {settings.provider}, {settings.threads or 'default'} threads, "
                        f"{settings.inputs} inputs; latency in ms; speedup vs #0", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("#", "engine", "b x seq", "p50", "p90", "items/s", "speedup", "FLOP÷", "eff"):
        table.add_column(column, justify="left" if column == "engine" else "right", no_wrap=True)
    for cell in document.results:
        model = document.models[cell.model]
        latency = cell.latency_ms
        table.add_row(str(cell.model), f"{model.engine} {model.precision}", f"{cell.batch} x {cell.seq_len}",
                      f"{latency['median']:.2f}", f"{latency['p90']:.2f}", f"{cell.items_per_s:.1f}",
                      f"{cell.speedup:.2f}x", f"{cell.flop_ratio:.2f}", f"{cell.efficiency:.2f}")
    return table


def models_table(document: BenchDocument) -> Table:
    table = Table(title="models", box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("#", "model", "file MB", "parameters"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for model in document.models:
        parameters = f"{model.parameters:,}" if model.parameters is not None else "-"
        table.add_row(str(model.index), model.label, f"{model.file_bytes / 1e6:.1f}", parameters)
    return table
