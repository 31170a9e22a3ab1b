"""The public API as a user scripts it: the docs' complete compress -> export -> bench script runs on the tiny
model, and each result's JSON form is exactly what the command prints with --json."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import spdc
from spdc.cli.main import cli

ROOT = Path(__file__).resolve().parent.parent


def docs_script() -> str:
    text = (ROOT / "docs" / "python-api.md").read_text(encoding="utf-8")
    section = text.split("## Compress, export, bench: a complete script", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def test_docs_script_runs_on_the_tiny_model(compress_recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    recipe = compress_recipe("spd", "{granularity: structured, head_sparsity: 0.5, neuron_sparsity: 0.5, "
                                    "num_updates: 2}")
    script = docs_script()
    script = re.sub(r'^RECIPE = ".*"$', f'RECIPE = "{recipe}"', script, flags=re.M)
    script = re.sub(r"^SEQ_LEN = \d+$", "SEQ_LEN = 16", script, flags=re.M)
    assert f'RECIPE = "{recipe}"' in script and "SEQ_LEN = 16" in script
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(spdc.api, "bench", _quick(spdc.api.bench))
    monkeypatch.setattr(spdc, "bench", spdc.api.bench)
    exec(compile(script, "docs/python-api.md", "exec"), {"__name__": "__docs__"})
    printed = capsys.readouterr().out
    assert "of encoder FLOPs removed" in printed and "report:" in printed
    assert (tmp_path / "runs" / "tiny-spd" / "onnx" / "model.onnx").is_file()
    assert (tmp_path / "runs" / "tiny-spd" / "onnx-int8" / "model.onnx").is_file()
    assert (tmp_path / "runs" / "tiny-spd" / "teacher-onnx" / "spdc_manifest.json").is_file()  # bench baseline
    assert (tmp_path / "runs" / "tiny-spd" / "report.md").is_file()


def _quick(bench):  # type: ignore[no-untyped-def]
    """The docs' bench call with the tiny model's budget: same code path, shorter timing."""

    def quick(*args, **kwargs):  # type: ignore[no-untyped-def]
        return bench(*args, **{**kwargs, "time_s": 0.05, "warmup_s": 0.0, "threads": 1})

    return quick


def test_result_json_is_what_the_command_prints(tiny_model_dir: Path, sst2_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    fold_cli = runner.invoke(cli, ["fold", str(tiny_model_dir), "--out", str(tmp_path / "f1"), "--json"])
    assert fold_cli.exit_code == 0, fold_cli.output
    fold_api = spdc.fold(tiny_model_dir, output_dir=tmp_path / "f1").to_json()
    assert json.loads(fold_cli.stdout) == fold_api
    eval_cli = runner.invoke(cli, ["eval", str(tiny_model_dir), "--task", "sst2", "--data-dir", str(sst2_dir),
                                   "--max-seq-length", "16", "--json"])
    assert eval_cli.exit_code == 0, eval_cli.output
    eval_api = spdc.evaluate(tiny_model_dir, task="sst2", data_dir=sst2_dir, max_seq_length=16,
                             show_progress=False).to_json()
    assert json.loads(eval_cli.stdout) == eval_api and eval_api["ok"] is True


def test_run_or_model_directory_is_answered_in_one_place(tiny_model_dir: Path, tmp_path: Path) -> None:
    """A run's model/ and a bare model folder are both found; a folder that is neither fails the same way for
    every command that takes one (eval, fold, export, bench)."""
    from spdc.core.errors import ArtifactError
    from spdc.runs.directory import locate_model

    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "model" / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    assert locate_model(run).model_dir == run / "model" and locate_model(run).is_run
    bare = locate_model(tiny_model_dir)
    assert bare.model_dir == tiny_model_dir and not bare.is_run
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="neither a run directory"):
        locate_model(tmp_path / "empty")
    with pytest.raises(ArtifactError, match="neither a run directory"):
        spdc.fold(tmp_path / "empty")
    with pytest.raises(ArtifactError, match=r"no recipe\.yaml"):  # a run without its recipe has no task to export
        spdc.export(run, output_dir=tmp_path / "out")
