"""One command for what only a GPU can show, in a few minutes on one GPU: fine-tune and SPD steps on CUDA in bf16
and fp16 (with the gradient scaler), torchrun with nccl (two GPUs or more), the fp16 ONNX export with its parity
check, `spdc bench --provider cuda` with onnxruntime-gpu, and 2:4 semi-structured kernels. Each check runs spdc as
a user does (the CLI, `--json`) on a tiny random BERT and synthetic SST-2 rows made here, and is reported as
passed, failed (with spdc's message) or skipped (with the reason). The page goes to docs/results/gpu.md with the
GPU model and the versions.

    python benchmarks/gpu_check.py              # on a machine with CUDA
    python benchmarks/gpu_check.py --out PATH   # the page elsewhere

Without CUDA it refuses (exit 2) and writes nothing: a page from a machine without a GPU would prove nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the tests' helpers build the tiny model and the rows


@dataclass
class Check:
    name: str
    status: str  # passed, failed, skipped
    detail: str
    seconds: float = 0.0


def spdc(*args: str, torchrun: int = 0) -> tuple[int, dict, str]:
    """Run spdc (under torchrun with `torchrun` processes): exit code, JSON document, the end of stderr."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={torchrun}"] \
        if torchrun else [sys.executable]
    result = subprocess.run([*launcher, "-m", "spdc", *args, "--json"], cwd=ROOT, capture_output=True, text=True,
                            check=False, timeout=600)
    try:
        document = json.loads(result.stdout) if result.stdout.strip() else {}
    except json.JSONDecodeError:
        document = {}
    return result.returncode, document, result.stderr[-800:]


def timed(name: str, args: list[str], *, torchrun: int = 0, describe: str = "") -> Check:
    started = time.perf_counter()
    code, document, stderr = spdc(*args, torchrun=torchrun)
    seconds = time.perf_counter() - started
    if code == 0:
        return Check(name, "passed", describe or "exit 0", seconds)
    message = (document.get("error") or {}).get("message") or stderr.strip().splitlines()[-1:] or ["no output"]
    return Check(name, "failed", f"exit {code}: {message if isinstance(message, str) else message[0]}", seconds)


def recipe(folder: Path, model: Path, data: Path, precision: str, *, compress: bool, device: str = "cuda") -> Path:
    body = (f"name: gpu-{precision}{'-spd' if compress else ''}\nseed: 1\ndevice: {device}\nprecision: {precision}\n"
            f"task: {{name: sst2, data_dir: {data}, max_seq_length: 32}}\n")
    if compress:
        body += (f"teacher: {{model: {model}}}\nmethod: spd\npruning: {{granularity: structured, head_sparsity: 0.5, "
                 "neuron_sparsity: 0.5, num_updates: 3}\nstages:\n  - {name: prune, prune: true, max_steps: 12, "
                 "batch_size: 16, learning_rate: 1.0e-3, grafting: {schedule: linear, p0: 0.5}}\n"
                 "  - {name: tune, max_steps: 6, batch_size: 16, learning_rate: 5.0e-4}\nexport: {fold: true}\n")
    else:
        body += (f"teacher:\n  model: {model}\n  finetune: {{max_steps: 20, batch_size: 16, learning_rate: 2.0e-3, "
                 "train_eval_samples: 0}\n")
    path = folder / f"{precision}{'-spd' if compress else ''}.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def run_checks(work: Path, *, device: str = "cuda") -> list[Check]:
    """Every check on CUDA; with device "cpu" (`--cpu-rehearsal`), the CPU-runnable ones, to test the script."""
    import onnxruntime
    import torch

    from tests.conftest import write_sst2_like
    from tests.families_support import build_tiny_family

    model = build_tiny_family("bert", work / "tiny-bert")
    data = write_sst2_like(work / "SST-2")
    checks = []
    for precision in ("bf16", "fp16") if device == "cuda" else ("bf16",):
        checks.append(timed(f"fine-tune on {device}, {precision}", ["finetune", str(recipe(
            work, model, data, precision, compress=False, device=device)), "--out", str(work / f"ft-{precision}")],
            describe="20 steps" + (" with the gradient scaler" if precision == "fp16" else "")))
        checks.append(timed(f"SPD compress on {device}, {precision}", ["compress", str(recipe(
            work, model, data, precision, compress=True, device=device)), "--out", str(work / f"spd-{precision}")],
            describe="structured 50%, grafting, folded"))
    if device != "cuda":  # the rest needs CUDA; the export is the last step a CPU can rehearse
        checks.append(timed("fp16 ONNX export with parity", ["export", str(work / "spd-bf16"), "--precision", "fp16",
                                                               "--out", str(work / "onnx-fp16")]))
        return checks
    gpus = torch.cuda.device_count()
    if gpus >= 2:
        checks.append(timed("torchrun, nccl, 2 processes", ["finetune", str(recipe(work, model, data, "bf16",
                            compress=False)), "--out", str(work / "ddp")], torchrun=2))
    else:
        checks.append(Check("torchrun, nccl, 2 processes", "skipped", f"{gpus} GPU: nccl needs one GPU per process"))
    student = work / "spd-bf16"
    if (student / "summary.json").is_file():
        checks.append(timed("fp16 ONNX export with parity", ["export", str(student), "--precision", "fp16",
                                                               "--out", str(work / "onnx-fp16")]))
    else:
        checks.append(Check("fp16 ONNX export with parity", "skipped", "the bf16 SPD run did not finish"))
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers() and (work / "onnx-fp16").is_dir():
        checks.append(timed("spdc bench --provider cuda", ["bench", str(work / "onnx-fp16"), "--provider", "cuda",
                                                           "--batch-sizes", "1,32", "--seq-lens", "32",
                                                           "--time-s", "1"]))
    else:
        checks.append(Check("spdc bench --provider cuda", "skipped", "onnxruntime has no CUDAExecutionProvider "
                            "(pip uninstall onnxruntime && pip install 'spdc[gpu]'), or no fp16 artifact"))
    major, _ = torch.cuda.get_device_capability(0)
    if major >= 8 and (student / "summary.json").is_file():
        checks.append(timed("2:4 semi-structured kernels", ["bench", str(student), "--engine", "torch", "--provider",
                                                            "cuda", "--semi-structured", "--batch-sizes", "32",
                                                            "--seq-lens", "32", "--time-s", "1"]))
    else:
        checks.append(Check("2:4 semi-structured kernels", "skipped", f"compute capability {major}.x (needs 8.0+) "
                            "or no student"))
    return checks


def page(checks: list[Check], command: str) -> str:
    import onnxruntime
    import torch
    import transformers

    lines = ["# GPU check", "", f"Command: `{command}`; date {dt.datetime.now(dt.UTC).date().isoformat()}.", "",
             (f"GPU: {torch.cuda.get_device_name(0)} (x{torch.cuda.device_count()}), CUDA {torch.version.cuda}; torch "
             f"{torch.__version__}, transformers {transformers.__version__}, onnxruntime {onnxruntime.__version__} "
             f"(providers: {', '.join(onnxruntime.get_available_providers())})."), "",
             ("Tiny random BERT (2 layers, hidden 32) and synthetic SST-2 rows made by the script: these checks prove "
             "that the paths run on CUDA, not how fast or accurate a real model is."), "",
             "| check | result | detail | seconds |", "|---|---|---|---:|"]
    lines += [f"| {check.name} | {check.status} | {check.detail.replace('|', '/')} | {check.seconds:.1f} |"
              for check in checks]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "gpu.md")
    parser.add_argument("--cpu-rehearsal", action="store_true",
                        help="run the CPU-runnable checks on CPU to test this script; prints, writes nothing")
    args = parser.parse_args()
    import torch

    if args.cpu_rehearsal:
        with tempfile.TemporaryDirectory(prefix="spdc-gpu-rehearsal-") as folder:
            checks = run_checks(Path(folder), device="cpu")
        for check in checks:
            print(f"{check.status:8} {check.name}: {check.detail}")
        return 1 if any(check.status == "failed" for check in checks) else 0
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False): nothing checked, nothing "
              "written. Run it on a machine with a GPU.", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="spdc-gpu-check-") as folder:
        checks = run_checks(Path(folder))
    for check in checks:
        print(f"{check.status:8} {check.name}: {check.detail}")
    args.out.write_text(page(checks, " ".join(["python", "benchmarks/gpu_check.py", *sys.argv[1:]])),
                        encoding="utf-8")
    print(f"wrote {args.out}")
    return 1 if any(check.status == "failed" for check in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
