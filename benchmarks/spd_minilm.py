"""The SPD comparison on real MRPC/RTE dev data: spd, kd and magnitude at several unstructured sparsities with an
identical budget per method, plus structured SPD, from the MiniLM-L6 teachers of benchmarks/teacher_baselines.py.
Writes docs/results/spd-minilm.md from the run summaries (runs that already have a summary are not redone).

Usage: python benchmarks/spd_minilm.py --tasks mrpc rte --sparsities 50 70 90 --seeds 42 43 [--methods spd kd]
       [--no-structured] [--runs-dir runs/spd] [--report-only]
--report-only writes the table from the runs that have finished and lists the ones that have not.
A row averages every finished seed found in --runs-dir; the doc's hand-written part, from `## Reading` on, is kept.
Each run is `spdc compress recipes/minilm-<task>-spd<S>.yaml --set method=<m> --set seed=<seed> --out ...`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

from spdc.core.atomic import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("spd", "kd", "magnitude")
READING = "## Reading"


def run_prefix(recipe_name: str, method: str) -> str:
    """Run directories are `<prefix><seed>`; the prefix names one table row."""
    return f"{recipe_name}-{method}-s"


def compress_command(recipe_name: str, out: Path, method: str, seed: int) -> list[str]:
    return ["spdc", "compress", f"recipes/{recipe_name}.yaml", "--out", str(out), f"--set=method={method}",
            f"--set=seed={seed}"]


def run(command: list[str], out: Path) -> dict:
    """Runs (or resumes) one compression and returns its summary; a failed run stops the whole comparison."""
    if (out / "checkpoints" / "latest").is_file():
        command = [*command, "--resume"]
    result = subprocess.run([*command, "--json"], cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"{shlex.join(command)} failed ({result.returncode}):\n{result.stdout}")
    return json.loads(result.stdout)


def finished_seeds(runs_dir: Path, recipe_name: str, method: str) -> list[int]:
    """Every seed of this row that has a summary, so rows average all finished seeds, not only those asked for."""
    prefix = run_prefix(recipe_name, method)
    return sorted(int(d.name[len(prefix):]) for d in runs_dir.glob(f"{prefix}*")
                  if d.name[len(prefix):].isdigit() and (d / "summary.json").is_file())


def write_keeping_reading(doc: Path, generated: str) -> None:
    """Writes the generated table, keeping the hand-written analysis (from `READING` on) of the existing doc."""
    kept = ""
    if doc.is_file() and READING in (old := doc.read_text(encoding="utf-8")):
        kept = old[old.index(READING):]
    atomic_write_text(doc, generated + ("\n" + kept if kept else ""))


def final_gap(summary: dict) -> tuple[float, float]:
    """Train (eval mode) and dev main metric at the best evaluation step."""
    main = summary["main_metric"]
    records = [json.loads(line) for line in (Path(summary["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    best = next(r for r in records if r["kind"] == "eval" and r["step"] == summary["best_step"])
    return best["train"][main], best["dev"][main]


def schedule(recipe_path: Path) -> str:
    """The stages of a recipe in words, for the table's header."""
    from spdc.recipe import load_recipe

    recipe = load_recipe(ROOT / recipe_path)
    parts = []
    for stage in recipe.stages:
        words = [stage.name + ":", f"{stage.max_steps} steps," if stage.max_steps else f"{stage.epochs} epoch(s),",
                 f"lr {stage.learning_rate:g}, batch {stage.batch_size}"]
        if stage.prune and recipe.pruning:
            words.append(f", cubic pruning schedule ({recipe.pruning.num_updates} mask updates)")
        if stage.grafting:
            words.append(f", grafting (spd only) {stage.grafting.schedule} from p0 = {stage.grafting.p0}")
        parts.append(" ".join(words).replace(" ,", ","))
    return "; ".join(parts) + f"; max length {recipe.task.max_seq_length}."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["mrpc", "rte"])
    parser.add_argument("--sparsities", nargs="+", type=int, default=[50, 70, 90])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--structured", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/spd"))
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "results" / "spd-minilm.md")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--teachers-dir", type=Path, default=Path("runs/teachers"),
                        help="Teacher run directories (minilm-<task>/), shown as the dense reference row.")
    args = parser.parse_args()
    rows, commands, missing = [], [], []
    for task in args.tasks:
        teacher_summary = args.teachers_dir / f"minilm-{task}" / "summary.json"
        if teacher_summary.is_file():
            summary = json.loads(teacher_summary.read_text())
            summary.update(student_dev=summary["dev"], retained=1.0, structure={})
            rows.append((task, "0% (teacher)", "fine-tune", [(summary, *final_gap(summary))]))
        configs = [(f"minilm-{task}-spd{s}", method, f"{s}%") for s in args.sparsities for method in args.methods]
        if args.structured and "spd" in args.methods:
            configs.append((f"minilm-{task}-spd-structured", "spd", "structured"))
        for recipe_name, method, label in configs:
            for seed in args.seeds:
                out = args.runs_dir / f"{run_prefix(recipe_name, method)}{seed}"
                if (out / "summary.json").is_file():
                    continue
                command = compress_command(recipe_name, out, method, seed)
                if args.report_only:
                    missing.append(shlex.join(command))
                    continue
                summary = run(command, out)
                print(f"{task} {label} {method} seed {seed}: {summary['student_dev']}", flush=True)
            results = []
            for seed in finished_seeds(args.runs_dir, recipe_name, method):
                out = args.runs_dir / f"{run_prefix(recipe_name, method)}{seed}"
                summary = json.loads((out / "summary.json").read_text())
                commands.append(shlex.join(compress_command(recipe_name, out, method, seed)))
                results.append((summary, *final_gap(summary)))
            if results:
                rows.append((task, label, method, results))
    env = next(r[3][0][0]["environment"] for r in rows if "environment" in r[3][0][0])
    seed_counts = sorted({len(results) for *_, results in rows})
    lines = [
        "# SPD vs KD vs magnitude pruning on MiniLM-L6 (real GLUE dev)", "",
        (f"Date: {dt.datetime.now(dt.UTC).date().isoformat()}. Machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores, device {env['device']}. Versions: torch {env['torch']}, "
        f"transformers {env['transformers']}, spdc {env['spdc']}. "
        f"Seeds per row: {', '.join(map(str, seed_counts))} (column n); "
        "metrics are means over a row's seeds, and `dev per seed` lists each."),
        f"Schedule (identical for every method): {schedule(Path(commands[0].split()[2]))}",
        "", ("| task | sparsity | method | n | dev (main) | dev per seed | dev (all) | train (main, eval mode) "
        "| train - dev | retained | FLOPs cut | wall min |"),
        "|---|---|---|---:|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for task, label, method, results in rows:
        dev = statistics.mean(r[2] for r in results)
        per_seed = ", ".join(f"{r[2] * 100:.2f}" for r in results)
        train = statistics.mean(r[1] for r in results)
        retained = statistics.mean(r[0]["retained"] for r in results)
        flops = results[0][0]["structure"].get("flops", {}).get("reduction", 0.0)
        wall = statistics.mean(r[0]["wall_seconds"] for r in results) / 60
        every = ", ".join(f"{name} {statistics.mean(r[0]['student_dev'][name] for r in results) * 100:.1f}"
                          for name in results[0][0]["student_dev"] if name != "loss")
        lines.append(f"| {task} | {label} | {method} | {len(results)} | {dev * 100:.2f} | {per_seed} | {every} "
                     f"| {train * 100:.2f} | {(train - dev) * 100:.2f} "
                     f"| {retained * 100:.1f}% | {flops * 100:.0f}% | {wall:.1f} |")
    lines += ["", "Commands:", "", "```", *commands, "```", ""]
    if missing:
        lines += [f"**Not run yet ({len(missing)}):**", "", "```", *missing, "```", ""]
    write_keeping_reading(args.doc, "\n".join(lines))
    print(f"wrote {args.doc}")


if __name__ == "__main__":
    main()
