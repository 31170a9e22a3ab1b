"""The commands users type first: the paper's full SPD job from one recipe, and `spdc export` / `spdc bench`
without a path acting on the run the last `spdc compress` finished in the working directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import spdc.deploy.build as build_module
from spdc.cli.main import cli
from spdc.compression.compress import check_compress_recipe
from spdc.recipe import load_recipe

ROOT = Path(__file__).resolve().parent.parent
GLUE = ["cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte"]


@pytest.mark.parametrize("task", GLUE)
def test_bert_base_recipe_is_the_whole_spd_job(task: str) -> None:
    recipe = load_recipe(ROOT / "recipes" / f"bert-base-{task}.yaml")
    check_compress_recipe(recipe)
    assert recipe.teacher.model == "bert-base-uncased" and recipe.teacher.finetuned is False
    assert recipe.method == "spd" and recipe.pruning is not None and recipe.pruning.final_sparsity == 0.9
    assert [stage.epochs for stage in recipe.stages] == [30, 30] and recipe.stages[0].learning_rate == 6.4e-4
    assert recipe.export.onnx and recipe.export.fold
    teacher_only = load_recipe(ROOT / "recipes" / f"bert-base-{task}-teacher.yaml")
    assert teacher_only.teacher == recipe.teacher.model_copy(update={"finetuned": True})


@pytest.mark.parametrize("task", GLUE)
def test_bert_base_recipe_offline_stops_with_a_model_load_error(task: str, tmp_path: Path) -> None:
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=tmp_path) as cwd:
        result = runner.invoke(cli, ["compress", str(ROOT / "recipes" / f"bert-base-{task}.yaml"), "--json"])
        written = list(Path(cwd).iterdir())
    assert result.exit_code == 5, result.output
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "ModelLoadError"
    assert "teacher.model" in error["message"] and "--set teacher.model=" in error["message"]
    assert written == []  # refused before anything was written


def test_missing_local_model_folder_is_named_as_a_folder(tiny_recipe, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["finetune", str(tiny_recipe()), "--set",
                                      f"teacher.model={tmp_path / 'models' / 'mine'}"])
    assert result.exit_code == 5
    assert "local model folder" in result.stderr and "hub" not in result.stderr


STRUCTURED = "{granularity: structured, head_sparsity: 0.5, neuron_sparsity: 0.5, num_updates: 2}"


def test_export_and_bench_without_a_path_use_the_latest_compress_run(compress_recipe, tmp_path: Path) -> None:
    recipe = compress_recipe("spd", STRUCTURED, extra="export: {fold: true, onnx: true}\n")
    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=tmp_path) as cwd:
        compressed = runner.invoke(cli, ["compress", str(recipe), "--json"])
        assert compressed.exit_code == 0, compressed.output
        summary = json.loads(compressed.stdout)
        run = Path(cwd) / "runs" / "tiny-spd"
        assert summary["artifact"] == {"path": str(Path("runs") / "tiny-spd" / "onnx"), "status": "passed",
                                       "precision": "fp32"}
        latest = json.loads((Path(cwd) / "runs" / "latest.json").read_text())
        assert latest["run_dir"] == str(run.resolve()) and latest["recipe"] == str(recipe.resolve())

        exported = runner.invoke(cli, ["export", "--onnx", "--quantize", "dynamic-int8", "--no-validate"])
        assert exported.exit_code == 0, exported.output
        assert "the run the last `spdc compress` finished here" in exported.stderr
        assert (run / "onnx-int8" / "model.onnx").is_file()

        benched = runner.invoke(cli, ["bench", "--batch-sizes", "1", "--seq-lens", "8", "--warmup-s", "0",
                                      "--time-s", "0.02", "--rounds", "1", "--threads", "1", "--json"])
        assert benched.exit_code == 0, benched.output
        document = json.loads(benched.stdout)
        paths = [model["path"] for model in document["models"]]
        assert paths[0].endswith("teacher-onnx") and document["models"][0]["parameters"] > \
            document["models"][1]["parameters"]  # the dense teacher first, as the baseline
        assert [Path(path).name for path in paths[1:]] == ["onnx", "onnx-int8"]
        assert any("dense teacher first" in note for note in document["notes"])

        by_recipe = runner.invoke(cli, ["export", str(recipe), "--out", "by-recipe", "--no-validate", "--json"])
        assert by_recipe.exit_code == 0, by_recipe.output
        assert json.loads(by_recipe.stdout)["manifest"]["source"]["path"] == str(Path("runs") / "tiny-spd")


def test_export_reads_the_parity_data_before_exporting(tiny_model_dir: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("exported before checking the parity data")

    monkeypatch.setattr(build_module, "export_to_onnx", never)
    result = CliRunner().invoke(cli, ["export", str(tiny_model_dir), "--task", "rte", "--out", str(tmp_path / "a")])
    assert result.exit_code == 3 and "no data for task rte" in result.stderr
    assert not (tmp_path / "a").exists()


def test_report_of_a_finetune_run_shows_its_dev_metric(tiny_recipe, tmp_path: Path) -> None:
    runner = CliRunner()
    trained = runner.invoke(cli, ["finetune", str(tiny_recipe(epochs=1)), "--out", str(tmp_path / "t"), "--json"])
    assert trained.exit_code == 0, trained.output
    dev = json.loads(trained.stdout)["dev"]["accuracy"]
    reported = runner.invoke(cli, ["report", str(tmp_path / "t"), "--json"])
    assert reported.exit_code == 0, reported.output
    row = next(line for line in (tmp_path / "t" / "report.md").read_text().splitlines() if line.startswith("| t |"))
    assert row.split("|")[6].strip() == f"{dev * 100:.2f}"  # after the majority baseline column


def test_the_gpu_check_refuses_without_cuda_and_its_recipes_are_valid(tmp_path: Path) -> None:
    """benchmarks/gpu_check.py has not run on a GPU in this suite: on CPU it must refuse and write nothing, and the
    recipes it will run there must pass spdc's own validation."""
    import subprocess
    import sys

    import torch

    from benchmarks.gpu_check import recipe
    from spdc.compression.compress import check_compress_recipe
    from spdc.recipe import load_recipe

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: run the check itself")
    out = tmp_path / "gpu.md"
    result = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--out", str(out)], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "no CUDA device" in result.stderr and not out.exists()
    rehearsal = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--cpu-rehearsal"], cwd=ROOT,
                               capture_output=True, text=True, check=False, timeout=600)
    assert rehearsal.returncode == 0, rehearsal.stdout + rehearsal.stderr[-2000:]
    assert rehearsal.stdout.count("passed ") == 3  # the same spdc commands, on CPU: fine-tune, SPD, fp16 export
    for precision in ("bf16", "fp16"):
        finetune_recipe = load_recipe(recipe(tmp_path, tmp_path, tmp_path, precision, compress=False))
        assert finetune_recipe.device == "cuda" and finetune_recipe.precision == precision
        check_compress_recipe(load_recipe(recipe(tmp_path, tmp_path, tmp_path, precision, compress=True)))
