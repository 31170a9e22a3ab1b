"""Experiment tracking: the run directory stays the record, and each backend named in the recipe's `tracking`
mirrors it (params = the resolved recipe, metrics per logging step and evaluation, the summary, recipe and report
as artifacts). Backends are a registry; a backend that fails (not installed, a server gone) warns once and is
dropped, and the run goes on: tracking never loses a run. Under torchrun only rank 0 tracks.

    tensorboard  event files in <run>/tensorboard (torch's SummaryWriter; `pip install 'spdc[tracking]'`)
    mlflow       MLflow's client; default store: sqlite beside the run (<runs folder>/mlflow.db), artifacts in
                 <runs folder>/mlartifacts
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from spdc.core.console import stderr
from spdc.core.record import update_record
from spdc.recipe.schema import Recipe, TrackingConfig

RUN_TAG = "spdc.run_dir"


class Tracker(Protocol):
    def log_params(self, params: dict[str, str]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...
    def log_artifact(self, path: Path) -> None: ...
    def close(self) -> None: ...


def _flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """A nested recipe as `a.b.c` -> value strings (the shape trackers store params in)."""
    if isinstance(data, dict):
        flat: dict[str, str] = {}
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): str(data)}


class TensorBoardTracker:
    def __init__(self, run_dir: Path, config: TrackingConfig, name: str) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.folder = run_dir / "tensorboard"
        self.writer = SummaryWriter(str(self.folder))

    def log_params(self, params: dict[str, str]) -> None:
        self.writer.add_text("recipe", "\n".join(f"    {key}: {value}" for key, value in params.items()), 0)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, step)
        self._flush()

    def _flush(self) -> None:
        """SummaryWriter writes its event files itself: record them in the run's marker as they grow, so the run
        stays wholly spdc's (and `--overwrite` can replace it)."""
        self.writer.flush()
        update_record(self.folder, written=True)

    def log_artifact(self, path: Path) -> None:
        """TensorBoard has no artifacts; the files are in the run directory beside the event files."""

    def close(self) -> None:
        self.writer.close()
        update_record(self.folder, written=True)


class MlflowTracker:
    def __init__(self, run_dir: Path, config: TrackingConfig, name: str) -> None:
        from mlflow.tracking import MlflowClient

        beside = run_dir.resolve().parent
        uri = config.mlflow_tracking_uri or f"sqlite:///{beside / 'mlflow.db'}"
        self.client = MlflowClient(tracking_uri=uri)
        experiment_name = config.mlflow_experiment or name
        experiment = self.client.get_experiment_by_name(experiment_name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(
            experiment_name, artifact_location=None if config.mlflow_tracking_uri else str(beside / "mlartifacts"))
        self.run_id = self.client.create_run(experiment_id, tags={RUN_TAG: str(run_dir.resolve())},
                                             run_name=run_dir.name).info.run_id

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(key, value[:6000]) for key, value in params.items()]
        for start in range(0, len(items), 100):  # MLflow's batch limit
            self.client.log_batch(self.run_id, params=items[start:start + 100])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for name, value in metrics.items():
            self.client.log_metric(self.run_id, name, value, step=step)

    def log_artifact(self, path: Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


def _log_artifact(tracker: Tracker, *, path: Path) -> None:
    tracker.log_artifact(path)


TRACKERS: dict[str, Callable[[Path, TrackingConfig, str], Tracker]] = {
    "tensorboard": TensorBoardTracker,
    "mlflow": MlflowTracker,
}


class Tracking:
    """The recipe's trackers for one run; every call is guarded so a failing backend only warns, once."""

    def __init__(self, trackers: dict[str, Tracker]) -> None:
        self.trackers = trackers

    @classmethod
    def start(cls, run_dir: Path, recipe: Recipe, *, enabled: bool) -> Tracking:
        tracking = cls({})
        if not enabled:
            return tracking
        for backend in recipe.tracking.backends:
            tracking._guard(backend, functools.partial(tracking._open, backend, run_dir, recipe))
        tracking.each(lambda tracker: tracker.log_params(_flatten(recipe.model_dump(mode="json"))))
        return tracking

    def _open(self, backend: str, run_dir: Path, recipe: Recipe) -> None:
        self.trackers[backend] = TRACKERS[backend](run_dir, recipe.tracking, recipe.name)

    def _guard(self, backend: str, call: Callable[[], None]) -> None:
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - a tracker's failure of any kind must never end the run
            self.trackers.pop(backend, None)
            stderr.print(f"[bold yellow]warning:[/] tracking backend {backend} failed and is off for this run "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}); the run "
                         "directory keeps everything", highlight=False, soft_wrap=True)

    def each(self, call: Callable[[Tracker], None]) -> None:
        for backend, tracker in list(self.trackers.items()):
            self._guard(backend, functools.partial(call, tracker))

    def metrics(self, metrics: dict[str, float], step: int) -> None:
        finite = {name: value for name, value in metrics.items() if math.isfinite(value)}
        if finite:
            self.each(lambda tracker: tracker.log_metrics(finite, step))

    def finish(self, artifacts: list[Path]) -> None:
        for path in artifacts:
            if path.is_file():
                self.each(functools.partial(_log_artifact, path=path))
        self.each(lambda tracker: tracker.close())
        self.trackers.clear()
