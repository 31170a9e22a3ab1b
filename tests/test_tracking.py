"""Experiment tracking mirrors the run directory into TensorBoard and MLflow, read back through their own readers;
a backend that fails warns once and never loses the run."""

from __future__ import annotations

from pathlib import Path

import pytest

from spdc.recipe import load_recipe
from spdc.runs import tracking as tracking_module
from spdc.runs.setup import RunOptions
from spdc.training.finetune import finetune

pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")


def test_tensorboard_and_mlflow_receive_params_metrics_and_artifacts(tiny_recipe, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    recipe = load_recipe(tiny_recipe(epochs=1, eval_every_steps=8), ["tracking.backends=[tensorboard, mlflow]"])
    run = tmp_path / "runs" / "tracked"
    summary = finetune(recipe, RunOptions(output_dir=run, show_progress=False))
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert {"train/loss", "train/lr", "dev/accuracy"} <= set(events.Tags()["scalars"])
    assert [scalar.step for scalar in events.Scalars("dev/accuracy")] == [8, 16]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(recipe.name)
    assert experiment is not None
    (mlflow_run,) = client.search_runs([experiment.experiment_id])
    assert mlflow_run.data.tags["spdc.run_dir"] == str(run.resolve())
    assert mlflow_run.data.params["seed"] == "7" and mlflow_run.data.params["teacher.finetune.epochs"] == "1"
    accuracy = client.get_metric_history(mlflow_run.info.run_id, "dev/accuracy")
    assert [point.step for point in accuracy] == [8, 16]
    assert accuracy[-1].value == pytest.approx(summary.dev["accuracy"]) or summary.best_step == 8
    assert {"summary.json", "recipe.yaml"} <= {artifact.path for artifact in
                                              client.list_artifacts(mlflow_run.info.run_id)}
    assert mlflow_run.info.status == "FINISHED"
    again = finetune(recipe, RunOptions(output_dir=run, overwrite=True, show_progress=False))  # the events are spdc's
    assert again.best_step == summary.best_step


def test_a_failing_backend_warns_once_and_the_run_finishes(tiny_recipe, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    class Broken:
        calls = 0

        def __init__(self, *args: object) -> None:
            pass

        def log_params(self, params: dict[str, str]) -> None:
            pass

        def log_metrics(self, metrics: dict[str, float], step: int) -> None:
            Broken.calls += 1
            raise ConnectionError("tracking server went away")

        def log_artifact(self, path: Path) -> None:
            raise AssertionError("a dropped backend is not called again")

        def close(self) -> None:
            raise AssertionError("a dropped backend is not called again")

    monkeypatch.setitem(tracking_module.TRACKERS, "mlflow", Broken)
    recipe = load_recipe(tiny_recipe(epochs=1), ["tracking.backends=[mlflow]"])
    summary = finetune(recipe, RunOptions(output_dir=tmp_path / "run", show_progress=False))
    assert (tmp_path / "run" / "summary.json").is_file() and summary.best_step is not None
    assert Broken.calls == 1
    assert capsys.readouterr().err.count("tracking backend mlflow failed") == 1


def test_tracking_settings_do_not_block_a_resume(tiny_recipe) -> None:
    plain = load_recipe(tiny_recipe())
    tracked = load_recipe(tiny_recipe(), ["tracking.backends=[tensorboard]"])
    assert plain.fingerprint() == tracked.fingerprint()
