"""The CLI as a user runs it, through Click's test runner: exit codes, JSON documents, files written."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from spdc.cli.main import cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_every_command_has_help(runner: CliRunner) -> None:
    for args in ([], ["recipe"], ["recipe", "validate"], ["recipe", "show"], ["finetune"], ["eval"]):
        result = runner.invoke(cli, [*args, "--help"])
        assert result.exit_code == 0, args
        assert "Usage:" in result.output


def test_recipe_validate_ok_and_json(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["recipe", "validate", str(ROOT / "recipes" / "minilm-mrpc-teacher.yaml"), "--json"])
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["ok"] is True and document["name"] == "minilm-mrpc-teacher" and len(document["fingerprint"]) == 16


def test_invalid_recipe_exits_2_with_key_path(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ntask: {name: mrpc}\nteacher: {finetune: {learning_rate: -1}}\n")
    result = runner.invoke(cli, ["recipe", "validate", str(path)])
    assert result.exit_code == 2
    assert "teacher.finetune.learning_rate: must be > 0.0, got -1" in result.stderr
    json_result = runner.invoke(cli, ["recipe", "validate", str(path), "--json"])
    assert json_result.exit_code == 2
    assert json.loads(json_result.stdout)["error"]["type"] == "RecipeError"


def test_invalid_recipe_writes_nothing(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"name: bad\noutput_dir: {tmp_path / 'run'}\ntask: {{name: mrpc}}\nseed: x\n")
    result = runner.invoke(cli, ["finetune", str(path)])
    assert result.exit_code == 2 and "seed:" in result.stderr
    assert not (tmp_path / "run").exists()


def test_recipe_show_resolves_defaults_and_overrides(runner: CliRunner) -> None:
    recipe = str(ROOT / "recipes" / "demo-minilm-mrpc.yaml")
    result = runner.invoke(cli, ["recipe", "show", recipe, "--set", "teacher.finetune.epochs=3", "--json"])
    assert result.exit_code == 0
    document = json.loads(result.stdout)
    assert document["teacher"]["finetune"]["epochs"] == 3
    assert document["teacher"]["finetune"]["max_grad_norm"] == 1.0  # a default filled in
    as_yaml = runner.invoke(cli, ["recipe", "show", recipe])
    assert as_yaml.exit_code == 0 and "max_train_samples: 1024" in as_yaml.stdout
    bad = runner.invoke(cli, ["recipe", "show", recipe, "--set", "teacher.finetune.epochs=zero"])
    assert bad.exit_code == 2 and "teacher.finetune.epochs" in bad.stderr


def test_finetune_then_eval_end_to_end(runner: CliRunner, tiny_recipe, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["finetune", str(tiny_recipe(epochs=1)), "--out", str(tmp_path / "run"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["ok"] is True and summary["task"] == "sst2" and summary["steps"] == 16
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()

    data_dir = tmp_path / "glue" / "SST-2"
    evaluated = runner.invoke(cli, ["eval", str(tmp_path / "run"), "--task", "sst2", "--data-dir", str(data_dir),
                                    "--max-seq-length", "16", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    document = json.loads(evaluated.stdout)
    assert document["rows"] == 32 and document["split"] == "dev"
    assert document["metrics"]["accuracy"] == pytest.approx(summary["dev"]["accuracy"])

    again = runner.invoke(cli, ["finetune", str(tiny_recipe(epochs=1)), "--out", str(tmp_path / "run")])
    assert again.exit_code == 8 and "already exists" in again.stderr  # OutputError: refused output


def test_eval_with_recipe_and_usage_errors(runner: CliRunner, tiny_recipe, tiny_model_dir: Path) -> None:
    result = runner.invoke(cli, ["eval", str(tiny_model_dir), "--recipe", str(tiny_recipe()), "--json",
                                 "--max-samples", "8"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 8
    both = runner.invoke(cli, ["eval", str(tiny_model_dir)])
    assert both.exit_code == 2 and "exactly one of --task or --recipe" in both.output
    unknown = runner.invoke(cli, ["eval", str(tiny_model_dir), "--task", "nope"])
    assert unknown.exit_code == 2 and "task: unknown task 'nope'" in unknown.stderr


def test_missing_data_exits_3_and_says_how_to_provide_it(runner: CliRunner, tiny_model_dir: Path) -> None:
    result = runner.invoke(cli, ["eval", str(tiny_model_dir), "--task", "rte"])
    assert result.exit_code == 3
    assert "no data for task rte" in result.stderr and "SPDC_DATA_DIR" in result.stderr


def test_missing_model_exits_5(runner: CliRunner, tiny_recipe, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["finetune", str(tiny_recipe()), "--set", f"teacher.model={tmp_path / 'absent'}",
                                 "--json"])
    assert result.exit_code == 5
    assert json.loads(result.stdout)["error"]["type"] == "ModelLoadError"


def test_failures_before_training_leave_no_run_directory(runner: CliRunner, tiny_recipe, tmp_path: Path) -> None:
    out = tmp_path / "never"
    result = runner.invoke(cli, ["finetune", str(tiny_recipe()), "--out", str(out),
                                 "--set", f"task.data_dir={tmp_path / 'no-data'}"])
    assert result.exit_code == 3
    assert not out.exists()
