"""Deployment speed of the MiniLM-L6 MRPC teacher and its students, every artifact variant in one interleaved
`spdc bench` run, with parity, file sizes and load times.

Usage: python benchmarks/deploy_speed.py [--model LABEL=RUN_OR_MODEL_DIR ...] [--threads 2] [--time-s 1.5]
       [--pause-pid PID ...]

Default models: the frontier sweep's MRPC teacher and students (runs/frontier/): the dense teacher, structured
SPD students with 50% and 85% of encoder FLOPs removed (same head count in every layer), the 85% student pruned
with global scope (uneven heads per layer), and the unstructured 90% student. Variants of the teacher and the 50%
student: fp32; dynamic int8 (default: per-channel weights, after fusion, embeddings fp32, accuracy-aware
fallback); dynamic int8 per-tensor, on the plain graph, with int8 embeddings; static int8 (QDQ). The 85% students:
fp32, default int8, static int8. The unstructured student: fp32 and int8 stored sparse, fp32 stored dense.
Artifacts go to runs/deploy-speed/ (an existing one is reused). `--pause-pid` stops those processes (a background
sweep) with SIGSTOP while timing and resumes them after.
Writes docs/results/deploy-speed.md, .json and .png.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
from pathlib import Path

from harness import export_once, paused, run_spdc

from spdc.core.cpu import feature_line

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "runs" / "frontier"
OUT = ROOT / "runs" / "deploy-speed"
DOC = ROOT / "docs" / "results" / "deploy-speed.md"
DEFAULT_MODELS = {
    "teacher": RUNS / "teachers" / "minilm-mrpc",
    "s50": RUNS / "mrpc-s50-spd-seed42",
    "s85": RUNS / "mrpc-s85-spd-seed42",
    "g85": RUNS / "mrpc-g85-spd-seed42",
    "u90": RUNS / "mrpc-u90-spd-lr6.4e-4-seed42",
}
DYNAMIC = ["--quantize", "dynamic-int8"]
VARIANTS = {
    "fp32": [],
    "int8": DYNAMIC,
    "int8-per-tensor": [*DYNAMIC, "--int8-weights", "per-tensor"],
    "int8-plain-graph": [*DYNAMIC, "--int8-graph", "plain"],
    "int8-embeddings": [*DYNAMIC, "--int8-embeddings"],
    "static-int8": ["--quantize", "static-int8"],
}
FULL = ("teacher", "s50")  # every variant; the other structured students get fp32, default int8 and static int8
SPARSE = {"fp32-dense-stored": ["--sparse", "never"], "fp32": [], "int8": DYNAMIC}


def variants_of(label: str) -> dict[str, list[str]]:
    if label == "u90":
        return SPARSE
    return VARIANTS if label in FULL else {name: VARIANTS[name] for name in ("fp32", "int8", "static-int8")}


def export_all(models: dict[str, Path], threads: int) -> list[dict]:
    """Export every (model, variant) once; an artifact already there is reused."""
    rows = []
    for label, source in models.items():
        for variant, extra in variants_of(label).items():
            out = OUT / f"{label}-{variant}"
            manifest = export_once(source, out, threads, *extra)
            rows.append({"label": label, "variant": variant, "path": str(out), "manifest": manifest})
    return rows


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def write_doc(rows: list[dict], bench: dict, command: str) -> None:
    machine, settings = bench["machine"], bench["settings"]
    by_path = {model["path"]: model for model in bench["models"]}
    lines = [
        "# Deployment speed: MiniLM-L6 MRPC teacher and students, every artifact variant",
        "",
        (f"Date: {bench['created'][:10]}. Produced by `python benchmarks/deploy_speed.py` "
        f"(raw bench document: [deploy-speed.json](deploy-speed.json))."),
        "",
        (f"Machine: {machine['cpu_model']}, {machine['cpu_usable']} of {machine['cpu_count']} cores usable. "
        f"ISA: {feature_line(machine['isa'])}. "
        f"onnxruntime {machine['onnxruntime']} {machine['execution_provider']}, {machine['ort_graph_optimization']}, "
        f"{settings['threads']} intra-op threads; torch {machine['torch']}. Inputs: real MRPC dev sentences padded "
        f"or cut to the length; {settings['time_s']} s timed + {settings['warmup_s']} s warm-up per model and cell "
        f"in {settings['rounds']} interleaved rounds, one process."),
        "",
        "## Artifacts: parity, size, load time",
        "",
        ("Parity is on the 408 MRPC dev rows against each model's PyTorch source: fp32 needs max |logit diff| <= "
        "1e-4 and 100% agreement, int8 an F1 drop <= 0.5 points. `fp32 ops` lists what the int8 fallback kept in "
        "fp32. Load = reading the file, building the session and the first call."),
        "",
        ("| model | variant | status | F1 PyTorch | F1 ONNX | drop / max diff | fp32 ops | MB | sparse | load s | "
        "fused |"),
        "|---|---|---|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    for row in rows:
        manifest = row["manifest"]
        parity, export = manifest.get("parity") or {}, manifest["export"]
        f1_torch = (parity.get("metrics_torch") or {}).get("f1")
        f1_onnx = (parity.get("metrics_onnx") or {}).get("f1")
        check = parity["checks"][0]["value"] if parity.get("checks") else None
        int8 = export.get("int8") or {}
        sparse = export.get("sparse")
        sparse_text = f"{sparse['matrices']} matrices" if sparse else "-"
        model = by_path.get(row["path"], {})
        fused = ", ".join(f"{op} {n}" for op, n in export["fused_operators"].items() if op in ("Attention",))
        lines.append(
            f"| {row['label']} | {row['variant']} | {manifest['status']} | {fmt(f1_torch and f1_torch * 100)} | "
            f"{fmt(f1_onnx and f1_onnx * 100)} | {fmt(check, 5)} | {len(int8.get('fp32_operators', []))} | "
            f"{manifest['sizes']['onnx_bytes'] / 1e6:.1f} | {sparse_text} | {fmt(model.get('load_seconds'), 3)} | "
            f"{fused or '-'} |")
    lines += ["", "## Latency (median ms) and speedup vs the dense teacher fp32", ""]
    for seq_len in settings["seq_lens"]:
        lines += [f"### Sequence length {seq_len}", "",
                  "| model | " + " | ".join(f"b{b} ms | b{b} x" for b in settings["batch_sizes"]) + " | eff (b32) |",
                  "|---|" + "---:|---:|" * len(settings["batch_sizes"]) + "---:|"]
        for model in bench["models"]:
            cells = {c["batch"]: c for c in bench["results"]
                     if c["model"] == model["index"] and c["seq_len"] == seq_len}
            values = " | ".join(f"{cells[b]['latency_ms']['median']:.2f} | {cells[b]['speedup']:.2f}"
                                for b in settings["batch_sizes"])
            last = cells[settings["batch_sizes"][-1]]
            lines.append(f"| {Path(model['path']).name} | {values} | {last['efficiency']:.2f} |")
        lines.append("")
    lines += ["Command:", "", "```", command, "```", ""]
    DOC.write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=[], metavar="LABEL=DIR")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--time-s", type=float, default=1.5)
    parser.add_argument("--pause-pid", type=int, nargs="*", default=[])
    args = parser.parse_args()
    models = dict(DEFAULT_MODELS)
    models.update({label: Path(path) for label, path in (item.split("=", 1) for item in args.model)})
    rows = export_all(models, args.threads)
    paths = [row["path"] for row in rows]
    command = (f"python benchmarks/deploy_speed.py --threads {args.threads} --time-s {args.time_s}")
    with paused(args.pause_pid):
        code, bench = run_spdc("bench", *paths, "--batch-sizes", "1,8,32", "--seq-lens", "32,128", "--threads",
                               str(args.threads), "--time-s", str(args.time_s), "--warmup-s", "0.5", "--rounds", "3",
                               "--task", "mrpc", "--plot", str(DOC.with_suffix(".png")))
    if code:
        raise SystemExit(f"bench failed ({code}): {bench}")
    DOC.with_suffix(".json").write_text(json.dumps(bench, indent=2) + "\n", encoding="utf-8")
    write_doc(rows, bench, command)
    speedups = [c["speedup"] for c in bench["results"]]
    print(f"wrote {DOC}; {len(rows)} artifacts, median speedup {statistics.median(speedups):.2f}x, "
          f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}")


if __name__ == "__main__":
    main()
