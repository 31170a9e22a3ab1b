"""The accuracy-speed frontier of MiniLM-L6 students on MRPC and SST-2: teachers, the structured grid, tuning.

Usage: python benchmarks/frontier_minilm.py [--only PREFIX ...] [--workers 2] [--dry-run]

Every job is one `spdc finetune` / `spdc compress` run in runs/frontier/<job>/, launched the way a user would,
logged to runs/frontier/logs/<job>.log. The script is resumable: a finished run (summary.json) is skipped, a run
with a checkpoint is continued with --resume, a run killed before its first checkpoint is started again, and a
run another process is still writing is waited for. Jobs run `--workers` at a time with one torch thread each
(on 2 cores two 1-thread runs do more work per hour than one 2-thread run), in priority order (see `queue`), a
student as soon as its task's teachers are done. The jobs:

- teachers: candidate teacher recipes per task (learning rate, epochs), each selected on 10% of its training
  rows held out; the best validation score becomes runs/frontier/teachers/minilm-<task>.
- grid: both tasks, structured local scope at 85% and 70% of encoder FLOPs removed for spd / kd / magnitude with
  two seeds, SPD at 50% and with global scope, and unstructured 90% with the paper's lr 6.4e-4 on MRPC. One
  learning rate (3e-4) and schedule for every method: 2 CPU cores do not fit a tuning sweep ahead of the grid.
  Beside them, on both tasks, a dense 2-layer student distilled with kd (67% of encoder FLOPs removed by depth).
- more rows: SST-2 SPD at 85% on 24,000 training rows for 2 epochs (1,350 steps) instead of 8,000 rows for 4
  (900 steps): do the students fall short of the teacher for lack of distinct training rows?
- precision: the MRPC teacher recipe (2 epochs, lr 1e-4) in fp32 and in bf16 autocast, two seeds each: does bf16
  reach the fp32 dev metric within the seed spread, and how much faster is it?
- tuning: on SST-2 at 85%, each method at learning rates 1e-4 and 6.4e-4 beside the grid's 3e-4, and
  SPD's constant-then-linear grafting ramp; compared on the validation split, never on dev.
- sentences (last): SST-2 SPD at 85% and 70% trained on 8,000 sentence-like rows (at least 12 words) instead of
  the first 8,000, which are mostly short phrases; then at 85% on 16,000 of them for twice the steps; kd and
  magnitude at 85% on the 8,000 (is the gain the data's or SPD's?); SPD at 80%, local and global. Two seeds each.
- all rows (last): SST-2 SPD, then kd, at 80% with global scope on all of SST-2's training rows for the
  teacher's 2 epochs, two seeds each.
- one-shot (right after the teachers): kd on a student cut once before training (`pruning.schedule: oneshot`,
  first-order scores over 32 batches) and folded at once, at 85% and 50%, local and global scope, both tasks,
  two seeds: the fast path a user may pick instead of SPD.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "runs" / "frontier"
LOGS = RUNS / "logs"
METHODS = ("spd", "kd", "magnitude")
TUNING_RATES = ("1.0e-4", "3.0e-4", "6.4e-4")
SEEDS = (42, 43)
DATA_DIR = Path(os.environ.get("SPDC_DATA_DIR", ROOT.parent / "shared" / "data"))  # what every job reads
GRID_RATE = "3.0e-4"  # one learning rate for every method in the grid (tuning, last in the queue, checks it)


@dataclass(frozen=True)
class Job:
    name: str
    command: str  # finetune or compress
    recipe: str
    overrides: tuple[str, ...] = field(default_factory=tuple)
    needs: tuple[str, ...] = ()  # tasks whose teacher must be chosen before this job starts

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


def running_elsewhere(job: Job) -> bool:
    """Whether another process (an earlier sweep's orphan) is writing this job's run directory."""
    target = job.out.resolve()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            args = cmdline.read_bytes().decode(errors="replace").split("\0")
            if any(flag == "--out" and Path(value).resolve() == target for flag, value in itertools.pairwise(args)):
                return True
    return False


def run_job(job: Job) -> int:
    while running_elsewhere(job):
        time.sleep(30)
    if job.finished():
        return 0
    LOGS.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.setdefault("SPDC_DATA_DIR", str(DATA_DIR))
    with (LOGS / f"{job.name}.log").open("a", encoding="utf-8") as log, (LOGS / f"{job.name}.json").open("w") as out:
        log.write(f"$ {' '.join(job.argv())}\n")
        log.flush()
        code = subprocess.run(job.argv(), cwd=ROOT, stdout=out, stderr=log, env=env, check=False).returncode
    print(f"{job.name}: exit {code}", flush=True)
    return code


def run_queue(jobs: list[Job], workers: int, dry_run: bool) -> None:
    """Run jobs `workers` at a time, each worker taking the first pending job (in priority order) whose teachers
    are chosen; a job whose teacher candidates failed is dropped."""
    pending = [job for job in jobs if not job.finished()]
    for job in pending:
        print(("would run " if dry_run else "queued ") + job.name, flush=True)
    if dry_run or not pending:
        return
    lock = threading.Lock()
    failed: list[str] = []

    def take() -> Job | None:
        with lock:
            for job in list(pending):
                blocked = [name for name in failed if any(name.startswith(f"teacher-{task}-") for task in job.needs)]
                if blocked:
                    pending.remove(job)
                    failed.append(job.name)
                    print(f"{job.name}: skipped, its teacher failed ({', '.join(blocked)})", flush=True)
                elif all(teachers_finished(task) for task in job.needs):
                    for task in job.needs:
                        chosen_teacher(task)
                    pending.remove(job)
                    return job
            return None

    def work() -> None:
        while True:
            job = take()
            if job is None:
                with lock:
                    if not pending:
                        return
                time.sleep(30)  # every ready job is taken: wait for a teacher to finish
                continue
            if run_job(job):
                with lock:
                    failed.append(job.name)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
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
                (*TEACHER_COMMON, "teacher.finetune.learning_rate=1.0e-4", "teacher.finetune.epochs=2",
                 f"precision={precision}", f"seed={seed}"))
            for seed in SEEDS for precision in ("fp32", "bf16")]


def teachers_finished(task: str) -> bool:
    return all(job.finished() for job in teacher_jobs() if job.name.startswith(f"teacher-{task}-"))


def chosen_teacher(task: str) -> Path:
    """Link the teacher candidate with the best validation score as runs/frontier/teachers/minilm-<task>."""
    candidates = [job for job in teacher_jobs() if job.name.startswith(f"teacher-{task}-")]
    best = max(candidates, key=validation_score)
    link = RUNS / "teachers" / f"minilm-{task}"
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() and link.resolve() != best.out.resolve():
        link.unlink()
    if not link.exists():
        link.symlink_to(Path("..") / best.name)
    return link / "model"


# --- students --------------------------------------------------------------------------------------------------

def both_stages(setting: str) -> tuple[str, str]:
    """One `key=value` for the prune-graft stage and the fine-tune stage alike."""
    return f"stages.0.{setting}", f"stages.1.{setting}"


def student(task: str, name: str, *, method: str, sparsity: float | None, seed: int, lr: str = GRID_RATE,
            extra: tuple[str, ...] = ()) -> Job:
    """A compression run of the task's frontier recipe, distilled from the task's chosen teacher (linked when the
    teacher candidates are finished, before the job starts)."""
    overrides = [f"method={method}", f"seed={seed}", f"teacher.model={RUNS / 'teachers' / f'minilm-{task}' / 'model'}",
                 *both_stages(f"learning_rate={lr}")]
    if sparsity is not None:
        overrides += [f"pruning.head_sparsity={sparsity}", f"pruning.neuron_sparsity={sparsity}"]
    return Job(f"{task}-{name}", "compress", f"minilm-{task}-frontier.yaml", (*overrides, *extra), needs=(task,))


def compared(task: str, sparsity: float, seed: int) -> list[Job]:
    """The three methods at one structure, one seed, the same learning rate and schedule."""
    return [student(task, f"s{round(sparsity * 100)}-{method}-seed{seed}", method=method, sparsity=sparsity,
                    seed=seed) for method in METHODS]


GLOBAL_SCOPE = ("pruning.scope=global",)  # uneven heads and neurons per layer; the job's name says g, not s


def extra_points(task: str, seed: int) -> list[Job]:
    """SPD at 50% of FLOPs removed, and at 85% with global scope (uneven heads and neurons per layer)."""
    return [student(task, f"s50-spd-seed{seed}", method="spd", sparsity=0.5, seed=seed),
            student(task, f"g85-spd-seed{seed}", method="spd", sparsity=0.85, seed=seed,
                    extra=GLOBAL_SCOPE)]


def shallow(task: str, seed: int) -> Job:
    """The cheap dense baseline: a 2-layer student (copies of teacher layers 3 and 6, 67% of encoder FLOPs removed)
    with kd on the same 10-epoch schedule, nothing pruned."""
    return student(task, f"l2-kd-seed{seed}", method="kd", sparsity=None, seed=seed,
                   extra=("student.num_layers=2", "stages.0.prune=false", "pruning=null"))


UNSTRUCTURED = ("pruning.granularity=unstructured", "pruning.criterion=magnitude", "pruning.final_sparsity=0.9",
                "export.fold=false")
RAMP = ("stages.0.grafting.schedule=constant_then_linear", "stages.0.grafting.hold_fraction=0.5")


def more_rows() -> Job:
    """SST-2 SPD at 85% on three times the training rows for half the epochs (1.5x the steps): the 8,000-row
    students reach 92-93% on held-out training rows but 84-85% on dev, so the test is whether distinct rows, not
    steps, are what they lack."""
    return student("sst2", "s85-spd-rows24k-seed42", method="spd", sparsity=0.85, seed=42,
                   extra=("task.max_train_samples=24000", *both_stages("epochs=1"),
                          *both_stages("eval_every_steps=150")))


SENTENCE_WORDS = 12  # SST-2 training rows are mostly phrases (median 7 words); its dev rows are sentences (19)
RECIPE_ROWS = 8000  # the SST-2 frontier recipe's task.max_train_samples


def sentences_size(rows: int) -> str:
    """How a sentence set's row count shows in its folder and job names: nothing for the recipe's own count."""
    return "" if rows == RECIPE_ROWS else f"{rows // 1000}k"


def sentences_folder(rows: int) -> Path:
    size = sentences_size(rows)
    return RUNS / "data" / f"sst2-sentences{SENTENCE_WORDS}{f'-{size}' if size else ''}"


def write_sentence_rows(rows: int) -> None:
    """A GLUE-layout folder whose train.tsv holds SST-2's first `rows` training rows of at least SENTENCE_WORDS
    words (median 18, near dev's 19; 20,358 rows qualify) and whose dev.tsv is SST-2's own. Chosen by input
    length alone, never by a dev label; written once (staged, then renamed)."""
    folder = sentences_folder(rows)
    if folder.is_dir():
        return
    source = DATA_DIR / "glue" / "SST-2"
    header, *lines = (source / "train.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    kept = [line for line in lines if len(line.split("\t")[0].split()) >= SENTENCE_WORDS][:rows]
    staging = folder.with_name(f".{folder.name}.partial")
    staging.mkdir(parents=True, exist_ok=True)
    (staging / "train.tsv").write_text(header + "".join(kept), encoding="utf-8")
    (staging / "dev.tsv").write_bytes((source / "dev.tsv").read_bytes())
    staging.rename(folder)


def sentence_like(sparsity: float, seed: int, rows: int = RECIPE_ROWS, method: str = "spd",
                  global_scope: bool = False) -> Job:
    """An SST-2 student (SPD unless `method` says otherwise) on sentence-like training rows instead of the first
    8,000 (mostly short phrases): 8,000 of them for the grid's 900 steps, or 16,000 for 1,800 (the same 2 + 2
    epochs). Do the students fall short of the teacher on dev because they rarely see a sentence? (The teacher
    trained on all 60,614 rows, about 13,000 of them of 15 words or more.) With `global_scope`, layers keep
    uneven counts (g instead of s in the name, as on the grid)."""
    size = sentences_size(rows)
    extra: tuple[str, ...] = (f"task.data_dir={sentences_folder(rows)}",)
    if size:
        extra += (f"task.max_train_samples={rows}", *both_stages("eval_every_steps=150"))
    if global_scope:
        extra += GLOBAL_SCOPE
    structure = f"{'g' if global_scope else 's'}{round(sparsity * 100)}"
    return student("sst2", f"{structure}-{method}-sentences{size}-seed{seed}", method=method, sparsity=sparsity,
                   seed=seed, extra=extra)


def all_rows(seed: int, method: str = "spd") -> Job:
    """SST-2 at 80% with global scope (the sentence rows' fastest point within reach) on every training row the
    teacher saw (67,349, 10% held out), 2 epochs (1 + 1, 3,790 steps, the teacher's own schedule): the 8,000-row
    students plateau near 87 at 70%, 80% and 85% alike, so is the ceiling the teacher's data they never see?
    SPD first, then kd on the same rows (is a gain the data's or SPD's?)."""
    return student("sst2", f"g80-{method}-full-seed{seed}", method=method, sparsity=0.8, seed=seed,
                   extra=("task.max_train_samples=null", *both_stages("epochs=1"),
                          *both_stages("eval_every_steps=300"), *GLOBAL_SCOPE))


ONESHOT = ("pruning.schedule=oneshot",)


def oneshot_points(task: str) -> list[Job]:
    """The fast path beside SPD: one-shot first-order cut (32 batches) at 85% and 50%, local and global scope,
    folded before training, then kd on the grid's schedule (the same epochs, learning rate and losses); both seeds
    of a point one after the other, so a stopped sweep leaves whole points."""
    return [student(task, f"{scope}{round(sparsity * 100)}-kd-oneshot-seed{seed}", method="kd", sparsity=sparsity,
                    seed=seed, extra=(*ONESHOT, *(GLOBAL_SCOPE if scope == "g" else ())))
            for sparsity in (0.85, 0.5) for scope in ("s", "g") for seed in SEEDS]  # s: local scope, g: global


def spd_at_85(task: str, seed: int) -> Job:
    return student(task, f"s85-spd-seed{seed}", method="spd", sparsity=0.85, seed=seed)


def gradual_counterparts(task: str, seed: int) -> list[Job]:
    """The cubic-schedule runs the one-shot points are read against, on the same machine (their minutes and speed
    compare only there): SPD at 85%, 50% and global 85%, and kd at 85%."""
    return [spd_at_85(task, seed), *extra_points(task, seed),
            student(task, f"s85-kd-seed{seed}", method="kd", sparsity=0.85, seed=seed)]


def warm_start(task: str, seed: int) -> Job:
    """SPD at 85% whose first mask update also sees first-order scores of 32 batches taken before training."""
    return student(task, f"s85-spd-warm-seed{seed}", method="spd", sparsity=0.85, seed=seed,
                   extra=("pruning.warm_start=true",))


def warm_start_pair(task: str, seed: int) -> list[Job]:
    """SPD at 85% without and with the warm start, one seed: the pair the warm-start reading compares."""
    return [spd_at_85(task, seed), warm_start(task, seed)]


def tuning_jobs() -> list[Job]:
    """SST-2 at 85%, seed 42: the other learning rates of each method (the grid's runs are the GRID_RATE ones)
    and SPD's constant-then-linear grafting ramp; compared on the validation split."""
    return [*(student("sst2", f"s85-{method}-lr{lr}-seed42", method=method, sparsity=0.85, seed=42, lr=lr)
              for method in METHODS for lr in TUNING_RATES if lr != GRID_RATE),
            student("sst2", "s85-spd-ramp-seed42", method="spd", sparsity=0.85, seed=42, extra=RAMP)]


def queue() -> list[Job]:
    """Every job in priority order, so a stopped sweep leaves the most important comparisons done: the teachers;
    the one-shot + kd points on both tasks (the newest question, and the cheapest runs); SPD at 85% without and
    with the first-order warm start on MRPC, both seeds; then the other gradual runs the one-shot points are read
    against (MRPC, then SST-2, seed 42 first); MRPC at 85% for the
    three methods; the MRPC students the deployment benchmark uses (50%, global scope, unstructured 90% at the
    paper's lr); bf16 vs fp32 (four short runs); SST-2 at 85%; the second seed of both; SST-2 on more rows;
    70% on both tasks and the 2-layer baseline; the remaining frontier points; tuning; SST-2 on sentence-like rows
    (SPD at 85%, 70% and 80%, kd and magnitude at 85%, 16,000 rows at 85%, global scope at 80%); SST-2 on all its
    training rows (SPD, then kd, at global 80%)."""
    unstructured = student("mrpc", "u90-spd-lr6.4e-4-seed42", method="spd", sparsity=None, seed=42, lr="6.4e-4",
                           extra=UNSTRUCTURED)
    jobs = [
        *teacher_jobs(), *oneshot_points("mrpc"), *oneshot_points("sst2"),
        *warm_start_pair("mrpc", 42), *warm_start_pair("mrpc", 43), *gradual_counterparts("mrpc", 42),
        *gradual_counterparts("sst2", 42), *gradual_counterparts("mrpc", 43),
        *gradual_counterparts("sst2", 43), warm_start("sst2", 42), warm_start("sst2", 43),
        *compared("mrpc", 0.85, 42), *extra_points("mrpc", 42), unstructured,
        *precision_jobs(), *compared("sst2", 0.85, 42), *compared("mrpc", 0.85, 43), *compared("sst2", 0.85, 43),
        more_rows(), *compared("mrpc", 0.7, 42), *compared("mrpc", 0.7, 43), shallow("mrpc", 42), shallow("mrpc", 43),
        *compared("sst2", 0.7, 42),
        *compared("sst2", 0.7, 43), *extra_points("sst2", 42), *extra_points("mrpc", 43), *extra_points("sst2", 43),
        *tuning_jobs(), sentence_like(0.85, 42), sentence_like(0.7, 42), sentence_like(0.85, 43),
        shallow("sst2", 42), shallow("sst2", 43),
        sentence_like(0.85, 42, rows=16000), sentence_like(0.85, 43, rows=16000),
        sentence_like(0.85, 42, method="kd"), sentence_like(0.85, 43, method="kd"),
        sentence_like(0.7, 43), sentence_like(0.8, 42), sentence_like(0.8, 43),
        sentence_like(0.8, 42, global_scope=True), sentence_like(0.8, 43, global_scope=True),
        sentence_like(0.85, 42, method="magnitude"), sentence_like(0.85, 43, method="magnitude"),
        all_rows(42), all_rows(43), all_rows(42, method="kd"), all_rows(43, method="kd"),
    ]
    return list({job.name: job for job in jobs}.values())  # each job once, at its first place


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", metavar="PREFIX",
                        help="Run only the jobs whose names start with this prefix (e.g. mrpc-s85); repeatable.")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    jobs = [job for job in queue() if args.only is None or job.name.startswith(tuple(args.only))]
    for rows in (RECIPE_ROWS, 16000):
        if not args.dry_run and any(f"task.data_dir={sentences_folder(rows)}" in job.overrides for job in jobs):
            write_sentence_rows(rows)
    run_queue(jobs, args.workers, args.dry_run)


if __name__ == "__main__":
    main()
