"""Seconds per SPD training step vs a plain fine-tuning step of the same MiniLM-L6, batch and length, measured in
one process with the two kinds of step interleaved (so machine noise hits both alike).

Usage: python benchmarks/spd_step_time.py [--steps 10] [--batch-size 32] [--seq-len 128] [--graft-p 0.5 1.0]
       [--precision fp32 bf16] [--oneshot 0.5 0.85] [--pause-pid PID ...] [--doc PATH]
The SPD step is the real one: frozen teacher forward with hidden states and attention maps, grafted student
forward (each layer the student's with probability p), hidden + attention + logit losses, backward, AdamW step,
mask re-application (90% sparsity). p = 1 is the dearest case (every layer needs weight gradients) and the one the
graft ramp ends in, so it is measured beside the ramp's midpoint. The one-shot rows are kd steps of students cut
and folded before training (`pruning.schedule: oneshot`): the same teacher forward, a smaller student.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import transformers
from harness import paused

from spdc.compression.folding import fold
from spdc.compression.grafting import Grafting
from spdc.compression.methods import METHODS
from spdc.compression.objective import CompressionPlugin
from spdc.compression.pruning.pruner import Pruner
from spdc.compression.recorder import OutputRecorder
from spdc.compression.student import build_student
from spdc.core.atomic import atomic_write_text
from spdc.core.cpu import cpu_info
from spdc.data.tasks import get_task
from spdc.heads import HEADS
from spdc.models.families import encoder_layers, family_of, prunable_linears
from spdc.models.loading import load_model
from spdc.models.shape import EncoderShape
from spdc.recipe import DistillationConfig, GraftingConfig, PruningConfig, StageConfig, StudentConfig
from spdc.runs.runtime import autocast

ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")
DEFAULT_DOC = ROOT / "docs" / "results" / "spd-step-time.md"


def eager_teacher() -> torch.nn.Module:
    """A MiniLM teacher with eager attention: the implementation that yields attention maps for distillation."""
    teacher = load_model("minilm", get_task("mrpc")).model
    teacher.set_attn_implementation("eager")
    return teacher


def plain_stepper(batch: dict[str, torch.Tensor], attention: str, precision: str) -> Callable[[int], None]:
    """One plain fine-tuning step (hard labels) of its own MiniLM copy with the given attention implementation."""
    model = load_model("minilm", get_task("mrpc")).model
    model.set_attn_implementation(attention)
    optimizer = torch.optim.AdamW([w for w in model.parameters() if w.requires_grad], lr=1e-5)

    def step(index: int) -> None:
        model.train()
        with autocast(CPU, precision):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def spd_stepper(teacher: torch.nn.Module, batch: dict[str, torch.Tensor], p: float, steps: int, precision: str,
                oneshot: float | None = None) -> Callable[[int], None]:
    """One real SPD training step grafting with probability `p`: its own student copy (90% pruned) and optimizer,
    the shared teacher; the output recorder's hooks exist only during the step (they are removed after it).
    With `oneshot` (and p = 1: kd) the student is instead cut to that share of heads and FFN neurons in every
    layer (magnitude) and folded before the first step, as `pruning.schedule: oneshot` trains it."""
    family = family_of(teacher)
    student, layer_map = build_student(teacher, family, StudentConfig(), None)
    student_layers, teacher_layers = encoder_layers(student, family), encoder_layers(teacher, family)
    config = PruningConfig(final_sparsity=0.9, schedule="oneshot") if oneshot is None else PruningConfig(
        granularity="structured", schedule="oneshot", head_sparsity=oneshot, neuron_sparsity=oneshot)
    pruner = Pruner(config, prunable_linears(student_layers, family), EncoderShape.of(student), total_steps=1)
    pruner.prune_to_final()
    structure = fold(student) if oneshot is not None else None  # folded: nothing is left to mask
    stage = StageConfig(name="s", prune=False, grafting=GraftingConfig(schedule="constant", p0=p))
    grafting = Grafting(stage.grafting, stage_steps=steps, seed=0, stage_index=0, student_layers=student_layers,
                        teacher_layers=teacher_layers, layers_path=family.layers)
    optimizer = torch.optim.AdamW([w for w in student.parameters() if w.requires_grad], lr=1e-5)

    def step(index: int) -> None:
        with OutputRecorder(family, [teacher, student], [teacher_layers, student_layers]) as recorder:
            plugin = CompressionPlugin(method=METHODS["spd" if oneshot is None else "kd"], stage=stage,
                                       grafting=grafting, distillation=DistillationConfig(), teacher=teacher,
                                       layer_map=layer_map, recorder=recorder, head=HEADS["sequence-classification"],
                                       pruner=pruner if structure is None else None,
                                       pruning_offset=0, kept_heads=structure.heads if structure else None)
            with autocast(CPU, precision):
                loss, _ = plugin.loss(student, batch, index, student)
            if loss.requires_grad:
                loss.backward()
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            plugin.after_step(index + 1)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC)
    parser.add_argument("--graft-p", type=float, nargs="+", default=[0.5, 1.0],
                        help="Grafting probabilities to time, one SPD step kind each.")
    parser.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"])
    parser.add_argument("--oneshot", type=float, nargs="*", default=[0.5, 0.85],
                        help="Head and neuron sparsities of one-shot folded kd students to time beside SPD.")
    parser.add_argument("--pause-pid", type=int, nargs="*", default=[])
    args = parser.parse_args()
    torch.manual_seed(0)
    batch = {
        "input_ids": torch.randint(1000, 20000, (args.batch_size, args.seq_len)),
        "attention_mask": torch.ones(args.batch_size, args.seq_len, dtype=torch.long),
        "token_type_ids": torch.zeros(args.batch_size, args.seq_len, dtype=torch.long),
        "labels": torch.randint(0, 2, (args.batch_size,)),
    }
    teacher = eager_teacher().eval()

    def teacher_forward(precision: str) -> Callable[[int], None]:
        @torch.no_grad()
        def step(index: int) -> None:
            with autocast(CPU, precision):
                teacher(**{k: v for k, v in batch.items() if k != "labels"}, output_hidden_states=True,
                        output_attentions=True)
        return step

    steppers: dict[tuple[str, str], Callable[[int], None]] = {}
    labels = {"plain": "plain fine-tuning (labels, sdpa attention)",
              "plain eager": "plain fine-tuning, eager attention (what SPD's student runs, for its attention maps)",
              "teacher": "teacher forward alone (no grad, eager, hidden states + attentions): SPD's extra cost"}
    for precision in args.precision:
        steppers[precision, "plain"] = plain_stepper(batch, "sdpa", precision)
        steppers[precision, "plain eager"] = plain_stepper(batch, "eager", precision)
        steppers[precision, "teacher"] = teacher_forward(precision)
        for p in args.graft_p:
            steppers[precision, f"spd p={p:g}"] = spd_stepper(teacher, batch, p, args.steps, precision)
            labels[f"spd p={p:g}"] = f"SPD, graft p = {p:g} (teacher fwd + student, eager attention, 3 losses, masks)"
        for sparsity in args.oneshot:
            kind = f"oneshot s{sparsity * 100:.0f}"
            steppers[precision, kind] = spd_stepper(teacher, batch, 1.0, args.steps, precision, oneshot=sparsity)
            labels[kind] = (f"one-shot + kd, folded at {sparsity * 100:.0f}% of heads and neurons (teacher fwd + "
                            "small student, eager attention, 3 losses)")
    timings: dict[tuple[str, str], list[float]] = {key: [] for key in steppers}
    with paused(args.pause_pid):
        for step in range(args.steps + 2):  # the first two rounds warm up
            for key, stepper in steppers.items():
                started = time.perf_counter()
                stepper(step)
                if step >= 2:
                    timings[key].append(time.perf_counter() - started)
    cpu = cpu_info()
    command = (f"python benchmarks/spd_step_time.py --steps {args.steps} --batch-size {args.batch_size} "
               f"--seq-len {args.seq_len} --graft-p {' '.join(f'{p:g}' for p in args.graft_p)} "
               f"--precision {' '.join(args.precision)} --oneshot {' '.join(f'{s:g}' for s in args.oneshot)}"
               + (f" --doc {args.doc}" if args.doc.resolve() != DEFAULT_DOC else ""))
    lines = [
        "# Seconds per SPD training step vs plain fine-tuning",
        "",
        (f"Date: {dt.datetime.now(dt.UTC).date().isoformat()}. Machine: {cpu.model}, {cpu.logical_cores} logical "
         f"CPUs, ISA: {cpu.feature_line()}; {torch.get_num_threads()} torch threads, CPU only."),
        f"Versions: torch {torch.__version__}, transformers {transformers.__version__}.",
        f"Command: `{command}`" + (" (a background sweep paused while timing)." if args.pause_pid else ""),
        "",
        (f"MiniLM-L6 (all-MiniLM-L6-v2, 2 labels), batch {args.batch_size}, sequence {args.seq_len} (no padding), "
         f"{args.steps} measured steps of each kind after 2 warm-up rounds, every kind and precision interleaved in "
         "one process. bf16 = autocast with fp32 master weights and optimizer state."),
        "",
        "| precision | step | median s | mean s | min s | max s | / plain of its precision (medians) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for (precision, kind), values in timings.items():
        plain_median = statistics.median(timings[precision, "plain"])
        lines.append(f"| {precision} | {labels[kind]} | {statistics.median(values):.3f} | "
                     f"{statistics.mean(values):.3f} | {min(values):.3f} | {max(values):.3f} | "
                     f"{statistics.median(values) / plain_median:.2f}x |")
    lines += ["", "Target: SPD / plain <= 1.25x at p = 1. The teacher row is part of every SPD step, timed alone to",
              "show how much of the SPD / plain ratio it accounts for.", ""]
    atomic_write_text(args.doc, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
