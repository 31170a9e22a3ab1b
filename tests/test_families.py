"""Every supported family, as tiny random models: the spec resolves on a fresh model; fine-tuning; compress with
spd (grafting, hidden/attention/logit losses, structured pruning with uneven global scope), kd (unstructured) and
magnitude (structured); folding that spdc loads back with the masked model's logits; ONNX export with parity;
bench on onnxruntime and PyTorch; a regression task."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from spdc.cli.main import cli
from spdc.compression.folding import fold
from spdc.compression.recorder import OutputRecorder
from spdc.data.synthetic import model_input_names, synthetic_inputs
from spdc.models.families import FAMILIES, encoder_layers, family_of, linear_at, optional_module, prunable_linears
from spdc.models.loading import load_model, save_model
from spdc.models.structure import PrunedAttention, structure_of

from .conftest import build_tiny_family, write_sst2_like, write_stsb_like

STAGES = ("stages:\n"
          "  - {name: prune, prune: true, epochs: 1, learning_rate: 1.0e-3, batch_size: 16, logging_steps: 1,\n"
          "     train_eval_samples: 16, grafting: {schedule: linear, p0: 0.5}}\n"
          "  - {name: tune, epochs: 1, learning_rate: 5.0e-4, batch_size: 16, logging_steps: 2,\n"
          "     train_eval_samples: 16}\n")


def invoke(*args: str):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def write_recipe(path: Path, *, model: Path, task: str, data: Path, method: str, pruning: str,
                 extra: str = "") -> Path:
    path.write_text(f"name: {path.stem}\nseed: 1\ndevice: cpu\nprecision: fp32\n"
                    f"task: {{name: {task}, data_dir: {data}, max_seq_length: 16}}\nteacher: {{model: {model}}}\n"
                    f"method: {method}\npruning: {pruning}\n{extra}{STAGES}")
    return path


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_spec_resolves_on_a_fresh_model(model_type: str, tmp_path: Path) -> None:
    model = load_model(str(build_tiny_family(model_type, tmp_path / model_type)), None).model
    family = family_of(model)
    layers = encoder_layers(model, family)
    assert len(layers) == 2 and optional_module(model, family.embeddings[0]) is not None
    assert all(optional_module(model, path) is not None for path in family.head)
    for layer in layers:
        for role, spec in family.matrices.items():
            linear = linear_at(layer, spec.path)
            assert linear.out_features % spec.blocks == 0, role
        assert optional_module(layer, family.self_attention) is not None
        assert optional_module(layer, family.attention) is not None
        if family.headless == "norm":
            assert isinstance(optional_module(layer, family.attention_norm or ""), torch.nn.LayerNorm)
    matrices = prunable_linears(layers, family)
    assert set(matrices) == {f"{layer}.{role}" for layer in range(2) for role in family.roles}
    assert all(matrix.weight.shape[0] in (32, 64) for matrix in matrices.values())
    model.set_attn_implementation("eager")
    with OutputRecorder(family, [model], [layers]) as recorder, recorder.record() as recording, torch.no_grad():
        model(input_ids=torch.tensor([[2, 7, 8, 9, 3]]), **family.attention_kwargs)
    assert len(recording.hidden) == 3 and len(recording.attentions) == 2
    assert recording.attentions[0].shape == (1, 4, 5, 5)


def masked_logits_match_folded(run: Path) -> float:
    """Largest logit difference between the masked student and its folded copy, loaded back by spdc."""
    masked = load_model(str(run / "model"), None).model.eval()
    folded = load_model(str(run / "folded"), None).model.eval()
    feeds = synthetic_inputs(model_input_names(load_model(str(run / "folded"), None).tokenizer),
                             masked.config.vocab_size, batch=3, seq_len=12, seed=4)
    with torch.no_grad():
        tensors = {name: torch.from_numpy(array) for name, array in feeds.items()}
        return float((masked(**tensors).logits - folded(**tensors).logits).abs().max())


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_family_end_to_end(model_type: str, tmp_path: Path) -> None:
    data = write_sst2_like(tmp_path / "glue" / "SST-2", train_rows=64, dev_rows=32)
    base = build_tiny_family(model_type, tmp_path / "base")
    teacher_recipe = tmp_path / "teacher.yaml"
    teacher_recipe.write_text(
        f"name: teacher\nseed: 1\ndevice: cpu\ntask: {{name: sst2, data_dir: {data}, max_seq_length: 16}}\n"
        f"teacher:\n  model: {base}\n  finetune: {{epochs: 1, learning_rate: 2.0e-3, batch_size: 16, "
        "train_eval_samples: 16}\n")
    teacher = invoke("finetune", str(teacher_recipe), "--out", str(tmp_path / "teacher"))
    teacher_model = Path(teacher["model_dir"])

    spd = write_recipe(tmp_path / "spd.yaml", model=teacher_model, task="sst2", data=data, method="spd",
                       pruning="{granularity: structured, scope: global, head_sparsity: 0.5, neuron_sparsity: 0.5, "
                               "num_updates: 2}", extra="export: {fold: true}\n")
    summary = invoke("compress", str(spd), "--out", str(tmp_path / "spd"))
    train = [json.loads(line) for line in (tmp_path / "spd" / "metrics.jsonl").read_text().splitlines()]
    assert {"loss_hidden", "loss_attention", "loss_logits"} <= set(train[0]) and train[0]["p"] < 1
    kept = summary["fold"]["structure"]["kept_heads"]
    assert sum(kept) == 4 and summary["fold"]["parameters"]["after"] < summary["fold"]["parameters"]["before"]
    assert masked_logits_match_folded(tmp_path / "spd") <= 1e-5
    folded = load_model(str(tmp_path / "spd" / "folded"), None).model
    assert structure_of(folded.config) is not None and folded.config.model_type == model_type

    manifest = invoke("export", str(tmp_path / "spd"))["manifest"]
    assert manifest["status"] == "passed" and manifest["parity"]["max_abs_diff"] <= 1e-4
    bench = invoke("bench", str(tmp_path / "spd" / "onnx"), str(tmp_path / "spd" / "folded"), "--batch-sizes", "1",
                   "--seq-lens", "8", "--time-s", "0.02", "--warmup-s", "0", "--rounds", "1", "--threads", "1")
    assert [model["engine"] for model in bench["models"]] == ["ort", "torch"]

    kd = write_recipe(tmp_path / "kd.yaml", model=teacher_model, task="sst2", data=data, method="kd",
                      pruning="{final_sparsity: 0.5, num_updates: 2}")
    assert invoke("compress", str(kd), "--out", str(tmp_path / "kd"))["structure"]["sparsity"]["overall"] == \
        pytest.approx(0.5, abs=0.01)
    magnitude = write_recipe(tmp_path / "mag.yaml", model=teacher_model, task="sst2", data=data, method="magnitude",
                             pruning="{granularity: structured, head_sparsity: 0.5, neuron_sparsity: 0.5, "
                                     "num_updates: 2}")
    assert invoke("compress", str(magnitude), "--out", str(tmp_path / "mag"))["structure"]["sparsity"][
        "kept_heads"] == {"0": 2, "1": 2}


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_family_regression_and_headless_layers(model_type: str, tmp_path: Path) -> None:
    data = write_stsb_like(tmp_path / "glue" / "STS-B")
    model_dir = build_tiny_family(model_type, tmp_path / "reg", num_labels=1)
    recipe = write_recipe(tmp_path / "reg.yaml", model=model_dir, task="stsb", data=data, method="spd",
                          pruning="{granularity: structured, head_sparsity: 0.5, neuron_sparsity: 0.5, num_updates: 2}",
                          extra="export: {fold: true}\n")
    summary = invoke("compress", str(recipe), "--out", str(tmp_path / "run"))
    assert summary["main_metric"] == "pearson" and summary["fold"]["max_logit_difference"] <= 1e-5
    manifest = invoke("export", str(tmp_path / "run"))["manifest"]
    assert manifest["status"] == "passed" and manifest["parity"]["agreement"] is None

    loaded = load_model(str(model_dir), None)  # a layer that loses every head and every FFN neuron
    model = loaded.model.eval()
    family = family_of(model)
    with torch.no_grad():
        for matrix in prunable_linears(encoder_layers(model, family)[1:], family).values():
            matrix.weight.zero_()
            if matrix.bias is not None:
                matrix.bias.zero_()
    feeds = {name: torch.from_numpy(array) for name, array in synthetic_inputs(
        model_input_names(loaded.tokenizer), model.config.vocab_size, batch=2, seq_len=10, seed=2).items()}
    with torch.no_grad():
        expected = model(**feeds).logits
        structure = fold(model)
        assert structure is not None and structure.heads[1] == [] and structure.neurons[1] == 1
        assert isinstance(encoder_layers(model, family)[1].get_submodule(family.attention), PrunedAttention)
        torch.testing.assert_close(model(**feeds).logits, expected, atol=1e-5, rtol=0)
    save_model(model, loaded.tokenizer, tmp_path / "folded")
    reloaded = load_model(str(tmp_path / "folded"), None).model.eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**feeds).logits, expected, atol=1e-5, rtol=0)
