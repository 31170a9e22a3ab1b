"""A few checks on the real offline MiniLM-L6 and real GLUE rows (skipped, with the reason, when absent)."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from transformers import AutoModelForSequenceClassification

from spdc.cli.main import cli
from spdc.data.tasks import get_task
from spdc.models.loading import load_model, minilm_dir

from .conftest import real_glue_dir, requires_minilm, requires_real_glue

ROOT = Path(__file__).resolve().parent.parent


@requires_minilm
def test_minilm_alias_loads_a_sized_classifier() -> None:
    loaded = load_model("minilm", get_task("rte"))
    config = loaded.model.config
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (6, 384, 12)
    assert config.intermediate_size == 1536
    assert loaded.model.classifier.out_features == 2
    assert config.id2label == {0: "entailment", 1: "not_entailment"}
    assert Path(loaded.source) == minilm_dir()


@requires_minilm
@requires_real_glue
def test_demo_recipe_runs_a_few_steps_on_real_mrpc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    glue_dir = real_glue_dir()
    assert glue_dir is not None
    monkeypatch.setenv("SPDC_DATA_DIR", str(glue_dir.parent))
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, [
        "finetune", str(ROOT / "recipes" / "demo-minilm-mrpc.yaml"), "--out", str(out), "--json",
        "--set", "task.max_train_samples=64", "--set", "task.max_eval_samples=32",
        "--set", "teacher.finetune.max_steps=2", "--set", "teacher.finetune.train_eval_samples=0",
    ])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["data"]["train"] == {"source": str(glue_dir / "MRPC" / "train.tsv"), "rows": 64, "dropped": 0,
                                       "warning": None}
    assert set(summary["dev"]) == {"f1", "accuracy", "loss"}
    # A written teacher is a plain transformers model directory.
    model = AutoModelForSequenceClassification.from_pretrained(out / "model")
    assert model.config.num_labels == 2 and (out / "model" / "tokenizer.json").is_file()


@requires_minilm
@requires_real_glue
def test_the_demo_recipe_runs_a_few_steps_on_real_sst2_and_reports_the_baseline(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    glue_dir = real_glue_dir()
    assert glue_dir is not None
    monkeypatch.setenv("SPDC_DATA_DIR", str(glue_dir.parent))
    result = CliRunner().invoke(cli, [
        "finetune", str(ROOT / "recipes" / "demo-minilm-sst2.yaml"), "--out", str(tmp_path / "demo"), "--json",
        "--set", "task.max_train_samples=64", "--set", "teacher.finetune.max_steps=2",
        "--set", "teacher.finetune.train_eval_samples=0",
    ])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    dev_labels = [line.rsplit("\t", 1)[1] for line in (glue_dir / "SST-2" / "dev.tsv").read_text().splitlines()[1:]]
    majority = max(dev_labels.count("0"), dev_labels.count("1")) / len(dev_labels)
    assert summary["baseline"]["accuracy"] == pytest.approx(majority) and len(dev_labels) == 872
