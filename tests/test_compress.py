"""`spdc compress` on a tiny random BERT: every method end to end, grafting invariants, frozen teacher, resume."""

import copy
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

import spdc.compression.compress as compress_module
import spdc.runs.setup as pipeline_module
from spdc.cli.main import cli
from spdc.compression.compress import compress
from spdc.compression.grafting import Grafting
from spdc.compression.methods import METHODS
from spdc.compression.objective import CompressionPlugin
from spdc.compression.recorder import OutputRecorder
from spdc.compression.student import build_student
from spdc.core.errors import RecipeError
from spdc.heads import HEADS
from spdc.models.families import encoder_layers, family_of
from spdc.recipe import DistillationConfig, GraftingConfig, LossWeights, StageConfig, StudentConfig, load_recipe
from spdc.runs.setup import RunOptions

from .conftest import killed_at_step


@pytest.mark.parametrize("method", ["spd", "kd", "magnitude"])
def test_each_method_end_to_end(compress_recipe, tmp_path: Path, method: str) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["compress", str(compress_recipe(method)), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["method"] == method and summary["steps"] == 16
    assert summary["structure"]["sparsity"]["overall"] == pytest.approx(0.5)
    assert summary["best_step"] >= 8  # only models at the final sparsity (end of pruning) can be the best
    weights = load_file(str(out / "model" / "model.safetensors"))
    query = weights["bert.encoder.layer.0.attention.self.query.weight"]
    assert (query == 0).float().mean().item() == pytest.approx(0.5)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    if method == "spd":
        assert {"loss_hidden", "loss_attention", "loss_logits", "p", "sparsity"} <= set(train[0])
        assert train[0]["p"] < 1.0 and train[-1]["p"] == 1.0
    if method == "kd":
        assert all(r["p"] == 1.0 for r in train) and "loss_logits" in train[0]
    if method == "magnitude":
        assert {k for k in train[0] if k.startswith("loss_")} == {"loss_hard"}
    assert (out / "train_dev.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "model" / "spdc_compression.json").read_text())["method"] == method
    AutoModelForSequenceClassification.from_pretrained(out / "model")  # a plain, loadable model


def test_structured_run_reports_kept_units_and_flops(compress_recipe, tmp_path: Path) -> None:
    recipe = compress_recipe("spd", "{granularity: structured, head_sparsity: 0.5, neuron_sparsity: 0.5, "
                                    "criterion: first_order, num_updates: 2}")
    summary = compress(load_recipe(recipe), RunOptions(output_dir=tmp_path / "s", show_progress=False))
    sparsity = summary.structure.sparsity
    assert sparsity["kept_heads"] == {0: 2, 1: 2}
    assert summary.structure.flops["reduction"] > 0.4


def test_teacher_stays_frozen(compress_recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    captured = {}
    original = pipeline_module.load_model

    def spy(*args, **kwargs):
        loaded = original(*args, **kwargs)
        captured["model"] = loaded.model
        captured["before"] = copy.deepcopy(loaded.model.state_dict())
        return loaded

    monkeypatch.setattr(pipeline_module, "load_model", spy)
    compress(load_recipe(compress_recipe()), RunOptions(output_dir=tmp_path / "r", show_progress=False))
    after = captured["model"].state_dict()
    assert all(torch.equal(captured["before"][key], after[key]) for key in after)
    assert not any(parameter.requires_grad for parameter in captured["model"].parameters())


def _plugin_setup(tiny_model_dir: Path, grafting: GraftingConfig | None, weights: LossWeights):
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    teacher.set_attn_implementation("eager")
    arch = family_of(teacher)
    student, layer_map = build_student(teacher, arch, StudentConfig(), None)
    teacher_layers, student_layers = encoder_layers(teacher, arch), encoder_layers(student, arch)
    recorder = OutputRecorder(arch, [teacher, student], [teacher_layers, student_layers])
    calls = {"teacher": 0, "student": 0}
    for name, layers in (("teacher", teacher_layers), ("student", student_layers)):
        for layer in layers:
            layer.register_forward_hook(lambda *_, n=name: calls.__setitem__(n, calls[n] + 1))
    stage = StageConfig(name="s", grafting=grafting, loss_weights=weights)
    grafted = Grafting(grafting, stage_steps=10, seed=0, stage_index=0, student_layers=student_layers,
                       teacher_layers=teacher_layers, layers_path=arch.layers)
    plugin = CompressionPlugin(
        method=METHODS["spd"], stage=stage, grafting=grafted, distillation=DistillationConfig(), teacher=teacher,
        layer_map=layer_map, recorder=recorder, head=HEADS["sequence-classification"], pruner=None, pruning_offset=0,
    )
    batch = {"input_ids": torch.randint(5, 20, (4, 6)), "attention_mask": torch.ones(4, 6, dtype=torch.long),
             "labels": torch.tensor([0, 1, 0, 1])}
    return plugin, student, calls, batch


HARD = LossWeights(hidden=0, attention=0, logits=0, hard_label=1)


def test_p_one_uses_only_student_layers(tiny_model_dir: Path) -> None:
    plugin, student, calls, batch = _plugin_setup(tiny_model_dir, None, HARD)
    plugin.loss(student, batch, 0, student)
    assert calls == {"teacher": 0, "student": 2}


def test_p_zero_grafts_every_teacher_layer_and_eval_uses_students(tiny_model_dir: Path) -> None:
    plugin, student, calls, batch = _plugin_setup(tiny_model_dir, GraftingConfig(schedule="constant", p0=0.0), HARD)
    _loss, parts = plugin.loss(student, batch, 0, student)
    assert calls == {"teacher": 2, "student": 0} and set(parts) == {"loss_hard"}
    assert encoder_layers(student, family_of(student))[0] is plugin.grafting.student_layers[0]  # restored after
    student.eval()
    with torch.no_grad():
        student(input_ids=batch["input_ids"])
    assert calls == {"teacher": 2, "student": 2}


def test_distillation_parts_start_at_zero_for_an_identical_student(tiny_model_dir: Path) -> None:
    plugin, student, _, batch = _plugin_setup(tiny_model_dir, None, LossWeights(hard_label=0.0))
    student.eval()  # no dropout: the untrained student is exactly the teacher
    student.train = lambda mode=True: student  # keep eval mode inside the loss  # type: ignore[method-assign]
    _, parts = plugin.loss(student, batch, 0, student)
    assert parts["loss_hidden"] == pytest.approx(0.0, abs=1e-10)
    assert parts["loss_attention"] == pytest.approx(0.0, abs=1e-10)


def test_compress_resume_matches_uninterrupted(compress_recipe, tmp_path: Path, monkeypatch) -> None:
    recipe = load_recipe(compress_recipe())
    compress(recipe, RunOptions(output_dir=tmp_path / "a", show_progress=False))
    # killed in step 5 of the second stage; its last checkpoint is at its step 3 (global 11)
    killed_at_step(monkeypatch, 13,
                   lambda: compress(recipe, RunOptions(output_dir=tmp_path / "b", show_progress=False)))
    header = json.loads(next((tmp_path / "b" / "checkpoints").glob("step-*/checkpoint.json")).read_text())
    assert (header["stage"], header["stage_step"], header["progress"]["step"]) == (1, 3, 11)
    resumed = compress(recipe, RunOptions(output_dir=tmp_path / "b", resume=True, show_progress=False))
    a, b = load_file(str(tmp_path / "a" / "model" / "model.safetensors")), load_file(
        str(tmp_path / "b" / "model" / "model.safetensors"))
    assert all(torch.equal(a[key], b[key]) for key in a)
    summary_a = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert resumed.student_dev == summary_a["student_dev"] and resumed.best_step == summary_a["best_step"]


def test_compress_recipe_rules(compress_recipe, tmp_path: Path) -> None:
    no_stages = tmp_path / "x.yaml"
    no_stages.write_text(compress_recipe().read_text().split("stages:")[0])
    result = CliRunner().invoke(cli, ["compress", str(no_stages)])
    assert result.exit_code == 2 and "stages: compress needs at least one stage" in result.stderr
    recipe = load_recipe(compress_recipe())
    unpruned = recipe.model_copy(update={"stages": [stage.model_copy(update={"prune": False})
                                                    for stage in recipe.stages]})
    with pytest.raises(RecipeError, match="no stage with `prune: true`"):
        compress_module.check_compress_recipe(unpruned)


RECIPES = Path(__file__).resolve().parent.parent / "recipes"


@pytest.mark.parametrize("path", sorted([*RECIPES.glob("*spd*.yaml"), *RECIPES.glob("demo-*.yaml")]),
                         ids=lambda p: p.name)
def test_shipped_spd_recipes_pass_compress_rules(path: Path) -> None:
    recipe = load_recipe(path)
    compress_module.check_compress_recipe(recipe)
    assert recipe.pruning is not None and recipe.stages[0].prune and recipe.stages[0].grafting is not None


def test_shallower_student_with_layer_map(compress_recipe, tmp_path: Path) -> None:
    recipe = load_recipe(compress_recipe("kd"), ["student.num_layers=1"])
    summary = compress(recipe, RunOptions(output_dir=tmp_path / "shallow", show_progress=False))
    assert summary.structure.layer_map == [1]  # the last teacher layer
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "shallow" / "model")
    assert model.config.num_hidden_layers == 1
    with pytest.raises(RecipeError, match="grafting swaps layer i"):
        compress(load_recipe(compress_recipe("spd"), ["student.num_layers=1"]),
                 RunOptions(output_dir=tmp_path / "bad", show_progress=False))
    assert not (tmp_path / "bad").exists()  # rejected before anything was written


def test_teacher_fine_tuned_first_when_asked(compress_recipe, tmp_path: Path) -> None:
    recipe = load_recipe(compress_recipe("kd"), ["teacher.finetuned=false", "teacher.finetune.epochs=1",
                                                "teacher.finetune.learning_rate=2e-3"])
    summary = compress(recipe, RunOptions(output_dir=tmp_path / "run", show_progress=False))
    teacher_summary = json.loads((tmp_path / "run-teacher" / "summary.json").read_text())
    assert summary.teacher == str(tmp_path / "run-teacher" / "model")
    assert summary.teacher_dev["accuracy"] == pytest.approx(teacher_summary["dev"]["accuracy"])
