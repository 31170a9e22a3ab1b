"""`spdc bench` statistics, interleaving, JSON schema and CLI; `spdc report` on a tiny run. No timing thresholds."""

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from spdc.benchmark.document import SCHEMA, CellResult
from spdc.benchmark.runner import unsteady_baseline
from spdc.benchmark.timing import interleaved_order, latency_stats, time_calls
from spdc.cli.main import cli
from spdc.deploy.build import ExportSource, export_artifact
from spdc.recipe import ExportConfig

PNG = b"\x89PNG\r\n\x1a\n"


def test_latency_stats_against_known_values() -> None:
    seconds = [0.001 * value for value in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)]
    stats = latency_stats(seconds)
    assert stats["mean"] == pytest.approx(5.5) and stats["median"] == pytest.approx(5.5)
    assert stats["std"] == pytest.approx(np.std(np.arange(1, 11), ddof=1))
    assert stats["p90"] == pytest.approx(9.1) and stats["p95"] == pytest.approx(9.55)
    assert stats["p99"] == pytest.approx(9.91) and stats["min"] == 1 and stats["max"] == 10
    assert latency_stats([0.002])["std"] == 0.0
    with pytest.raises(ValueError):
        latency_stats([])


def test_interleaving_rotates_the_first_model() -> None:
    assert interleaved_order(3, 3) == [[0, 1, 2], [1, 2, 0], [2, 0, 1]]
    assert interleaved_order(2, 4) == [[0, 1], [1, 0], [0, 1], [1, 0]]


def test_time_calls_warms_up_then_times_until_the_budget() -> None:
    now = [0.0]
    calls = []

    def clock() -> float:
        return now[0]

    def call() -> None:
        calls.append(now[0])
        now[0] += 0.25

    timings = time_calls(call, warmup_s=0.5, time_s=1.0, clock=clock)
    assert len(calls) == 2 + 4  # two warm-up calls reach 0.5 s, then four timed calls reach 1.0 s
    assert timings == [0.25] * 4
    assert len(time_calls(call, warmup_s=0, time_s=0.01, clock=clock)) == 3  # at least three timed calls


@pytest.fixture
def artifacts(tiny_model_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    source = ExportSource.resolve(tiny_model_dir)
    fp32 = tmp_path / "fp32"
    int8 = tmp_path / "int8"
    export_artifact(source, fp32, ExportConfig(), validate=False)
    export_artifact(source, int8, ExportConfig(quantize="dynamic-int8"), validate=False)
    return fp32, int8


def test_bench_json_schema_and_order(artifacts: tuple[Path, Path], tiny_model_dir: Path, tmp_path: Path) -> None:
    fp32, int8 = artifacts
    result = CliRunner().invoke(cli, [
        "bench", str(fp32), str(int8), str(tiny_model_dir), "--batch-sizes", "1,2", "--seq-lens", "8",
        "--warmup-s", "0", "--time-s", "0.03", "--rounds", "2", "--threads", "1", "--json",
        "--plot", str(tmp_path / "latency.png"),
    ])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["schema"] == SCHEMA and document["ok"] is True
    assert {"machine", "settings", "models", "order", "results", "notes"} <= set(document)
    assert [m["engine"] for m in document["models"]] == ["ort", "ort", "torch"]
    assert [m["precision"] for m in document["models"]] == ["fp32", "int8", "fp32"]
    assert document["models"][1]["file_bytes"] < document["models"][0]["file_bytes"]
    assert len(document["results"]) == 2 * 3
    first_cell = [entry["model"] for entry in document["order"] if entry["batch"] == 1]
    assert first_cell == [0, 1, 2, 1, 2, 0]
    for cell in document["results"]:
        assert set(cell["latency_ms"]) == {"mean", "median", "std", "min", "max", "p90", "p95", "p99"}
        assert cell["runs"] >= 3 * 2 and cell["items_per_s"] > 0
        assert cell["encoder_flops_per_sequence"] > 0 and cell["process_peak_rss_mb"] > 0
        assert cell["efficiency"] == pytest.approx(cell["speedup"] / cell["flop_ratio"])
        if cell["model"] == 0:
            assert cell["speedup"] == 1.0
    assert (tmp_path / "latency.png").read_bytes()[:8] == PNG


def test_bench_reports_missing_cuda_instead_of_failing(artifacts: tuple[Path, Path], tiny_model_dir: Path) -> None:
    import onnxruntime
    import torch

    if torch.cuda.is_available() or "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA")
    result = CliRunner().invoke(cli, ["bench", str(artifacts[0]), str(tiny_model_dir), "--provider", "cuda",
                                      "--batch-sizes", "1", "--seq-lens", "8", "--warmup-s", "0", "--time-s", "0.01",
                                      "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["settings"]["provider"] == "cpu"
    assert [m["provider"] for m in document["models"]] == ["cpu", "cpu"]
    cuda_notes = [note.split(" here")[0] for note in document["notes"] if note.startswith("CUDA")]
    assert cuda_notes == ["CUDA requested but absent for ort", "CUDA requested but absent for torch"]


def test_bench_with_real_task_sentences(artifacts: tuple[Path, Path], sst2_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["bench", str(artifacts[0]), "--task", "sst2", "--data-dir", str(sst2_dir),
                                      "--batch-sizes", "4", "--seq-lens", "12", "--warmup-s", "0", "--time-s",
                                      "0.01", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["settings"]["inputs"] == "task:sst2"


def test_bench_cli_errors(tiny_model_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["bench", str(tiny_model_dir), "--engine", "ort"])
    assert result.exit_code == 6 and "export it first" in result.output  # an artifact error
    assert runner.invoke(cli, ["bench", str(tiny_model_dir), "--batch-sizes", "1,x"]).exit_code == 2
    with runner.isolated_filesystem(temp_dir=tmp_path):  # no path and no finished compress run here
        no_run = runner.invoke(cli, ["bench"])
    assert no_run.exit_code == 6 and "no `spdc compress` has finished" in no_run.output


def test_report_single_and_comparison(compress_recipe, tmp_path: Path) -> None:
    runner = CliRunner()
    runs = []
    for method, pruning in (("spd", None), ("magnitude", None), ("kd", ("{granularity: structured, head_sparsity: "
                                                                      "0.5, neuron_sparsity: 0.5, num_updates: 2}"))):
        out = tmp_path / f"run-{method}"
        recipe = compress_recipe(method) if pruning is None else compress_recipe(method, pruning)
        assert runner.invoke(cli, ["compress", str(recipe), "--out", str(out)]).exit_code == 0
        runs.append(out)
    result = runner.invoke(cli, ["report", str(runs[0]), "--json"])
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)
    assert [Path(p).name for p in written["plots"]] == ["train_dev.png", "losses.png", "schedule.png", "layers.png"]
    assert all(Path(p).read_bytes()[:8] == PNG for p in written["plots"])
    text = (runs[0] / "report.md").read_text()
    assert "| run-spd | sst2 | spd |" in text and "](report-plots/train_dev.png)" in text
    assert "(ISA: " in text and "torch threads, precision " in text  # where the run trained, with versions
    structured = runner.invoke(cli, ["report", str(runs[2]), "--json"])
    assert structured.exit_code == 0 and "kept" in (runs[2] / "report.md").read_text()
    result = runner.invoke(cli, ["report", *map(str, runs), "--out", str(tmp_path / "cmp.md")])
    assert result.exit_code == 0, result.output
    comparison = (tmp_path / "cmp.md").read_text()
    assert all(f"| {run.name} |" in comparison for run in runs)
    assert (tmp_path / "cmp-plots" / "compare.png").read_bytes()[:8] == PNG
    missing = runner.invoke(cli, ["report", str(tmp_path / "nothing")])
    assert missing.exit_code == 6 and "not a finished run directory" in missing.output


def test_an_unsteady_baseline_is_flagged_and_a_steady_one_is_not() -> None:
    def cell(model: int, median: float, std: float) -> CellResult:
        return CellResult(model=model, label=f"m{model}", batch=1, seq_len=128, runs=60,
                          latency_ms={"median": median, "std": std}, items_per_s=1.0, process_peak_rss_mb=1.0,
                          encoder_flops_per_sequence=1.0, speedup=1.0, flop_ratio=1.0, efficiency=1.0)

    # the two SST-2 teacher readings of 26 Nov: 17.8 ms (std 0.7) steady, 21.8 ms (std 4.8) not
    assert unsteady_baseline([cell(0, 17.8, 0.7), cell(1, 4.0, 2.0)]) is None  # only the baseline counts
    note = unsteady_baseline([cell(0, 21.8, 4.8), cell(1, 4.0, 0.1)])
    assert note is not None and "m0 (the baseline) was unsteady at batch 1, length 128: std 22%" in note
