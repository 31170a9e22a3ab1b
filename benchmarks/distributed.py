"""Data-parallel training on CPU: seconds per optimizer step of one process against two torchrun (gloo)
processes, and whether the two-process weights equal the one-process weights of the same global batch.

Usage: python benchmarks/distributed.py [--steps 12] [--pause-pid PID ...]

Three fine-tuning runs of the real MiniLM-L6 on real MRPC rows (global batch 32, length 128, fp32, 12 steps,
one train record per step, no evaluation until the end):
  1. one process with 2 threads (what a user runs on this machine),
  2. `torchrun --standalone --nproc_per_node=2`, 1 thread each (gloo),
  3. one process with 1 thread and 2 accumulation steps: the same micro-batches as 2., run in sequence.
and an SPD compression stage (grafting, 50% pruning) as 1. and 2. Seconds per step are taken from the train
records' clocks between step 2 and the last step (the first steps warm up). The final weights of 2. and 3. are
compared tensor by tensor. `--pause-pid` stops a background sweep (SIGSTOP/SIGCONT) while timing.
Writes docs/results/distributed.md and .json; runs go to runs/distributed/ (replaced each time).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import onnxruntime  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from harness import paused  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from spdc.core.atomic import atomic_write_text  # noqa: E402
from spdc.core.cpu import cpu_info  # noqa: E402

OUT = ROOT / "runs" / "distributed"
DOC = ROOT / "docs" / "results" / "distributed.md"
TEACHER = ROOT / "runs" / "frontier" / "teacher-mrpc-lr1e-4-e5" / "model"  # a fine-tuned MRPC teacher of the sweep


def launch(name: str, command: str, recipe: str, sets: list[str], processes: int) -> dict:
    """Run one spdc command (through torchrun when `processes` > 1); returns its seconds per step and summary."""
    run_dir = OUT / name
    spdc_args = [command, recipe, "--out", str(run_dir), "--overwrite", "--json"]
    for item in sets:
        spdc_args += ["--set", item]
    if processes > 1:
        argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                "-m", "spdc", *spdc_args]
    else:
        argv = [sys.executable, "-m", "spdc", *spdc_args]
    environment = {**os.environ, "OMP_NUM_THREADS": "1" if processes > 1 else "2"}
    result = subprocess.run(argv, cwd=ROOT, env=environment, capture_output=True, text=True, check=False)
    if result.returncode:
        raise SystemExit(f"{name} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    clock = [(record["step"], record["time_s"]) for record in records if record["kind"] == "train"]
    (first_step, first_time), (last_step, last_time) = clock[1], clock[-1]
    command_line = "python " + " ".join(argv[1:]).replace(str(ROOT) + "/", "")
    return {"name": name, "processes": processes, "command": command_line,
            "seconds_per_step": round((last_time - first_time) / (last_step - first_step), 3),
            "steps_timed": last_step - first_step, "run_dir": str(run_dir)}


def max_weight_difference(first: Path, second: Path) -> float:
    left, right = load_file(str(first / "model.safetensors")), load_file(str(second / "model.safetensors"))
    assert left.keys() == right.keys()
    return max(float((left[key].float() - right[key].float()).abs().max()) for key in left)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--pause-pid", type=int, nargs="*", default=[])
    args = parser.parse_args()
    if not TEACHER.is_dir():
        raise SystemExit(f"needs a fine-tuned MiniLM MRPC teacher at {TEACHER}: python benchmarks/frontier_minilm.py "
                         "--only teacher-mrpc")
    common = ["precision=fp32", f"teacher.finetune.max_steps={args.steps}", "teacher.finetune.logging_steps=1",
              "teacher.finetune.train_eval_samples=0", "teacher.finetune.eval_batch_size=128"]
    finetune_recipe = "recipes/minilm-mrpc-teacher.yaml"
    spd_recipe = "recipes/minilm-mrpc-spd50.yaml"
    spd_sets = ["precision=fp32", f"stages.0.max_steps={args.steps}", "stages.0.logging_steps=1",
                "stages.0.train_eval_samples=0", "stages.1.max_steps=1", "stages.1.train_eval_samples=0",
                "export.onnx=false", f"teacher.model={TEACHER}"]
    with paused(args.pause_pid):
        rows = [
            launch("finetune-1proc-2threads", "finetune", finetune_recipe, [*common, "threads=2"], 1),
            launch("finetune-2proc-1thread", "finetune", finetune_recipe, [*common, "threads=1"], 2),
            launch("finetune-1proc-1thread-accum2", "finetune", finetune_recipe,
                   [*common, "threads=1", "teacher.finetune.gradient_accumulation_steps=2"], 1),
            launch("spd-1proc-2threads", "compress", spd_recipe, [*spd_sets, "threads=2"], 1),
            launch("spd-2proc-1thread", "compress", spd_recipe, [*spd_sets, "threads=1"], 2),
        ]
    difference = max_weight_difference(OUT / "finetune-2proc-1thread" / "model",
                                       OUT / "finetune-1proc-1thread-accum2" / "model")
    cpu = cpu_info()
    machine = {"cpu_model": cpu.model, "logical_cpus": cpu.logical_cores, "isa": cpu.feature_line()}
    document = {"date": dt.datetime.now(dt.UTC).date().isoformat(), "machine": machine,
                "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                             "onnxruntime": onnxruntime.__version__},
                "runs": rows, "max_weight_difference_2proc_vs_accum2": difference,
                "gpu": "not measured: no GPU was lent to this task"}
    atomic_write_text(DOC.with_suffix(".json"), json.dumps(document, indent=2) + "\n")
    by_name = {row["name"]: row for row in rows}
    lines = [
        "# Data-parallel training on CPU (torchrun, gloo)", "",
        (f"Date: {document['date']}. Machine: {machine['cpu_model']}, {machine['logical_cpus']} logical CPUs, "
        f"ISA: {machine['isa']}. Versions: torch {torch.__version__}, transformers "
        f"{transformers.__version__}."),
        f"Command: `python benchmarks/distributed.py --steps {args.steps}` (a background sweep paused while timing).",
        "",
        (f"Real MiniLM-L6 on real MRPC rows, global batch 32, length 128, fp32, {args.steps} optimizer steps; seconds "
        "per step from the train records' clocks after the first step."), "",
        "| run | processes | s / step |", "|---|---:|---:|",
    ]
    lines += [f"| `{row['name']}` | {row['processes']} | {row['seconds_per_step']:.3f} |" for row in rows]
    finetune_ratio = (by_name["finetune-1proc-2threads"]["seconds_per_step"]
                      / by_name["finetune-2proc-1thread"]["seconds_per_step"])
    spd_ratio = by_name["spd-1proc-2threads"]["seconds_per_step"] / by_name["spd-2proc-1thread"]["seconds_per_step"]
    lines += [
        "", "## Reading", "",
        (f"- Same global batch, same weights: the 2-process run and the 1-process run with 2 accumulation steps end "
        f"with weights that differ by at most {difference:.2e} (fp32, floating-point summation order)."),
        (f"- Speed on 2 cores: 2 processes x 1 thread run {finetune_ratio:.2f}x the steps per second of 1 process x 2 "
        f"threads for fine-tuning and {spd_ratio:.2f}x for SPD (grafting, `find_unused_parameters`). On one CPU "
        "this only shows the gloo path works and what its all-reduce costs; data parallelism pays on several "
        "GPUs or machines, where each process brings its own device."),
        ("- GPU (nccl, bf16/fp16 autocast, CUDA I/O binding, 2:4 kernels): not measured, no GPU was lent to this "
        "task; those paths are exercised on CPU only where they have a CPU form (fp16 ONNX export, the refusals)."),
        "",
        "Commands (from the repository root):", "",
    ]
    lines += [f"- `{row['name']}`: `{row['command']}`" for row in rows]
    atomic_write_text(DOC, "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
