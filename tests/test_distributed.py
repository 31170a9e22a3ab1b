"""Scale-out on CPU: batches split across ranks and accumulation steps, grafting draws shared by ranks, a real
2-process gloo run launched through torch.distributed.run (as `torchrun` does) against 1 process with 2
accumulation steps, rank-0-only writes, resume of a killed 2-process run, and the CUDA-absent paths."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from spdc.cli.main import cli
from spdc.compression.grafting import Grafting
from spdc.compression.pruning.patterns import PATTERNS
from spdc.core.errors import CheckpointError
from spdc.recipe import GraftingConfig, PruningConfig, load_recipe
from spdc.runs.setup import RunOptions
from spdc.training.finetune import finetune
from spdc.training.loop import split_batch

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("rows", "world", "accumulation"), [(32, 2, 1), (32, 2, 2), (30, 2, 2), (3, 2, 2),
                                                             (17, 1, 4), (64, 4, 2)])
def test_every_row_of_a_batch_is_used_once_across_ranks(rows: int, world: int, accumulation: int) -> None:
    indices = list(range(100, 100 + rows))
    shares = [split_batch(indices, rank=rank, world_size=world, accumulation=accumulation) for rank in range(world)]
    used = [row for share in shares for _, part, weight in share if weight for row in part]
    assert sorted(used) == indices  # every row once (parts weighted 0 only fill in for empty ones)
    assert [micro for share in shares for micro, _, _ in share] == list(range(world * accumulation))
    total = sum(weight / world for share in shares for _, _, weight in share)
    assert total == pytest.approx(1.0)  # the weighted micro-batch means add up to the batch mean


def test_every_row_once_per_epoch_over_steps(tiny_recipe) -> None:
    from spdc.training.loop import Trainer

    class Stub:
        def __init__(self) -> None:
            self.seed, self._epoch_order = 7, None
            self.stage = type("S", (), {"index": 0})()
            self.steps_per_epoch = 16
            self.train_data = list(range(250))
            self.config = type("C", (), {"batch_size": 16})()

    stub = Stub()
    epoch = [row for step in range(stub.steps_per_epoch) for world_rank in range(2)
             for _, part, weight in split_batch(Trainer._batch_indices(stub, step), rank=world_rank, world_size=2,
                                                accumulation=2) if weight for row in part]
    assert sorted(epoch) == list(range(250))


def test_grafting_draws_agree_across_ranks_and_micro_batches() -> None:
    import torch.nn as nn

    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(6)])

    def grafting() -> Grafting:
        return Grafting(GraftingConfig(schedule="constant", p0=0.5), stage_steps=50, seed=3, stage_index=1,
                        student_layers=layers, teacher_layers=layers, layers_path="x")

    rank0, rank1 = grafting(), grafting()
    draws0 = [rank0.draw(step) for step in range(50)]
    assert draws0 == [rank1.draw(step) for step in range(50)]
    assert rank0.draw(49) is draws0[49]  # a second micro-batch of a step grafts the same layers
    assert len({tuple(draw) for draw in draws0}) > 1


def test_masks_are_a_function_of_the_weights() -> None:
    scores = {f"0.{role}": torch.rand(8, 8, generator=torch.Generator().manual_seed(1))
              for role in ("query", "key", "value", "attention_output", "intermediate", "output")}
    first = PATTERNS["unstructured"].targets(PruningConfig(final_sparsity=0.5))
    assert first == {"weights": 0.5}
    from spdc.compression.pruning.patterns import unstructured_masks

    assert all(torch.equal(a, b) for a, b in zip(unstructured_masks(scores, 0.5, scope="global").weight.values(),
                                                 unstructured_masks(scores, 0.5, scope="global").weight.values(),
                                                 strict=True))


def launch(recipe: Path, out: Path, *extra: str, processes: int = 2, command_name: str = "finetune"
           ) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "-m", "spdc", command_name, str(recipe), "--out", str(out), "--json", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def finished(process: subprocess.Popen[str]) -> dict:
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    return json.loads(stdout)  # only rank 0 printed


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model" / "model.safetensors"))


def test_two_processes_match_one_process_with_two_accumulation_steps(tiny_recipe, tmp_path: Path) -> None:
    recipe = tiny_recipe(epochs=2, eval_every_steps=8)
    same = ["threads=1", "precision=fp32"]  # one thread per process either way: the same GEMM reduction order
    distributed = finished(launch(recipe, tmp_path / "ddp", *(arg for item in same for arg in ("--set", item))))
    single = finetune(load_recipe(recipe, [*same, "teacher.finetune.gradient_accumulation_steps=2"]),
                      RunOptions(output_dir=tmp_path / "single", show_progress=False))
    assert distributed["environment"]["world_size"] == 2 and single.environment["world_size"] == 1
    a, b = weights(tmp_path / "ddp"), weights(tmp_path / "single")
    difference = max(float((a[key] - b[key]).abs().max()) for key in a)
    # Same rows, dropout masks, threads and weights: what remains is the order of floating-point sums (gloo's
    # all-reduce of each rank's gradient vs accumulating the two micro-batches in one process).
    assert difference <= 1e-6, difference
    assert distributed["dev"]["accuracy"] == pytest.approx(single.dev["accuracy"], abs=1e-6)
    assert distributed["best_step"] == single.best_step
    ddp_lines = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    single_lines = (tmp_path / "single" / "metrics.jsonl").read_text().splitlines()
    assert len(ddp_lines) == len(single_lines)  # rank 0 alone wrote: no record twice
    assert sorted(path.name for path in (tmp_path / "ddp").iterdir()) == sorted(
        path.name for path in (tmp_path / "single").iterdir())
    losses = [record["loss"] for record in map(json.loads, ddp_lines) if record["kind"] == "train"]
    single_losses = [record["loss"] for record in map(json.loads, single_lines) if record["kind"] == "train"]
    assert losses == pytest.approx(single_losses, rel=1e-4)  # logged over the whole batch, not rank 0's half


def test_a_killed_two_process_run_resumes_to_the_same_result(tiny_recipe, tmp_path: Path) -> None:
    recipe = tiny_recipe(epochs=12, eval_every_steps=8)
    reference = finished(launch(recipe, tmp_path / "whole"))
    process = launch(recipe, tmp_path / "killed")
    latest = tmp_path / "killed" / "checkpoints" / "latest"
    deadline = time.monotonic() + 120
    while not latest.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before it could be killed"
    workers = psutil.Process(process.pid).children(recursive=True)  # torchrun may start them in their own session
    os.killpg(process.pid, signal.SIGKILL)
    for worker in workers:
        with contextlib.suppress(psutil.NoSuchProcess):
            worker.kill()
    process.wait()
    psutil.wait_procs(workers, timeout=30)
    step = int(latest.read_text().strip().split("-")[1])
    assert step < reference["steps"]
    resumed = finished(launch(recipe, tmp_path / "killed", "--resume"))
    assert resumed["steps"] == reference["steps"] and resumed["dev"] == reference["dev"]
    a, b = weights(tmp_path / "whole"), weights(tmp_path / "killed")
    assert all(torch.equal(a[key], b[key]) for key in a)
    with pytest.raises(CheckpointError, match="written by a run of 2 process"):
        finetune(load_recipe(recipe), RunOptions(output_dir=tmp_path / "killed", resume=True, show_progress=False))


def test_accumulation_matches_the_whole_batch(tmp_path: Path, sst2_dir: Path) -> None:
    """Batch 32 in one piece vs 4 micro-batches of 8, on a model without dropout: the rows, weights and loss are
    the same. Each micro-batch is padded to its own longest row, so the matrix shapes, and with them the order of
    floating-point sums, differ from the whole batch's (outputs move by ~1e-7); AdamW at lr 2e-3 carries that
    through 16 steps to a few 1e-5 in the weights, hence the tolerance of 1e-4."""
    from .families_support import build_tiny_family

    model = build_tiny_family("bert", tmp_path / "nodrop", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: r\nseed: 5\ndevice: cpu\nprecision: fp32\n"
                      f"task: {{name: sst2, data_dir: {sst2_dir}, max_seq_length: 16}}\n"
                      f"teacher:\n  model: {model}\n  finetune: {{epochs: 2, learning_rate: 2.0e-3, batch_size: 32, "
                      "warmup_ratio: 0.0, train_eval_samples: 0}\n")
    whole = finetune(load_recipe(recipe), RunOptions(output_dir=tmp_path / "whole", show_progress=False))
    split = finetune(load_recipe(recipe, ["teacher.finetune.gradient_accumulation_steps=4"]),
                     RunOptions(output_dir=tmp_path / "split", show_progress=False))
    a, b = weights(tmp_path / "whole"), weights(tmp_path / "split")
    assert max(float((a[key] - b[key]).abs().max()) for key in a) <= 1e-4
    assert whole.dev["accuracy"] == split.dev["accuracy"] and whole.steps == split.steps == 16
    assert whole.dev["loss"] == pytest.approx(split.dev["loss"], rel=1e-5)


def test_cuda_absent_paths_say_so(tiny_recipe, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is present")
    runner = CliRunner()
    cuda = runner.invoke(cli, ["finetune", str(tiny_recipe()), "--set", "device=cuda", "--out", str(tmp_path / "c"),
                               "--json"])
    assert cuda.exit_code == 1 and "CUDA is not available" in json.loads(cuda.stdout)["error"]["message"]
    fp16 = runner.invoke(cli, ["finetune", str(tiny_recipe()), "--set", "precision=fp16", "--out",
                               str(tmp_path / "h"), "--json"])
    assert fp16.exit_code == 2 and "fp16" in json.loads(fp16.stdout)["error"]["message"]
    assert not (tmp_path / "c").exists() and not (tmp_path / "h").exists()


def test_two_four_masks_keep_two_of_every_four() -> None:
    from spdc.compression.pruning.patterns import semi_structured_masks

    scores = {"m": torch.rand(6, 16, generator=torch.Generator().manual_seed(0))}
    final = semi_structured_masks(scores, 0.5).weight["m"]
    assert torch.equal(final.view(6, 4, 4).sum(dim=-1), torch.full((6, 4), 2.0))
    kept = final.view(6, 4, 4).bool()
    grouped = scores["m"].view(6, 4, 4)
    assert torch.all(grouped.masked_fill(~kept, -1).max(dim=-1).values >= grouped.masked_fill(kept, 2).min(dim=-1)
                     .values)  # the two kept are a group's two largest
    partial = semi_structured_masks(scores, 0.25).weight["m"]
    assert partial.sum() == 72 and (partial.view(6, 4, 4).sum(dim=-1) >= 2).all()
    assert bool((final <= partial).all())  # pruning only goes further as the schedule advances


def test_two_four_compress_and_its_recipe_rules(compress_recipe, tmp_path: Path) -> None:
    from spdc.benchmark.models import is_two_four

    recipe = compress_recipe("kd", '{granularity: "2:4", num_updates: 3}')
    result = CliRunner().invoke(cli, ["compress", str(recipe), "--out", str(tmp_path / "run"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["structure"]["sparsity"]["overall"] == pytest.approx(0.5)
    model = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    matrices = [tensor for name, tensor in model.items() if "encoder.layer" in name and name.endswith("weight")
                and tensor.dim() == 2]
    assert matrices and all(is_two_four(matrix) for matrix in matrices)
    bench = CliRunner().invoke(cli, ["bench", str(tmp_path / "run"), "--semi-structured", "--provider", "cuda",
                                     "--batch-sizes", "1", "--seq-lens", "8", "--time-s", "0.01", "--warmup-s", "0",
                                     "--json"])
    assert bench.exit_code == 0, bench.output
    if not torch.cuda.is_available():
        assert any("2:4 sparse kernels need CUDA" in note for note in json.loads(bench.stdout)["notes"])
    bad = CliRunner().invoke(cli, ["recipe", "validate", str(recipe), "--set", "pruning.final_sparsity=0.9",
                                   "--json"])
    assert bad.exit_code == 2 and "2:4" in json.loads(bad.stdout)["error"]["message"]


def test_fp16_export_is_half_the_size_and_passes_its_parity(tiny_model_dir: Path, sst2_dir: Path,
                                                            tmp_path: Path) -> None:
    env = {"SPDC_DATA_DIR": str(sst2_dir.parent.parent)}
    runner = CliRunner()
    fp32 = runner.invoke(cli, ["export", str(tiny_model_dir), "--task", "sst2", "--out", str(tmp_path / "a"),
                               "--json"], env=env)
    fp16 = runner.invoke(cli, ["export", str(tiny_model_dir), "--task", "sst2", "--precision", "fp16", "--json"],
                         env=env)
    assert fp16.exit_code == 0, fp16.output
    manifest = json.loads(fp16.stdout)["manifest"]
    assert manifest["export"]["precision"] == "fp16" and manifest["status"] == "passed"
    assert manifest["parity"]["checks"][0]["limit"] == 5e-3
    assert manifest["sizes"]["onnx_bytes"] < 0.7 * json.loads(fp32.stdout)["manifest"]["sizes"]["onnx_bytes"]
    assert json.loads(fp16.stdout)["artifact"].endswith("-onnx-fp16")
    both = runner.invoke(cli, ["export", str(tiny_model_dir), "--no-validate", "--precision", "fp16", "--quantize",
                               "dynamic-int8", "--json"])
    assert both.exit_code == 2 and "exclude each other" in json.loads(both.stdout)["error"]["message"]


def test_a_two_process_oneshot_run_cuts_what_one_process_cuts(compress_recipe, tmp_path: Path) -> None:
    """Every rank scores the same rows and takes rank 0's scores: one cut, the same as a single process's."""
    recipe = compress_recipe("kd", "{granularity: structured, schedule: oneshot, scope: global, criterion: "
                                   "first_order, head_sparsity: 0.5, neuron_sparsity: 0.5, score_batches: 2}")
    summary = finished(launch(recipe, tmp_path / "ddp", "--set", "threads=1", command_name="compress"))
    single = CliRunner().invoke(cli, ["compress", str(recipe), "--out", str(tmp_path / "one"), "--set", "threads=1",
                                      "--json"])
    assert single.exit_code == 0, single.output
    assert summary["environment"]["world_size"] == 2
    cut = json.loads((tmp_path / "ddp" / "spdc_cut.json").read_text())
    assert cut["structure"] == json.loads((tmp_path / "one" / "spdc_cut.json").read_text())["structure"]
    assert sum(len(heads) for heads in cut["structure"]["heads"]) == 4
