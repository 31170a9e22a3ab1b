"""Every supported model family through spdc: a tiny end-to-end run each, and what structured pruning buys in
onnxruntime latency at base size.

Usage: python benchmarks/families.py [--threads 2] [--time-s 2] [--pause-pid PID ...]

1. Tiny (2 layers, hidden 32) random models of each family with a word-level tokenizer, on a synthetic SST-2-like
   task: `spdc compress` (spd, structured, global scope: uneven heads), fold, `spdc export` with parity. Records
   parameters before/after, parity and the operators onnxruntime fused.
2. Base size (12 layers, hidden 768, 12 heads, FFN 3072) with random weights: half the heads and half the FFN
   neurons of every layer zeroed as structured pruning leaves them, exported dense and folded (fp32, O2), and
   timed in one interleaved `spdc bench` (batch 1 and 8, length 128) with synthetic token ids. The folded / dense
   latency ratio is what structured pruning buys per family. `--pause-pid` stops a background sweep while timing.
Writes docs/results/families.md and .json. Artifacts and runs go to runs/families/ (reused when present).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from harness import paused, run_spdc  # noqa: E402

from spdc.core.cpu import feature_line  # noqa: E402
from spdc.models.families import FAMILIES, encoder_layers, family_of, prunable_linears  # noqa: E402
from spdc.models.loading import load_model, save_model  # noqa: E402
from tests.conftest import write_sst2_like  # noqa: E402
from tests.families_support import build_tiny_family  # noqa: E402

OUT = ROOT / "runs" / "families"
DOC = ROOT / "docs" / "results" / "families.md"
BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
        "max_position_embeddings": 512, "vocab_size": 30522}


def spdc(*args: str) -> dict:
    code, document = run_spdc(*args)
    if code:
        raise SystemExit(f"spdc {' '.join(args)} failed ({code}): {document}")
    return document


def tiny_run(model_type: str) -> dict:
    folder = OUT / "tiny" / model_type
    summary_file = folder / "run" / "summary.json"
    if not summary_file.is_file():
        data = write_sst2_like(folder / "glue" / "SST-2", train_rows=128, dev_rows=32)
        model = build_tiny_family(model_type, folder / "base")
        recipe = folder / "recipe.yaml"
        recipe.write_text(
            f"name: tiny-{model_type}\nseed: 1\ndevice: cpu\nprecision: fp32\n"
            f"task: {{name: sst2, data_dir: {data}, max_seq_length: 16}}\nteacher: {{model: {model}}}\nmethod: spd\n"
            "pruning: {granularity: structured, scope: global, head_sparsity: 0.5, neuron_sparsity: 0.5, "
            "num_updates: 2}\nexport: {fold: true}\nstages:\n"
            "  - {name: prune, prune: true, epochs: 1, learning_rate: 1.0e-3, batch_size: 16, "
            "grafting: {schedule: linear, p0: 0.5}}\n"
            "  - {name: tune, epochs: 1, learning_rate: 5.0e-4, batch_size: 16}\n")
        spdc("compress", str(recipe), "--out", str(folder / "run"), "--overwrite")
    summary = json.loads(summary_file.read_text())
    if not (folder / "run" / "onnx" / "spdc_manifest.json").is_file():
        spdc("export", str(folder / "run"))
    manifest = json.loads((folder / "run" / "onnx" / "spdc_manifest.json").read_text())
    return {"family": model_type, "parameters": summary["fold"]["parameters"],
            "kept_heads": summary["fold"]["structure"]["kept_heads"],
            "fold_max_diff": summary["fold"]["max_logit_difference"], "status": manifest["status"],
            "parity_max_diff": manifest["parity"]["max_abs_diff"], "fused": manifest["export"]["fused_operators"],
            "notes": manifest["export"]["notes"]}


def base_artifacts(model_type: str) -> tuple[Path, Path]:
    """The dense and the folded half-pruned base-size model of a family, exported (fp32, O2)."""
    folder = OUT / "base" / model_type
    dense, folded = folder / "dense-onnx", folder / "folded-onnx"
    if not (folded / "spdc_manifest.json").is_file():
        build_tiny_family(model_type, folder / "dense", seed=0, **BASE)
        loaded = load_model(str(folder / "dense"), None)
        model, family = loaded.model, family_of(loaded.model)
        generator = torch.Generator().manual_seed(0)
        heads, head_dim = BASE["num_attention_heads"], BASE["hidden_size"] // BASE["num_attention_heads"]
        with torch.no_grad():
            for index, _ in enumerate(encoder_layers(model, family)):
                matrices = prunable_linears(encoder_layers(model, family)[index:index + 1], family)
                kept_heads = torch.randperm(heads, generator=generator)[: heads // 2]
                dims = torch.zeros(BASE["hidden_size"])
                for head in kept_heads:
                    dims[head * head_dim:(head + 1) * head_dim] = 1
                width = BASE["intermediate_size"]
                neurons = torch.zeros(width)
                neurons[torch.randperm(width, generator=generator)[: width // 2]] = 1
                for role, matrix in ((name.split(".", 1)[1], m) for name, m in matrices.items()):
                    rows = {"query": dims, "key": dims, "value": dims, "intermediate": neurons,
                            "gate": neurons}.get(role)
                    if rows is not None:
                        matrix.weight.mul_(rows[:, None])
                        if matrix.bias is not None:
                            matrix.bias.mul_(rows)
                    else:  # output matrices: the columns of the kept heads / neurons
                        matrix.weight.mul_((dims if role == "attention_output" else neurons)[None, :])
        save_model(model, loaded.tokenizer, folder / "masked")
        spdc("export", str(folder / "dense"), "--no-validate", "--out", str(dense))
        spdc("export", str(folder / "masked"), "--no-validate", "--out", str(folded))
    return dense, folded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--time-s", type=float, default=2.0)
    parser.add_argument("--pause-pid", type=int, nargs="*", default=[])
    args = parser.parse_args()
    tiny = [tiny_run(model_type) for model_type in sorted(FAMILIES)]
    artifacts = {model_type: base_artifacts(model_type) for model_type in sorted(FAMILIES)}
    paths = [str(path) for pair in artifacts.values() for path in pair]
    with paused(args.pause_pid):
        bench = spdc("bench", *paths, "--batch-sizes", "1,8", "--seq-lens", "128", "--threads", str(args.threads),
                     "--time-s", str(args.time_s), "--warmup-s", "0.5", "--rounds", "3")
    DOC.with_suffix(".json").write_text(json.dumps({"tiny": tiny, "bench": bench}, indent=2) + "\n")
    write_doc(tiny, artifacts, bench, args)


def write_doc(tiny: list[dict], artifacts: dict[str, tuple[Path, Path]], bench: dict,
              args: argparse.Namespace) -> None:
    machine = bench["machine"]
    index = {model["path"]: model["index"] for model in bench["models"]}
    manifests = {path: json.loads((Path(path) / "spdc_manifest.json").read_text()) for path in index}

    def median(path: Path, batch: int) -> float:
        cell = next(c for c in bench["results"] if c["model"] == index[str(path)] and c["batch"] == batch)
        return float(cell["latency_ms"]["median"])

    lines = [
        "# Model families: tiny end-to-end runs and what structured pruning buys at base size", "",
        (f"Date: {bench['created'][:10]}. Produced by `python benchmarks/families.py --threads {args.threads} "
        f"--time-s {args.time_s}` (raw: [families.json](families.json)). Machine: {machine['cpu_model']}, "
        f"{machine['cpu_usable']} cores usable, ISA {feature_line(machine['isa'])}; "
        f"onnxruntime {machine['onnxruntime']}, torch {machine['torch']}."), "",
        "## Tiny models through compress -> fold -> export -> parity", "",
        ("2 layers, hidden 32, 4 heads, random weights, a synthetic SST-2-like task; structured SPD with global scope "
        "(uneven heads), folded, exported to ONNX (O2) with the fp32 parity check on the dev rows."), "",
        ("| family | parameters before -> after | heads kept per layer | fold max diff | parity | max logit diff | "
        "fused operators |"), "|---|---|---|---:|---|---:|---|",
    ]
    for row in tiny:
        fused = ", ".join(f"{op} {count}" for op, count in row["fused"].items()) or "-"
        lines.append(f"| {row['family']} | {row['parameters']['before']:,} -> {row['parameters']['after']:,} | "
                     f"{row['kept_heads']} | {row['fold_max_diff']:.1e} | {row['status']} | "
                     f"{row['parity_max_diff']:.1e} | {fused} |")
    lines += ["", "## Base size: folded (half the heads and FFN neurons) vs dense, onnxruntime fp32", "",
              (f"12 layers, hidden 768, 12 heads, FFN 3072, random weights; {args.threads} threads, length 128, "
              f"synthetic token ids, {args.time_s} s per model and cell in 3 interleaved rounds (one process). "
              "The FLOP ratio of folding half the units is 2.0."), "",
              ("| family | dense b1 ms | folded b1 ms | b1 speedup | dense b8 ms | folded b8 ms | b8 speedup | "
              "attention fused (dense / folded) |"), "|---|---:|---:|---:|---:|---:|---:|---|"]
    for model_type, (dense, folded) in artifacts.items():
        attention = [manifests[str(path)]["export"]["fused_operators"].get("Attention", 0)
                     for path in (dense, folded)]
        lines.append(
            f"| {model_type} | {median(dense, 1):.2f} | {median(folded, 1):.2f} | "
            f"{median(dense, 1) / median(folded, 1):.2f}x | {median(dense, 8):.2f} | {median(folded, 8):.2f} | "
            f"{median(dense, 8) / median(folded, 8):.2f}x | {attention[0]} / {attention[1]} |")
    lines.append("")
    DOC.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
