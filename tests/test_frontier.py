"""The frontier work: precision resolution and bf16 training, the held-out validation split, global-scope
pruning that empties a layer, and the accuracy-speed frontier report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import spdc.runs.runtime as runtime
from spdc.cli.main import cli
from spdc.compression.folding import fold
from spdc.compression.pruning.pruner import Pruner
from spdc.core.cpu import CpuInfo
from spdc.data.examples import Example, SplitData, hold_out
from spdc.models.families import encoder_layers, family_of, prunable_linears
from spdc.models.shape import EncoderShape
from spdc.recipe import PruningConfig, load_recipe
from spdc.reporting.frontier import FrontierPoint, pareto
from spdc.runs.directory import RunDirectory
from spdc.runs.records import EvalRecord
from spdc.runs.setup import RunOptions
from spdc.training.finetune import finetune

from .conftest import killed_at_step
from .test_export import NAMES, random_bert
from .test_training import run

PNG = b"\x89PNG\r\n\x1a\n"


def cpu(bf16: bool) -> CpuInfo:
    features = {"AVX2": True, "AVX-512": bf16, "AVX512-VNNI": bf16, "AVX-VNNI": False, "AMX-INT8": False,
                "AMX-BF16": False, "AVX512-BF16": bf16}
    return CpuInfo(model="test cpu", logical_cores=2, usable_cores=2, features=features)


@pytest.mark.parametrize(("bf16_cpu", "choice", "expected"), [
    (True, "auto", "bf16"), (False, "auto", "fp32"), (False, "bf16", "bf16"), (True, "fp32", "fp32"),
])
def test_precision_auto_picks_bf16_only_where_the_cpu_has_it(bf16_cpu: bool, choice: str, expected: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "cpu_info", lambda: cpu(bf16_cpu))
    assert runtime.resolve_precision(choice, torch.device("cpu")) == expected


@pytest.mark.parametrize(("supported", "expected"), [(True, "bf16"), (False, "fp16")])
def test_precision_auto_on_cuda_asks_the_gpu(supported: bool, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: supported)
    assert runtime.resolve_precision("auto", torch.device("cuda")) == expected


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_in_each_precision_lowers_the_loss_and_records_it(precision: str, tiny_recipe, tmp_path: Path
                                                                   ) -> None:
    summary = run(tiny_recipe(epochs=3), [f"precision={precision}"], output_dir=tmp_path / precision)
    assert summary.environment["precision"] == precision and summary.environment["precision_requested"] == precision
    environment = json.loads((tmp_path / precision / "environment.json").read_text())
    assert environment["precision"] == precision and environment["cpu_model"]
    losses = [record.loss for record in RunDirectory(tmp_path / precision).read_metrics() if record.kind == "train"]
    assert losses[-1] < losses[0]


def test_bf16_resume_is_exact(tiny_recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:

    recipe = load_recipe(tiny_recipe(epochs=2, eval_every_steps=4), ["precision=bf16"])
    reference = finetune(recipe, RunOptions(output_dir=tmp_path / "a", show_progress=False))
    killed_at_step(monkeypatch, 10,
                   lambda: finetune(recipe, RunOptions(output_dir=tmp_path / "b", show_progress=False)))
    resumed = finetune(recipe, RunOptions(output_dir=tmp_path / "b", resume=True, show_progress=False))
    a, b = load_file(str(tmp_path / "a" / "model" / "model.safetensors")), load_file(
        str(tmp_path / "b" / "model" / "model.safetensors"))
    assert all(torch.equal(a[key], b[key]) for key in a) and resumed.dev == reference.dev


def test_hold_out_is_fixed_and_disjoint() -> None:
    split = SplitData([Example(f"row {index}", None, index % 2) for index in range(50)], "f.tsv")
    train, validation = hold_out(split, 0.2)
    again_train, again_validation = hold_out(split, 0.2)
    assert len(validation.examples) == 10 and len(train.examples) == 40
    assert validation.examples == again_validation.examples and train.examples == again_train.examples
    assert not {e.text for e in train.examples} & {e.text for e in validation.examples}


def test_best_checkpoint_is_selected_on_validation_not_dev(tiny_recipe, tmp_path: Path) -> None:
    summary = run(tiny_recipe(epochs=3, eval_every_steps=2), ["task.validation_fraction=0.25"],
                  output_dir=tmp_path / "v")
    assert summary.selected_on == "validation" and summary.data["validation"].rows == 64
    assert summary.data["train"].rows == 192
    evals = [r for r in RunDirectory(tmp_path / "v").read_metrics() if isinstance(r, EvalRecord)]
    assert all(r.validation is not None for r in evals)
    best = max(evals, key=lambda r: (r.validation or {})["accuracy"])  # the first best, as the loop keeps it
    first_best = next(r for r in evals if (r.validation or {})["accuracy"] == (best.validation or {})["accuracy"])
    assert summary.best_step == first_best.step and summary.validation == first_best.validation
    assert summary.dev == first_best.dev
    unselected = run(tiny_recipe(epochs=1), output_dir=tmp_path / "d")
    assert unselected.selected_on == "dev" and unselected.validation is None


def test_global_scope_can_empty_a_layer_and_the_folded_model_matches() -> None:
    model = random_bert(5, layers=3).eval()
    with torch.no_grad():  # layer 1 matters least by magnitude: global ranking takes all of its units first
        for parameter in model.bert.encoder.layer[1].parameters():
            if parameter.dim() == 2:
                parameter.mul_(1e-3)
    family = family_of(model)
    linears = prunable_linears(encoder_layers(model, family), family)
    config = PruningConfig(granularity="structured", scope="global", schedule="oneshot", head_sparsity=0.34,
                           neuron_sparsity=0.34, num_updates=1)
    pruner = Pruner(config, linears, EncoderShape.of(model), total_steps=1)
    pruner.after_step(1)
    kept = pruner.sparsity_report()
    assert kept["kept_heads"][1] == 0 and kept["kept_neurons"][1] == 0  # the whole attention and FFN of layer 1
    from spdc.data.synthetic import synthetic_inputs

    feeds = {name: torch.from_numpy(array) for name, array in synthetic_inputs(NAMES, 60, batch=3, seq_len=17).items()}
    with torch.no_grad():
        masked = model(**feeds).logits
        structure = fold(model)
        assert structure is not None and structure.heads[1] == [] and structure.neurons[1] == 1
        torch.testing.assert_close(model(**feeds).logits, masked, atol=1e-5, rtol=0)


def test_pareto_front_on_a_hand_made_set() -> None:
    def point(label: str, metric: float, speedup: float) -> FrontierPoint:
        return FrontierPoint(label=label, run=label, precision="fp32", metric=metric, speedup=speedup, status="passed")

    points = [point("teacher", 0.88, 1.0), point("a", 0.87, 2.0), point("b", 0.86, 1.9), point("c", 0.80, 6.0),
              point("d", 0.87, 2.0), point("e", 0.70, 5.0), point("f", 0.89, 0.9)]
    assert [p.label for p in pareto(points)] == ["f", "teacher", "a", "d", "c"]  # b, e dominated; a = d tie


def test_frontier_report_from_a_bench_document(compress_recipe, tiny_model_dir: Path, sst2_dir: Path,
                                               tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"SPDC_DATA_DIR": str(sst2_dir.parent.parent)}
    recipe = compress_recipe("spd", "{granularity: structured, head_sparsity: 0.5, neuron_sparsity: 0.5, "
                                    "num_updates: 2}")
    assert runner.invoke(cli, ["compress", str(recipe), "--out", str(tmp_path / "s")]).exit_code == 0
    artifacts = [tmp_path / "teacher-fp32", tmp_path / "s" / "onnx", tmp_path / "s" / "onnx-int8"]
    assert runner.invoke(cli, ["export", str(tiny_model_dir), "--task", "sst2", "--out", str(artifacts[0])],
                         env=env).exit_code == 0
    assert runner.invoke(cli, ["export", str(tmp_path / "s")]).exit_code == 0
    assert runner.invoke(cli, ["export", str(tmp_path / "s"), "--quantize", "dynamic-int8"]).exit_code == 0
    bench = runner.invoke(cli, ["bench", *map(str, artifacts), "--batch-sizes", "1,4", "--seq-lens", "8",
                                "--time-s", "0.02", "--warmup-s", "0", "--threads", "1", "--json"])
    assert bench.exit_code == 0, bench.output
    (tmp_path / "bench.json").write_text(bench.stdout)
    result = runner.invoke(cli, ["report", "--frontier", str(tmp_path / "bench.json"), "--cells", "1x8,4x8",
                                 "--out", str(tmp_path / "frontier.md"), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document["points"]) == {"b1 s8", "b4 s8"} and len(document["points"]["b1 s8"]) == 3
    teacher = next(p for p in document["points"]["b1 s8"] if p["label"] == "teacher-fp32")
    assert teacher["speedup"] == pytest.approx(1.0) and {p["precision"] for p in document["points"]["b4 s8"]} == {
        "fp32", "int8"}
    assert any(p["pareto"] for p in document["points"]["b1 s8"])
    assert (tmp_path / "frontier.png").read_bytes()[:8] == PNG
    view = (tmp_path / "frontier.md").read_text()
    assert "| teacher-fp32 | fp32 |" in view
    assert "- ISA: " in view and "- onnxruntime " in view  # the numbers name the machine and versions
    command = next(line for line in view.splitlines() if line.startswith("Command: "))  # and how to regenerate
    assert "spdc report --frontier" in command and "--cells 1x8,4x8" in command and "bench.json" in command
    only_student = runner.invoke(cli, ["report", str(tmp_path / "s"), "--frontier", str(tmp_path / "bench.json"),
                                       "--cells", "1x8", "--out", str(tmp_path / "f2.md"), "--json"])
    assert len(json.loads(only_student.stdout)["points"]["b1 s8"]) == 3  # the baseline and the run's two
