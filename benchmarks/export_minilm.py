"""Export evidence on real MRPC dev: the MiniLM-L6 teacher and SPD students, each exported to ONNX fp32 and int8
(with the parity check on the full dev split), then ORT CPU latency of every artifact measured in one
`spdc bench` run (batch 1 and 32, sequence 128, 2 threads). Writes docs/results/export-minilm.md.

Usage: python benchmarks/export_minilm.py --sources NAME=RUN_DIR ... [--unfolded NAME] [--out-dir runs/export]
The first source is the baseline (the dense teacher). `--unfolded NAME` also exports that source without
folding, to compare dense (masked) and folded graphs of the same student in the same bench run.
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


def spdc_json(arguments: list[str], commands: list[str]) -> dict:
    command = ["spdc", *arguments]
    commands.append(shlex.join(command))
    result = subprocess.run([*command, "--json"], cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
    document = json.loads(result.stdout) if result.stdout.strip() else {}
    if result.returncode not in (0, 7):  # 7: parity failed; the artifact exists and says so
        sys.exit(f"{shlex.join(command)} failed ({result.returncode}): {result.stdout}")
    return document


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", nargs="+", required=True, metavar="NAME=RUN_DIR")
    parser.add_argument("--unfolded", nargs="*", default=[], metavar="NAME")
    parser.add_argument("--out-dir", type=Path, default=Path("runs/export"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--time-s", type=float, default=6.0)
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "results" / "export-minilm.md")
    args = parser.parse_args()
    commands: list[str] = []
    artifacts: list[tuple[str, Path]] = []
    for entry in args.sources:
        name, _, run_dir = entry.partition("=")
        variants = [("fp32", []), ("int8", ["--quantize", "dynamic-int8"])]
        if name in args.unfolded:
            variants.insert(0, ("fp32-unfolded", ["--no-fold"]))
        for label, extra in variants:
            out = args.out_dir / f"{name}-{label}"
            spdc_json(["export", run_dir, "--onnx", "--threads", str(args.threads), "--out", str(out), *extra],
                      commands)
            artifacts.append((f"{name} {label}", out))
    bench = spdc_json(["bench", *(str(path) for _, path in artifacts), "--batch-sizes", "1,32", "--seq-lens", "128",
                       "--threads", str(args.threads), "--time-s", str(args.time_s), "--warmup-s", "1",
                       "--task", "mrpc", "--plot", str(args.out_dir / "latency.png")], commands)
    manifests = [json.loads((path / "spdc_manifest.json").read_text()) for _, path in artifacts]
    args.doc.write_text(render(artifacts, manifests, bench, commands), encoding="utf-8")
    print(f"wrote {args.doc}")


def render(artifacts: list[tuple[str, Path]], manifests: list[dict], bench: dict, commands: list[str]) -> str:
    machine = bench["machine"]
    versions = manifests[0]["export"]["versions"]
    lines = [
        "# ONNX export of the MiniLM-L6 teacher and SPD students (real MRPC dev)", "",
        (f"Date: {dt.datetime.now(dt.UTC).date().isoformat()}. Machine: {machine['processor']}, "
         f"{machine['cpu_count']} CPU cores, "
        f"{machine['platform']}. Versions: torch {versions['torch']}, onnx {versions['onnx']}, onnxruntime "
        f"{versions['onnxruntime']}, spdc {bench['spdc']}. Produced by `python benchmarks/export_minilm.py` "
        "(commands below)."), "",
        "## Size and parity (full MRPC dev split, 408 rows)", "",
        ("Parameters count the whole model (embeddings included). Parity compares ORT with the PyTorch student "
        "(masked, unfolded) on the same padded batches; thresholds: fp32 max |logit diff| <= 1e-4 and 100% "
        "agreement, int8 F1 drop <= 0.5 points."), "",
        ("| artifact | folded | parameters | file MB | opt. | fused ops | max abs logit diff | mean abs logit diff "
        "| agreement | F1 PyTorch | F1 ORT | status |"),
        "|---|---|---:|---:|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for (name, _), manifest in zip(artifacts, manifests, strict=True):
        parity, export = manifest["parity"], manifest["export"]
        folded = manifest["folded"]
        kept = f"yes ({len(folded['heads'][0])} heads, {folded['neurons'][0]} FFN / layer)" if folded else "no"
        fused = ", ".join(f"{op} {count}" for op, count in export["fused_operators"].items()) or "-"
        lines.append(
            f"| {name} | {kept} | {manifest['sizes']['parameters']:,} | {manifest['sizes']['onnx_bytes'] / 1e6:.1f} "
            f"| {export['optimize']} | {fused} | {parity['max_abs_diff']:.2e} | {parity['mean_abs_diff']:.2e} "
            f"| {parity['agreement'] * 100:.2f}% | {parity['metrics_torch']['f1'] * 100:.2f} "
            f"| {parity['metrics_onnx']['f1'] * 100:.2f} | {manifest['status']} |")
    notes = sorted({note for manifest in manifests for note in manifest["export"]["notes"]})
    if notes:
        lines += ["", "Export notes: " + " ".join(f"{note}." for note in notes)]
    settings = bench["settings"]
    lines += [
        "", (f"## ORT CPU latency ({settings['threads']} threads, sequence {settings['seq_lens'][0]}, real MRPC "
        f"dev sentences padded to length, {settings['time_s']} s per model and cell in {settings['rounds']} "
        "interleaved rounds, one process)"), "",
        ("Speedup is against the dense teacher fp32 (first row); FLOP ratio = teacher encoder FLOPs / model encoder "
        "FLOPs; efficiency = speedup / FLOP ratio (1.0 = all of the removed FLOPs turned into speed)."), "",
        "| artifact | batch | median ms | p90 ms | p99 ms | items/s | speedup | FLOP ratio | efficiency |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    names = [name for name, _ in artifacts]
    for cell in sorted(bench["results"], key=lambda c: (c["batch"], c["model"])):
        latency = cell["latency_ms"]
        lines.append(f"| {names[cell['model']]} | {cell['batch']} | {latency['median']:.2f} | {latency['p90']:.2f} "
                     f"| {latency['p99']:.2f} | {cell['items_per_s']:.1f} | {cell['speedup']:.2f}x "
                     f"| {cell['flop_ratio']:.2f} | {cell['efficiency']:.2f} |")
    lines += ["", "Commands:", "", "```", *commands, "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
