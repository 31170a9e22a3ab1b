"""Latency evidence for the MiniLM-L6 MRPC models: one `spdc bench` run over the dense teacher (fp32, int8), the
SPD unstructured-90% student (fp32) and the structured SPD student (folded; fp32, int8) with onnxruntime, plus
PyTorch eager for the dense teacher and the folded student; batch 1/8/32, sequence 32/128, 2 threads.
Writes docs/results/bench-minilm.md, its JSON and its plot. Needs the artifacts of benchmarks/export_minilm.py.

Usage: python benchmarks/bench_minilm.py [--export-dir runs/export] [--teacher-run DIR] [--structured-run DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--export-dir", type=Path, default=Path("runs/export"))
    parser.add_argument("--teacher-run", type=Path, default=Path("runs/teachers/minilm-mrpc"))
    parser.add_argument("--structured-run", type=Path, default=Path("runs/spd/minilm-mrpc-spd-structured-spd-s42"))
    parser.add_argument("--time-s", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    models = [
        ("dense teacher, ORT fp32", args.export_dir / "teacher-fp32"),
        ("dense teacher, ORT int8", args.export_dir / "teacher-int8"),
        ("SPD unstructured 90%, ORT fp32", args.export_dir / "spd90-fp32"),
        ("SPD structured (folded), ORT fp32", args.export_dir / "structured-fp32"),
        ("SPD structured (folded), ORT int8", args.export_dir / "structured-int8"),
        ("dense teacher, PyTorch eager fp32", args.teacher_run / "model"),
        ("SPD structured (folded), PyTorch eager fp32", args.structured_run / "folded"),
    ]
    missing = [str(path) for _, path in models if not path.exists()]
    if missing:
        sys.exit(f"missing: {', '.join(missing)} (run benchmarks/export_minilm.py and `spdc fold` first)")
    plot = RESULTS / "bench-minilm.png"
    command = ["spdc", "bench", *(str(path) for _, path in models), "--batch-sizes", "1,8,32", "--seq-lens",
               "32,128", "--threads", str(args.threads), "--time-s", str(args.time_s), "--warmup-s", "1",
               "--task", "mrpc", "--plot", str(plot.relative_to(ROOT))]
    result = subprocess.run([*command, "--json"], cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"{shlex.join(command)} failed ({result.returncode}): {result.stdout}")
    document = json.loads(result.stdout)
    (RESULTS / "bench-minilm.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    (RESULTS / "bench-minilm.md").write_text(render(document, [name for name, _ in models], shlex.join(command)),
                                             encoding="utf-8")
    print(f"wrote {RESULTS / 'bench-minilm.md'}")


def render(document: dict, names: list[str], command: str) -> str:
    machine, settings = document["machine"], document["settings"]
    lines = [
        "# Latency of the MiniLM-L6 MRPC models (`spdc bench`)", "",
        (f"Date: {dt.datetime.now(dt.UTC).date().isoformat()}. Machine: {machine['processor']}, "
         f"{machine['cpu_count']} CPU cores, "
        f"{machine['platform']}, provider {settings['provider']}. Versions: torch {machine['torch']}, onnxruntime "
        f"{machine['onnxruntime']}, spdc {document['spdc']}. Produced by `python benchmarks/bench_minilm.py`; "
        "raw document: [bench-minilm.json](bench-minilm.json)."), "",
        (f"One process, {settings['threads']} threads, inputs {settings['inputs']} (real dev sentences padded or "
        f"cut to the length), {settings['time_s']} s timed + {settings['warmup_s']} s warm-up per model and cell "
        f"in {settings['rounds']} interleaved rounds. Speedup against the dense teacher on ORT fp32 (model 0); "
        "FLOP ratio = its encoder FLOPs / the model's; efficiency = speedup / FLOP ratio."), "",
        "| # | model | file MB | parameters |", "|---:|---|---:|---:|",
    ]
    for model, name in zip(document["models"], names, strict=True):
        parameters = f"{model['parameters']:,}" if model["parameters"] is not None else "-"
        lines.append(f"| {model['index']} | {name} | {model['file_bytes'] / 1e6:.1f} | {parameters} |")
    lines += ["", "![median latency vs batch size](bench-minilm.png)", ""]
    for seq_len in settings["seq_lens"]:
        lines += [f"## Sequence length {seq_len}", "",
                  ("| # | model | batch | median ms | mean ms | std | p90 | p99 | items/s | speedup | FLOP ratio "
                  "| efficiency |"), "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        cells = sorted((c for c in document["results"] if c["seq_len"] == seq_len),
                       key=lambda c: (c["batch"], c["model"]))
        for cell in cells:
            latency = cell["latency_ms"]
            lines.append(
                f"| {cell['model']} | {names[cell['model']]} | {cell['batch']} | {latency['median']:.2f} "
                f"| {latency['mean']:.2f} | {latency['std']:.2f} | {latency['p90']:.2f} | {latency['p99']:.2f} "
                f"| {cell['items_per_s']:.1f} | {cell['speedup']:.2f}x | {cell['flop_ratio']:.2f} "
                f"| {cell['efficiency']:.2f} |")
        lines.append("")
    lines += ["Command:", "", "```", command, "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
