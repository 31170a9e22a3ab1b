"""`spdc finetune`: fine-tune the recipe's teacher on its task and leave a complete run directory."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spdc.data.batching import DynamicPaddingCollator, encode
from spdc.data.sources import load_split, task_spec
from spdc.models import load_classifier
from spdc.recipe import Recipe
from spdc.run_dir import RunDirectory
from spdc.runtime import configure_threads, resolve_device, seed_everything
from spdc.training.loop import Trainer


@dataclass
class FinetuneOptions:
    output_dir: Path | None = None
    resume: bool = False
    overwrite: bool = False
    show_progress: bool = True


def finetune(recipe: Recipe, options: FinetuneOptions) -> dict[str, Any]:
    """Run fine-tuning end to end and return the summary (also written to summary.json)."""
    started = time.perf_counter()
    seed_everything(recipe.seed)
    threads = configure_threads(recipe.threads)
    device = resolve_device(recipe.device)
    # Data and model first: a missing file or model fails before anything is written.
    spec = task_spec(recipe.task)
    train_split = load_split(recipe.task, "train")
    dev_name = spec.dev_splits[0]
    dev_split = load_split(recipe.task, dev_name)
    loaded = load_classifier(recipe.teacher.model, spec, trust_remote_code=recipe.teacher.trust_remote_code)
    run = RunDirectory.prepare(
        options.output_dir or recipe.resolved_output_dir(), recipe, resume=options.resume, overwrite=options.overwrite
    )
    environment = run.write_environment(device.type, threads)
    max_len = recipe.task.max_seq_length
    trainer = Trainer(
        model=loaded.model,
        tokenizer=loaded.tokenizer,
        task=spec,
        train_data=encode(train_split.examples, loaded.tokenizer, max_len),
        dev_data=encode(dev_split.examples, loaded.tokenizer, max_len),
        collate=DynamicPaddingCollator(loaded.tokenizer, regression=spec.is_regression),
        config=recipe.teacher.finetune,
        run=run,
        device=device,
        seed=recipe.seed,
        fingerprint=recipe.fingerprint(),
        show_progress=options.show_progress,
    )
    if options.resume:
        trainer.resume()
    result = trainer.fit()
    assert result.best_step is not None
    summary = {
        "run_dir": str(run.path),
        "task": spec.name,
        "model": recipe.teacher.model,
        "model_source": loaded.source,
        "main_metric": spec.main_metric,
        "best_step": result.best_step,
        "dev_split": dev_name,
        "dev": result.best_eval,
        "steps": result.step,
        "train_seconds": round(result.train_seconds, 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "data": {
            "train": {"source": train_split.source, "rows": len(train_split.examples), "dropped": train_split.dropped},
            dev_name: {"source": dev_split.source, "rows": len(dev_split.examples), "dropped": dev_split.dropped},
        },
        "environment": environment,
        "model_dir": str(run.model_dir),
    }
    run.write_summary(summary)
    return summary
