"""The training loop on a tiny random BERT: it learns, it is deterministic, and it resumes to the same result."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from spdc.core.errors import CheckpointError, SpdcError
from spdc.recipe import load_recipe
from spdc.runs.setup import RunOptions
from spdc.training.finetune import finetune
from spdc.training.loop import Trainer
from spdc.training.lr_schedule import linear_warmup_decay


def run(recipe_path: Path, overrides: list[str] | None = None, **options: object) -> dict:
    return finetune(load_recipe(recipe_path, overrides), RunOptions(show_progress=False, **options))


def weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "model.safetensors"))


def test_finetune_lowers_the_loss_and_writes_a_complete_run(tiny_recipe) -> None:
    summary = run(tiny_recipe(epochs=4))
    run_dir = Path(summary.run_dir)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train_losses = [record["loss"] for record in records if record["kind"] == "train"]
    evals = [record for record in records if record["kind"] == "eval"]
    assert train_losses[-1] < train_losses[0]
    assert evals[-1]["dev"]["loss"] < evals[0]["dev"]["loss"]
    assert [record["step"] for record in evals] == [16, 32, 48, 64]  # one per epoch of 256 rows / 16
    assert evals[-1]["dev"]["accuracy"] > 0.8  # the synthetic signal is learnable
    assert {"dev", "train", "step", "epoch", "time_s"} <= set(evals[0])
    assert summary.dev["accuracy"] == max(record["dev"]["accuracy"] for record in evals)
    for name in ("recipe.yaml", "environment.json", "summary.json", "model/config.json", "model/model.safetensors",
                 "model/tokenizer_config.json", "checkpoints/latest"):
        assert (run_dir / name).is_file(), name
    environment = json.loads((run_dir / "environment.json").read_text())
    assert environment["device"] == "cpu" and environment["torch"].startswith("2.")
    assert load_recipe(run_dir / "recipe.yaml") == load_recipe(tiny_recipe(epochs=4))


def test_same_seed_same_metrics(tiny_recipe, tmp_path: Path) -> None:
    first = run(tiny_recipe(), output_dir=tmp_path / "a")
    second = run(tiny_recipe(), output_dir=tmp_path / "b")
    assert first.dev == second.dev
    other = run(tiny_recipe(), ["seed=8"], output_dir=tmp_path / "c")
    assert not torch.equal(weights(tmp_path / "a" / "model")["classifier.weight"],
                           weights(tmp_path / "c" / "model")["classifier.weight"])
    assert other.run_dir == str(tmp_path / "c")


def test_resume_after_a_kill_matches_an_uninterrupted_run(tiny_recipe, tmp_path: Path, monkeypatch) -> None:
    # 2 epochs of 16 steps, dropout on, evaluation and checkpoint every 6 steps (and at epoch ends).
    recipe = tiny_recipe(epochs=2, eval_every_steps=6)
    reference = run(recipe, output_dir=tmp_path / "reference")

    original_step = Trainer._train_step

    def dying_step(self: Trainer, step: int) -> float:
        if step == 21:  # killed during step 22; the last checkpoint is at step 18
            raise KeyboardInterrupt
        return original_step(self, step)

    monkeypatch.setattr(Trainer, "_train_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        run(recipe, output_dir=tmp_path / "killed")
    assert (tmp_path / "killed" / "checkpoints" / "latest").read_text().strip() == "step-00000018"
    monkeypatch.setattr(Trainer, "_train_step", original_step)

    resumed = run(recipe, output_dir=tmp_path / "killed", resume=True)
    assert resumed.dev == reference.dev
    assert resumed.best_step == reference.best_step
    final_a, final_b = weights(tmp_path / "reference" / "model"), weights(tmp_path / "killed" / "model")
    assert all(torch.equal(final_a[key], final_b[key]) for key in final_a)
    log_a = (tmp_path / "reference" / "metrics.jsonl").read_text().splitlines()
    log_b = (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    strip = lambda lines: [{k: v for k, v in json.loads(line).items() if k != "time_s"} for line in lines]  # noqa: E731
    assert strip(log_a) == strip(log_b)  # no duplicated or missing records after the resume


def test_resume_refuses_a_different_recipe(tiny_recipe, tmp_path: Path) -> None:
    run(tiny_recipe(epochs=1), output_dir=tmp_path / "r")
    with pytest.raises(CheckpointError, match="written by a different recipe"):
        run(tiny_recipe(epochs=1, learning_rate=1e-3), output_dir=tmp_path / "r", resume=True)


def test_corrupt_checkpoint_is_detected(tiny_recipe, tmp_path: Path) -> None:
    run(tiny_recipe(epochs=1), output_dir=tmp_path / "r")
    checkpoints = tmp_path / "r" / "checkpoints"
    model_file = checkpoints / checkpoints.joinpath("latest").read_text().strip() / "model.safetensors"
    data = bytearray(model_file.read_bytes())
    data[-10] ^= 0xFF
    model_file.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"model\.safetensors is missing or corrupt"):
        run(tiny_recipe(epochs=1), output_dir=tmp_path / "r", resume=True)


def test_resume_without_checkpoint_and_existing_run_dir(tiny_recipe, tmp_path: Path) -> None:
    with pytest.raises(SpdcError, match="holds no run"):
        run(tiny_recipe(), output_dir=tmp_path / "empty", resume=True)
    run(tiny_recipe(epochs=1), output_dir=tmp_path / "r")
    before = (tmp_path / "r" / "summary.json").read_text()
    with pytest.raises(SpdcError, match="already exists; use --resume"):
        run(tiny_recipe(epochs=1), output_dir=tmp_path / "r")
    assert (tmp_path / "r" / "summary.json").read_text() == before  # nothing was clobbered
    run(tiny_recipe(epochs=1), output_dir=tmp_path / "r", overwrite=True)


def test_max_steps_and_periodic_evaluation(tiny_recipe) -> None:
    summary = run(tiny_recipe(max_steps=5, eval_every_steps=2))
    records = [json.loads(line) for line in (Path(summary.run_dir) / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "eval"] == [2, 4, 5]
    assert [r["step"] for r in records if r["kind"] == "train"] == [2, 4, 5]  # logging_steps=2, plus the last
    assert summary.steps == 5


def test_linear_warmup_decay_values() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = linear_warmup_decay(optimizer, total_steps=10, warmup_ratio=0.2)
    rates = []
    for _ in range(10):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([0.5, 1.0, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125])
