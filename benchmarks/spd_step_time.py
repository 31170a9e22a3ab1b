"""Seconds per SPD training step vs a plain fine-tuning step of the same MiniLM-L6, batch and length, measured in
one process with the two kinds of step interleaved (so machine noise hits both alike).

Usage: python benchmarks/spd_step_time.py [--steps 10] [--batch-size 32] [--seq-len 128] [--doc PATH]
The SPD step is the real one: frozen teacher forward with hidden states and attention maps, grafted student
forward (p = 0.5), hidden + attention + logit losses, backward, AdamW step, mask re-application (90% sparsity).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time
from pathlib import Path

import torch
import transformers

from spdc.architectures import architecture_for, encoder_layers, prunable_linears
from spdc.models import load_classifier
from spdc.pruning.pruner import EncoderShape, Pruner
from spdc.recipe import DistillationConfig, GraftingConfig, PruningConfig, StageConfig, StudentConfig
from spdc.spd import CompressionPlugin
from spdc.student import OutputRecorder, build_student
from spdc.tasks import get_task

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "results" / "spd-step-time.md")
    args = parser.parse_args()
    torch.manual_seed(0)
    spec = get_task("mrpc")
    plain = load_classifier("minilm", spec).model
    teacher = load_classifier("minilm", spec).model
    teacher.set_attn_implementation("eager")
    arch = architecture_for(teacher)
    student, layer_map = build_student(teacher, arch, StudentConfig(), None)
    student_layers, teacher_layers = encoder_layers(student, arch), encoder_layers(teacher, arch)
    pruner = Pruner(PruningConfig(final_sparsity=0.9, schedule="oneshot"), prunable_linears(student_layers, arch),
                    EncoderShape.of(student.config), total_steps=1)
    pruner.after_step(1)
    plugin = CompressionPlugin(
        method="spd", stage=StageConfig(name="s", prune=False, grafting=GraftingConfig(schedule="constant", p0=0.5)),
        stage_index=0, stage_steps=args.steps, distillation=DistillationConfig(), teacher=teacher,
        teacher_layers=teacher_layers, student_layers=student_layers, layers_path=arch.layers, layer_map=layer_map,
        recorder=OutputRecorder(arch, [teacher, student], [teacher_layers, student_layers]), regression=False,
        pruner=pruner, pruning_offset=0, seed=0,
    )
    batch = {
        "input_ids": torch.randint(1000, 20000, (args.batch_size, args.seq_len)),
        "attention_mask": torch.ones(args.batch_size, args.seq_len, dtype=torch.long),
        "token_type_ids": torch.zeros(args.batch_size, args.seq_len, dtype=torch.long),
        "labels": torch.randint(0, 2, (args.batch_size,)),
    }
    plain_optimizer = torch.optim.AdamW([p for p in plain.parameters() if p.requires_grad], lr=1e-5)
    spd_optimizer = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=1e-5)

    def plain_step() -> None:
        plain.train()
        plain(**batch).loss.backward()
        plain_optimizer.step()
        plain_optimizer.zero_grad(set_to_none=True)

    def spd_step(step: int) -> None:
        loss, _ = plugin.loss(student, batch, step)
        loss.backward()
        spd_optimizer.step()
        spd_optimizer.zero_grad(set_to_none=True)
        plugin.after_step(step + 1)

    timings: dict[str, list[float]] = {"plain": [], "spd": []}
    for step in range(args.steps + 2):  # the first two rounds warm up
        for kind in ("plain", "spd"):
            started = time.perf_counter()
            plain_step() if kind == "plain" else spd_step(step)
            if step >= 2:
                timings[kind].append(time.perf_counter() - started)
    plain_median, spd_median = statistics.median(timings["plain"]), statistics.median(timings["spd"])
    ratio = spd_median / plain_median
    lines = [
        "# Seconds per SPD training step vs plain fine-tuning",
        "",
        f"Date: {dt.date.today().isoformat()}. Machine: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads, CPU only.",
        f"Versions: torch {torch.__version__}, transformers {transformers.__version__}.",
        f"Command: `python benchmarks/spd_step_time.py --steps {args.steps} --batch-size {args.batch_size} "
        f"--seq-len {args.seq_len}`",
        "",
        f"MiniLM-L6 (all-MiniLM-L6-v2, 2 labels), batch {args.batch_size}, sequence {args.seq_len} (no padding), "
        f"{args.steps} measured steps of each kind after 2 warm-up rounds, interleaved in one process.",
        "",
        "| step | median s | mean s | min s | max s |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, label in (("plain", "plain fine-tuning (labels, sdpa attention)"),
                        ("spd", "SPD (teacher fwd + grafted student, eager attention, 3 losses, masks)")):
        values = timings[kind]
        lines.append(f"| {label} | {statistics.median(values):.3f} | {statistics.mean(values):.3f} | "
                     f"{min(values):.3f} | {max(values):.3f} |")
    lines += ["", f"SPD / plain (medians): **{ratio:.2f}x** (target <= 1.25x).", ""]
    args.doc.parent.mkdir(parents=True, exist_ok=True)
    args.doc.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
