"""`spdc finetune`: fine-tune the recipe's teacher on its task and leave a complete run directory."""

from __future__ import annotations

import time

from spdc.recipe.schema import Recipe
from spdc.runs.directory import run_lock
from spdc.runs.distributed import barrier
from spdc.runs.records import FinetuneSummary
from spdc.runs.setup import RunOptions, prepare_run
from spdc.training.loop import Trainer


def finetune(recipe: Recipe, options: RunOptions) -> FinetuneSummary:
    """Run fine-tuning end to end and return the summary (also written to summary.json)."""
    with run_lock(options.output_dir or recipe.resolved_output_dir()):
        return _finetune(recipe, options)


def _finetune(recipe: Recipe, options: RunOptions) -> FinetuneSummary:
    started = time.perf_counter()
    prepared = prepare_run(recipe, options)
    trainer = Trainer(model=prepared.model, inputs=prepared.training_inputs(), config=recipe.teacher.finetune,
                      seed=recipe.seed, fingerprint=recipe.teacher_fingerprint(), show_progress=options.show_progress)
    if options.resume:
        trainer.resume()
    result = trainer.fit()
    summary = FinetuneSummary(
        run_dir=str(prepared.run.path), task=prepared.spec.name, model=recipe.teacher.model,
        model_source=prepared.model_source, main_metric=prepared.spec.main_metric, best_step=result.best_step,
        dev_split=prepared.dev_name, dev=result.best_eval, steps=result.step,
        train_seconds=round(result.train_seconds, 1), wall_seconds=round(time.perf_counter() - started, 1),
        data=prepared.data_summary(), environment=prepared.environment, model_dir=str(prepared.run.model_dir),
        selected_on="validation" if prepared.validation_data is not None else "dev",
        validation=result.best_validation, baseline=prepared.dev_baseline(),
    )
    prepared.run.write_summary(summary)
    barrier()  # under torchrun, no rank goes on before rank 0 has written the run
    return summary
