"""The accuracy-speed frontier of MiniLM-L6 students on MRPC and SST-2: teachers, tuning, the structured grid.

Usage: python benchmarks/frontier_minilm.py [--phase teachers|tune|grid|all] [--workers 2] [--dry-run]

Every job is one `spdc finetune` / `spdc compress` run in runs/frontier/<job>/, launched the way a user would,
logged to runs/frontier/logs/<job>.log. The script is resumable: a finished run (summary.json) is skipped, a run
with a checkpoint is continued with --resume, a run killed before its first checkpoint is started again. Jobs
of a phase run `--workers` at a time with one torch thread each (on 2 cores two 1-thread runs do more work per
hour than one 2-thread run). Phases depend on each other:

- teachers: candidate teacher recipes per task (learning rate, epochs), each selected on 10% of its training
  rows held out; the best validation score becomes runs/frontier/teachers/minilm-<task>.
- precision: the same MRPC teacher recipe (3 epochs, lr 1e-4) in fp32 and in bf16 autocast, two seeds each: does
  bf16 reach the fp32 dev metric within the seed spread, and how much faster is it?
- tune: on SST-2 at 85% of encoder FLOPs removed, each method at learning rates 1e-4, 3e-4, 6.4e-4 and, for
  SPD, the grafting ramp (linear vs constant-then-linear); chosen on the validation split, never on dev.
- grid: both tasks, structured local scope at 70% and 85% FLOPs for spd / kd / magnitude with two seeds, SPD at
  50% and with global scope, and unstructured 90% with the paper's lr 6.4e-4 on MRPC; each method at its tuned
  learning rate (tuned on SST-2, used on MRPC as well).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "runs" / "frontier"
LOGS = RUNS / "logs"
METHODS = ("spd", "kd", "magnitude")
TUNING_RATES = ("1.0e-4", "3.0e-4", "6.4e-4")
SEEDS = (42, 43)


@dataclass(frozen=True)
class Job:
    name: str
    command: str  # finetune or compress
    recipe: str
    overrides: tuple[str, ...] = field(default_factory=tuple)

    @property
    def out(self) -> Path:
        return RUNS / self.name

    def finished(self) -> bool:
        return (self.out / "summary.json").is_file()

    def argv(self) -> list[str]:
        args = [sys.executable, "-m", "spdc", self.command, str(ROOT / "recipes" / self.recipe), "--out", str(self.out),
                "--set", "threads=1", *(arg for override in self.overrides for arg in ("--set", override)), "--json"]
        if (self.out / "checkpoints" / "latest").is_file():
            args.append("--resume")
        elif self.out.exists():
            args.append("--overwrite")  # started and killed before its first checkpoint
        return args


def summary(job: Job) -> dict:
    return json.loads((job.out / "summary.json").read_text(encoding="utf-8"))


def validation_score(job: Job) -> float:
    """The selection score of a finished run: its best checkpoint's main metric on the held-out rows."""
    document = summary(job)
    return float(document["validation"][document["main_metric"]])


def run_job(job: Job) -> tuple[Job, int]:
    if job.finished():
        return job, 0
    LOGS.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.setdefault("SPDC_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    with (LOGS / f"{job.name}.log").open("a", encoding="utf-8") as log, (LOGS / f"{job.name}.json").open("w") as out:
        log.write(f"$ {' '.join(job.argv())}\n")
        log.flush()
        code = subprocess.run(job.argv(), cwd=ROOT, stdout=out, stderr=log, env=env, check=False).returncode
    print(f"{job.name}: exit {code}", flush=True)
    return job, code


def run_all(jobs: Iterable[Job], workers: int, dry_run: bool) -> None:
    pending = [job for job in jobs if not job.finished()]
    for job in pending:
        print(("would run " if dry_run else "queued ") + job.name, flush=True)
    if dry_run or not pending:
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(run_job, pending))
    failed = [job.name for job, code in results if code]
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)} (see {LOGS})")


# --- teachers --------------------------------------------------------------------------------------------------

TEACHER_COMMON = ("task.validation_fraction=0.1", "teacher.finetune.train_eval_samples=256")
TEACHER_CANDIDATES: dict[str, dict[str, tuple[str, ...]]] = {
    "mrpc": {"lr5e-5-e6": ("teacher.finetune.learning_rate=5.0e-5", "teacher.finetune.epochs=6"),
             "lr1e-4-e5": ("teacher.finetune.learning_rate=1.0e-4", "teacher.finetune.epochs=5"),
             "lr2e-4-e5": ("teacher.finetune.learning_rate=2.0e-4", "teacher.finetune.epochs=5")},
    # one candidate: two epochs of SST-2's 60,614 training rows take 3,788 steps (about 75 minutes on one core)
    "sst2": {"lr5e-5-e2": ("teacher.finetune.learning_rate=5.0e-5", "teacher.finetune.epochs=2",
                           "teacher.finetune.max_steps=null", "teacher.finetune.eval_every_steps=600")},
}


def teacher_jobs() -> list[Job]:
    return [Job(f"teacher-{task}-{label}", "finetune", f"minilm-{task}-teacher.yaml", (*TEACHER_COMMON, *extra))
            for task, candidates in TEACHER_CANDIDATES.items() for label, extra in candidates.items()]


def precision_jobs() -> list[Job]:
    return [Job(f"precision-mrpc-{precision}-seed{seed}", "finetune", "minilm-mrpc-teacher.yaml",
                (*TEACHER_COMMON, "teacher.finetune.learning_rate=1.0e-4", "teacher.finetune.epochs=3",
                 f"precision={precision}", f"seed={seed}"))
            for seed in SEEDS for precision in ("fp32", "bf16")]


def chosen_teacher(task: str) -> Path:
    """The teacher candidate with the best validation score (linked as runs/frontier/teachers/minilm-<task>)."""
    candidates = [job for job in teacher_jobs() if job.name.startswith(f"teacher-{task}-")]
    if not all(job.finished() for job in candidates):
        raise SystemExit(f"teachers for {task} are not finished: run --phase teachers first")
    best = max(candidates, key=validation_score)
    link = RUNS / "teachers" / f"minilm-{task}"
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() and link.resolve() != best.out.resolve():
        link.unlink()
    if not link.exists():
        link.symlink_to(Path("..") / best.name)
    return best.out / "model"


# --- students --------------------------------------------------------------------------------------------------

def student(task: str, name: str, *, method: str, sparsity: float | None, seed: int, lr: str,
            extra: tuple[str, ...] = ()) -> Job:
    overrides = [f"method={method}", f"seed={seed}", f"teacher.model={chosen_teacher(task)}",
                 f"stages.0.learning_rate={lr}", f"stages.1.learning_rate={lr}"]
    if sparsity is not None:
        overrides += [f"pruning.head_sparsity={sparsity}", f"pruning.neuron_sparsity={sparsity}"]
    return Job(f"{task}-{name}", "compress", f"minilm-{task}-frontier.yaml", (*overrides, *extra))


RAMP = ("stages.0.grafting.schedule=constant_then_linear", "stages.0.grafting.hold_fraction=0.5")


def tuning_jobs() -> list[Job]:
    jobs = [student("sst2", f"s85-{method}-lr{lr}-seed42", method=method, sparsity=0.85, seed=42, lr=lr)
            for method in METHODS for lr in TUNING_RATES]
    return jobs


def tuned(method: str) -> tuple[str, tuple[str, ...]]:
    """The learning rate (and, for SPD, the grafting ramp) with the best validation score on SST-2 at 85%."""
    runs = [job for job in tuning_jobs() if f"-{method}-" in job.name]
    if not all(job.finished() for job in runs):
        raise SystemExit("tuning runs are not finished: run --phase tune first")
    best = max(runs, key=validation_score)
    lr = best.name.split("-lr")[1].split("-seed")[0]
    if method != "spd":
        return lr, ()
    ramp = ramp_job(lr)
    if ramp.finished() and validation_score(ramp) > validation_score(best):
        return lr, RAMP
    return lr, ()


def ramp_job(lr: str) -> Job:
    return student("sst2", f"s85-spd-lr{lr}-ramp-seed42", method="spd", sparsity=0.85, seed=42, lr=lr, extra=RAMP)


def grid_jobs() -> list[Job]:
    """In priority order, so a stopped sweep leaves the most important comparisons done: MRPC at 85% for the three
    methods, the MRPC students the deployment benchmark uses (50%, global scope, unstructured 90%), the 70%
    comparisons, then the second seed, then the remaining frontier points."""
    rates = {method: tuned(method) for method in METHODS}
    spd_lr, spd_extra = rates["spd"]

    def compared(task: str, sparsity: float, seed: int) -> list[Job]:
        if task == "sst2" and sparsity == 0.85 and seed == 42:
            return []  # the tuning runs are these
        return [student(task, f"s{round(sparsity * 100)}-{method}-seed{seed}", method=method, sparsity=sparsity,
                        seed=seed, lr=rates[method][0], extra=rates[method][1]) for method in METHODS]

    def extra_points(task: str, seed: int) -> list[Job]:
        return [student(task, f"s50-spd-seed{seed}", method="spd", sparsity=0.5, seed=seed, lr=spd_lr,
                        extra=spd_extra),
                student(task, f"g85-spd-seed{seed}", method="spd", sparsity=0.85, seed=seed, lr=spd_lr,
                        extra=(*spd_extra, "pruning.scope=global"))]

    unstructured = student("mrpc", "u90-spd-lr6.4e-4-seed42", method="spd", sparsity=None, seed=42, lr="6.4e-4",
                           extra=("pruning.granularity=unstructured", "pruning.criterion=magnitude",
                                  "pruning.final_sparsity=0.9", "export.fold=false"))
    return [
        *compared("mrpc", 0.85, 42), *extra_points("mrpc", 42), unstructured, *compared("mrpc", 0.7, 42),
        *compared("sst2", 0.7, 42), *compared("mrpc", 0.85, 43), *compared("mrpc", 0.7, 43),
        *compared("sst2", 0.85, 43), *compared("sst2", 0.7, 43), *extra_points("sst2", 42),
        *extra_points("mrpc", 43), *extra_points("sst2", 43),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase", choices=["teachers", "precision", "tune", "grid", "all"], default="all")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    if args.phase in ("teachers", "all"):
        run_all(teacher_jobs(), args.workers, args.dry_run)
    if args.phase in ("precision", "all"):
        run_all(precision_jobs(), args.workers, args.dry_run)
    if args.phase in ("tune", "all"):
        run_all(tuning_jobs(), args.workers, args.dry_run)
        if not args.dry_run:
            run_all([ramp_job(tuned("spd")[0])], args.workers, args.dry_run)
    if args.phase in ("grid", "all"):
        run_all(grid_jobs(), args.workers, args.dry_run)


if __name__ == "__main__":
    main()
