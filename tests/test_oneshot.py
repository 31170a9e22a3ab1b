"""One-shot structured pruning (`pruning.schedule: oneshot`): the cut lands on its target or is refused, the
folded student starts as the masked teacher, trains, resumes bit-exactly, and exports with parity."""

import copy
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from spdc.cli.main import cli
from spdc.compression.compress import compress
from spdc.compression.oneshot import CUT_FILE, Scoring, attainable_sparsity, check_cut_target, cut_student
from spdc.compression.pruning.pruner import Pruner
from spdc.core.errors import RecipeError
from spdc.data.synthetic import synthetic_inputs
from spdc.heads import HEADS
from spdc.models.families import encoder_layers, family_of, prunable_linears
from spdc.models.loading import load_model
from spdc.models.shape import EncoderShape
from spdc.recipe import PruningConfig, load_recipe
from spdc.runs.setup import RunOptions
from spdc.training.loop import Trainer

from .conftest import killed_at_step
from .families_support import build_tiny_family

ONESHOT = ("{{granularity: structured, schedule: oneshot, criterion: {criterion}, scope: {scope}, "
           "head_sparsity: {heads}, neuron_sparsity: {neurons}, score_batches: 2}}")
SHAPE = EncoderShape(num_layers=2, hidden=32, num_heads=4, head_dim=8, intermediate=64)


def oneshot(criterion: str = "first_order", scope: str = "local", heads: float = 0.5, neurons: float = 0.5) -> str:
    return ONESHOT.format(criterion=criterion, scope=scope, heads=heads, neurons=neurons)


def test_the_reachable_sparsity_follows_the_scope() -> None:
    local = PruningConfig(granularity="structured", schedule="oneshot", head_sparsity=0.3, neuron_sparsity=0.3)
    assert attainable_sparsity(local, SHAPE) == {"heads": 0.25, "neurons": 19 / 64}  # round(1.2) of 4, round(19.2)
    wide = local.model_copy(update={"scope": "global"})
    assert attainable_sparsity(wide, SHAPE) == {"heads": 0.25, "neurons": 38 / 128}  # round(2.4) of 8


def test_an_unreachable_cut_is_refused_with_the_miss_and_the_nearest_targets() -> None:
    config = PruningConfig(granularity="structured", schedule="oneshot", head_sparsity=0.3, neuron_sparsity=0.5)
    with pytest.raises(RecipeError) as error:
        check_cut_target(config, SHAPE)
    message = str(error.value)
    assert "pruning.head_sparsity" in message and "5.0 points off" in message and "0.2500 and 0.5000" in message
    assert "neuron_sparsity" not in message  # 32 of 64 neurons is exact
    check_cut_target(config.model_copy(update={"tolerance": 0.06}), SHAPE)  # a wider tolerance accepts it
    check_cut_target(config.model_copy(update={"head_sparsity": 0.5}), SHAPE)


@pytest.mark.parametrize("scope", ["local", "global"])
def test_the_cut_hits_its_target_and_the_folded_student_is_the_masked_teacher(tiny_model_dir: Path,
                                                                             scope: str) -> None:
    loaded = load_model(str(tiny_model_dir), None)
    teacher = loaded.model.eval()
    family = family_of(teacher)
    student = copy.deepcopy(teacher)
    config = PruningConfig(granularity="structured", schedule="oneshot", scope=scope, criterion="first_order",
                           head_sparsity=0.5, neuron_sparsity=0.75)
    pruner = Pruner(config, prunable_linears(encoder_layers(student, family), family), EncoderShape.of(student), 1)
    feeds = {name: torch.from_numpy(array) for name, array in synthetic_inputs(
        ["input_ids", "attention_mask", "token_type_ids"], teacher.config.vocab_size, batch=8, seq_len=12).items()}
    rows = [({key: value[i].tolist() for key, value in feeds.items()}, i % 2) for i in range(8)]

    def collate(items: list) -> dict[str, torch.Tensor]:
        batch = {key: torch.tensor([features[key] for features, _ in items]) for key in items[0][0]}
        return {**batch, "labels": torch.tensor([label for _, label in items])}

    scoring = Scoring(train_data=rows, collate=collate, batch_size=4, batches=2, seed=0,
                      head=HEADS["sequence-classification"],
                      device=torch.device("cpu"), precision="fp32")
    masked = copy.deepcopy(student)
    cut = cut_student(student, pruner, scoring)
    heads, neurons = cut.kept_units()
    assert sum(heads) == 4 and sum(neurons) == 32  # 50% of 8 heads, 75% of 128 neurons, exactly
    if scope == "local":
        assert heads == [2, 2] and neurons == [16, 16]
    assert cut.sparsity["kept_heads"] == dict(enumerate(heads))
    # the same masks applied to an unfolded copy give the folded student's logits: folding changed nothing
    masked_pruner = Pruner(config, prunable_linears(encoder_layers(masked, family), family), EncoderShape.of(masked), 1)
    masked_pruner.masks = pruner.masks
    masked_pruner.apply()
    student.eval()
    with torch.no_grad():
        torch.testing.assert_close(student(**feeds).logits, masked.eval()(**feeds).logits, atol=1e-5, rtol=0)
    assert sum(p.numel() for p in student.parameters()) < sum(p.numel() for p in teacher.parameters())


@pytest.mark.parametrize("method", ["kd", "spd", "magnitude"])
def test_a_oneshot_run_trains_the_folded_student_and_exports_with_parity(compress_recipe, tmp_path: Path,
                                                                        method: str) -> None:
    out = tmp_path / "run"
    recipe = compress_recipe(method, oneshot(scope="global"), extra="export: {fold: true}\n")
    result = CliRunner().invoke(cli, ["compress", str(recipe), "--out", str(out), "--set",
                                      "task.validation_fraction=0.25", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert 0 <= summary["structure"]["cut"]["validation_before_training"]["accuracy"] <= 1
    assert summary["steps"] == 12 and summary["best_step"] is not None
    assert summary["structure"]["flops"]["reduction"] > 0.4 and summary["structure"]["cut"]["seconds"] >= 0
    assert summary["fold"]["folded"] and sum(summary["fold"]["structure"]["kept_heads"]) == 4
    cut = json.loads((out / CUT_FILE).read_text())
    assert sum(len(heads) for heads in cut["structure"]["heads"]) == 4
    weights = load_file(str(out / "model" / "model.safetensors"))
    assert weights["bert.encoder.layer.0.intermediate.dense.weight"].shape[0] == cut["structure"]["neurons"][0]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [record for record in records if record["kind"] == "train"]
    if method == "spd":
        assert train[0]["p"] < 1.0 and "loss_attention" in train[0]
    exported = CliRunner().invoke(cli, ["export", str(out), "--out", str(tmp_path / "onnx"), "--json"])
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout)["manifest"]["status"] == "passed"


def test_oneshot_logits_after_zero_steps_equal_the_masked_teachers(compress_recipe, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """With no training step the folded student is exactly the teacher with the cut's masks."""
    recipe = load_recipe(compress_recipe("kd", oneshot(criterion="magnitude")), overrides=[
        "stages.0.max_steps=1", "stages.1.max_steps=1", "stages.0.learning_rate=1.0e-12",
        "stages.1.learning_rate=1.0e-12"])
    seen = {}
    original = Trainer.fit

    def capture(self: Trainer):
        if "student" not in seen:
            seen["student"] = copy.deepcopy(self.model).eval()
        return original(self)

    monkeypatch.setattr(Trainer, "fit", capture)
    compress(recipe, RunOptions(output_dir=tmp_path / "z", show_progress=False))
    teacher = load_model(recipe.teacher.model, None).model.eval()
    family = family_of(teacher)
    pruner = Pruner(recipe.pruning, prunable_linears(encoder_layers(teacher, family), family),
                    EncoderShape.of(teacher), 1)
    pruner.prune_to_final()  # magnitude scores: no batches needed
    feeds = {name: torch.from_numpy(array) for name, array in synthetic_inputs(
        ["input_ids", "attention_mask", "token_type_ids"], teacher.config.vocab_size, batch=4, seq_len=10).items()}
    with torch.no_grad():
        torch.testing.assert_close(seen["student"](**feeds).logits, teacher(**feeds).logits, atol=1e-5, rtol=0)


def test_a_oneshot_run_resumes_bit_exactly(compress_recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = load_recipe(compress_recipe("kd", oneshot()))
    compress(recipe, RunOptions(output_dir=tmp_path / "a", show_progress=False))
    killed_at_step(monkeypatch, 13,
                   lambda: compress(recipe, RunOptions(output_dir=tmp_path / "b", show_progress=False)))
    resumed = compress(recipe, RunOptions(output_dir=tmp_path / "b", resume=True, show_progress=False))
    a = load_file(str(tmp_path / "a" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
    assert resumed.student_dev == json.loads((tmp_path / "a" / "summary.json").read_text())["student_dev"]


def test_a_oneshot_resume_without_its_cut_is_refused(compress_recipe, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = load_recipe(compress_recipe("kd", oneshot()))
    killed_at_step(monkeypatch, 6, lambda: compress(recipe, RunOptions(output_dir=tmp_path / "b", show_progress=False)))
    (tmp_path / "b" / CUT_FILE).unlink()
    result = CliRunner().invoke(cli, ["compress", str(compress_recipe("kd", oneshot())), "--out",
                                      str(tmp_path / "b"), "--resume", "--json"])
    assert result.exit_code != 0 and CUT_FILE in result.output


def test_oneshot_recipe_rules(compress_recipe, tmp_path: Path) -> None:
    unstructured = "{schedule: oneshot, final_sparsity: 0.5}"
    with pytest.raises(RecipeError, match=r"pruning\.schedule: oneshot .* needs pruning\.granularity structured"):
        compress(load_recipe(compress_recipe("kd", unstructured)), RunOptions(output_dir=tmp_path / "u"))
    late = load_recipe(compress_recipe("kd", oneshot()), overrides=["stages.0.prune=false", "stages.1.prune=true"])
    with pytest.raises(RecipeError, match=r"stages\.1\.prune"):
        compress(late, RunOptions(output_dir=tmp_path / "l"))
    impossible = load_recipe(compress_recipe("kd", oneshot(heads=0.3)))
    with pytest.raises(RecipeError, match=r"pruning\.head_sparsity"):
        compress(impossible, RunOptions(output_dir=tmp_path / "i", show_progress=False))


@pytest.mark.parametrize("family", ["roberta", "deberta-v2"])
def test_oneshot_folds_other_families(family: str, tmp_path: Path, sst2_dir: Path) -> None:
    model_dir = build_tiny_family(family, tmp_path / family)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"name: o\nseed: 1\ndevice: cpu\ntask: {{name: sst2, data_dir: {sst2_dir}, max_seq_length: 16}}\n"
        f"teacher: {{model: {model_dir}}}\nmethod: kd\npruning: {oneshot(scope='global')}\n"
        "export: {fold: true}\n"
        "stages:\n  - {name: s, prune: true, max_steps: 3, batch_size: 16, eval_every_steps: 3}\n", encoding="utf-8")
    summary = compress(load_recipe(recipe), RunOptions(output_dir=tmp_path / "run", show_progress=False))
    assert summary.fold is not None and summary.fold.folded and summary.fold.max_logit_difference <= 1e-5


def test_a_warm_start_hands_first_order_scores_to_the_first_cubic_update(compress_recipe, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pruning = ("{granularity: structured, criterion: first_order, head_sparsity: 0.5, neuron_sparsity: 0.5, "
               "num_updates: 2, score_batches: 2, warm_start: WARM}")
    seen: dict[bool, dict] = {}
    original = Trainer.fit

    def capture(self: Trainer):
        criterion = self.plugin.pruner.criterion  # type: ignore[attr-defined]
        seen.setdefault(warm, {name: score.clone() for name, score in criterion.accumulated.items()})
        return original(self)

    monkeypatch.setattr(Trainer, "fit", capture)
    for warm in (False, True):
        recipe = load_recipe(compress_recipe("spd", pruning.replace("WARM", str(warm).lower())))
        compress(recipe, RunOptions(output_dir=tmp_path / str(warm), show_progress=False))
    assert seen[False] == {} and len(seen[True]) == 12  # six matrices in each of the two layers
    assert all(bool((score >= 0).all()) and float(score.sum()) > 0 for score in seen[True].values())
    with pytest.raises(RecipeError, match=r"pruning\.warm_start: .* criterion first_order"):
        compress(load_recipe(compress_recipe("spd", pruning.replace("WARM", "true").replace("first_order",
                                                                                       "magnitude"))),
                 RunOptions(output_dir=tmp_path / "m"))
