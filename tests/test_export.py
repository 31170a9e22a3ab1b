"""Folding, ONNX export, optimisation, int8 quantisation and the parity check, on tiny random BERTs (and on the
real MiniLM with real MRPC rows where present)."""

import copy
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from onnx import numpy_helper
from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

from spdc.cli.main import cli
from spdc.compression.folding import fold
from spdc.data.synthetic import synthetic_inputs
from spdc.deploy.build import ExportSource, export_artifact
from spdc.deploy.manifest import MANIFEST_FILE, ONNX_FILE, read_manifest
from spdc.deploy.optimize import HeadLayout
from spdc.deploy.sessions import create_session, session_feed
from spdc.models.loading import load_model, save_model
from spdc.models.structure import HeadlessAttention, structure_of
from spdc.recipe import ExportConfig, validate_task

from .conftest import real_glue_dir, requires_minilm, requires_real_glue

NAMES = ["input_ids", "attention_mask", "token_type_ids"]


def mask_units(model: torch.nn.Module, heads: list[list[int]], neuron_keep: float, seed: int) -> None:
    """Zero every unit that structured pruning would: rows, biases and output columns of the dropped heads and
    neurons (`heads[i]` lists the heads layer i keeps)."""
    generator = torch.Generator().manual_seed(seed)
    head_dim = model.config.hidden_size // model.config.num_attention_heads
    with torch.no_grad():
        for layer, kept in zip(model.bert.encoder.layer, heads, strict=True):
            dims = torch.zeros(model.config.hidden_size)
            for head in kept:
                dims[head * head_dim:(head + 1) * head_dim] = 1
            for linear in (layer.attention.self.query, layer.attention.self.key, layer.attention.self.value):
                linear.weight.mul_(dims[:, None])
                linear.bias.mul_(dims)
            layer.attention.output.dense.weight.mul_(dims[None, :])
            neurons = (torch.rand(model.config.intermediate_size, generator=generator) < neuron_keep).float()
            layer.intermediate.dense.weight.mul_(neurons[:, None])
            layer.intermediate.dense.bias.mul_(neurons)
            layer.output.dense.weight.mul_(neurons[None, :])


def random_bert(seed: int, layers: int = 3) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128, num_labels=3)
    model = BertForSequenceClassification(config).eval()
    with torch.no_grad():  # trained models have non-zero biases and norms: folding must carry them, not init values
        for name, parameter in model.named_parameters():
            if name.endswith("bias") or "LayerNorm" in name:
                parameter.add_(torch.randn_like(parameter) * 0.1)
    return model


def logits(model: torch.nn.Module, batch: int = 3, seq_len: int = 20, seed: int = 0) -> torch.Tensor:
    feeds = synthetic_inputs(NAMES, model.config.vocab_size, batch=batch, seq_len=seq_len, seed=seed)
    with torch.no_grad():
        return model(**{name: torch.from_numpy(array) for name, array in feeds.items()}).logits


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_folding_uneven_masks_is_exact_and_smaller(seed: int, tiny_model_dir: Path, tmp_path: Path) -> None:
    model = random_bert(seed)
    heads = [[0, 2], [], [1, 2, 3]]  # uneven, and layer 1 loses every head
    mask_units(model, heads, neuron_keep=0.4, seed=seed)
    expected = logits(model)
    before = sum(p.numel() for p in model.parameters())
    structure = fold(model)
    assert structure is not None and structure.heads == heads
    assert isinstance(model.bert.encoder.layer[1].attention, HeadlessAttention)
    assert model.bert.encoder.layer[0].attention.self.query.weight.shape == (16, 32)
    assert model.bert.encoder.layer[2].output.dense.weight.shape[1] == structure.neurons[2] < 64
    assert sum(p.numel() for p in model.parameters()) < before
    torch.testing.assert_close(logits(model), expected, atol=1e-5, rtol=0)
    # save / load round trip through spdc's loader
    tokenizer = load_model(str(tiny_model_dir), None).tokenizer
    save_model(model, tokenizer, tmp_path / "folded")
    assert json.loads((tmp_path / "folded" / "config.json").read_text())["spdc_folded"]["heads"] == heads
    loaded = load_model(str(tmp_path / "folded"), None).model
    torch.testing.assert_close(logits(loaded), expected, atol=1e-5, rtol=0)
    assert structure_of(loaded.config) == structure


def test_folding_again_keeps_original_head_indices() -> None:
    model = random_bert(3)
    mask_units(model, [[1, 3], [0, 1, 2, 3], [2]], neuron_keep=0.5, seed=3)
    fold(model)
    with torch.no_grad():  # now drop original head 3 of layer 0 (position 1 of the folded matrices)
        model.bert.encoder.layer[0].attention.output.dense.weight[:, 8:16] = 0
    expected = logits(model)
    structure = fold(model)
    assert structure is not None and structure.heads[0] == [1] and structure.heads[2] == [2]
    torch.testing.assert_close(logits(model), expected, atol=1e-5, rtol=0)


def test_dense_model_is_unchanged_and_stays_plain_loadable(tiny_model_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["fold", str(tiny_model_dir), "--out", str(tmp_path / "f"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["folded"] is False and report["parameters"]["before"] == report["parameters"]["after"]
    assert "spdc_folded" not in json.loads((tmp_path / "f" / "config.json").read_text())
    AutoModelForSequenceClassification.from_pretrained(tmp_path / "f")


def test_attention_shape_only_for_one_head_count() -> None:
    model = random_bert(0)
    dense = HeadLayout.of(model.config, None)
    assert dense == HeadLayout((4, 4, 4), 8) and dense.uniform() == 4
    mask_units(model, [[0, 1], [2, 3], [0, 3]], neuron_keep=1.0, seed=0)
    assert HeadLayout.of(model.config, fold(model)).uniform() == 2
    uneven = random_bert(1)
    mask_units(uneven, [[0, 1], [2], [0, 3]], neuron_keep=1.0, seed=0)
    layout = HeadLayout.of(uneven.config, fold(uneven))
    assert layout.uniform() is None and layout.heads == (2, 1, 2)


@pytest.fixture
def masked_model_dir(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """The tiny BERT (sst2 vocabulary) with uneven structured masks, saved like a compress student."""
    loaded = load_model(str(tiny_model_dir), None)
    mask_units(loaded.model, [[0, 3], [1]], neuron_keep=0.5, seed=5)
    save_model(loaded.model, loaded.tokenizer, tmp_path / "masked")
    return tmp_path / "masked"


@pytest.mark.parametrize("level", ["O0", "O1", "O2", "O3"])
def test_export_runs_in_onnxruntime_for_several_shapes(masked_model_dir: Path, tmp_path: Path, level: str) -> None:
    source = ExportSource.resolve(masked_model_dir)
    manifest = export_artifact(source, tmp_path / "a", ExportConfig(optimize=level), validate=False)
    assert manifest.status == "not-validated" and manifest.folded["heads"] == [[0, 3], [1]]
    assert manifest.sizes.parameters < manifest.sizes.source_parameters
    if level in ("O2", "O3"):
        assert manifest.export.fused_operators.get("SkipLayerNormalization", 0) > 0
        assert manifest.export.fused_operators.get("Attention") == 2  # uneven heads (2 and 1), fused per layer
    session = create_session(tmp_path / "a" / ONNX_FILE, threads=1)
    reference = load_model(str(masked_model_dir), None).model
    for batch, seq_len in ((1, 5), (4, 33), (7, 64)):
        feeds = synthetic_inputs(NAMES, reference.config.vocab_size, batch=batch, seq_len=seq_len, seed=seq_len)
        onnx_logits = session.run(["logits"], session_feed(session, feeds))[0]
        atol = 1e-3 if level == "O3" else 1e-4  # O3 approximates GELU
        np.testing.assert_allclose(onnx_logits, logits_of(reference, feeds), atol=atol, rtol=0)


def logits_of(model: torch.nn.Module, feeds: dict[str, np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        return model(**{name: torch.from_numpy(array) for name, array in feeds.items()}).logits.numpy()


def test_dense_export_fuses_attention(tiny_model_dir: Path, tmp_path: Path, sst2_dir: Path) -> None:
    source = ExportSource.resolve(tiny_model_dir)
    source.task = validate_task({"name": "sst2", "data_dir": str(sst2_dir)})
    manifest = export_artifact(source, tmp_path / "a", ExportConfig(), show_progress=False)
    assert manifest.export.fused_operators.get("Attention") == 2
    assert manifest.status == "passed" and manifest.parity.agreement == 1.0
    assert manifest.parity.max_abs_diff <= 1e-4 and manifest.parity.rows == 32
    for name in ("config.json", "tokenizer_config.json", ONNX_FILE, MANIFEST_FILE):
        assert (tmp_path / "a" / name).is_file()


def test_export_keeps_onnxruntime_log_chatter_off_the_terminal(tiny_model_dir: Path, tmp_path: Path,
                                                               capfd: pytest.CaptureFixture[str]) -> None:
    """onnxruntime's graph clean-up logs a warning per removed initializer from inside its optimizer: dozens of
    lines per export on the user's terminal unless spdc lowers its logger for the call."""
    export_artifact(ExportSource.resolve(tiny_model_dir), tmp_path / "a", ExportConfig(optimize="O2"), validate=False,
                    show_progress=False)
    assert "onnxruntime" not in capfd.readouterr().err


def test_dynamo_exporter_matches(masked_model_dir: Path, tmp_path: Path) -> None:
    manifest = export_artifact(ExportSource.resolve(masked_model_dir), tmp_path / "d",
                               ExportConfig(dynamo=True, opset=18, optimize="O0"), validate=False)
    assert manifest.export.exporter == "dynamo"
    session = create_session(tmp_path / "d" / ONNX_FILE, threads=1)
    reference = load_model(str(masked_model_dir), None).model
    feeds = synthetic_inputs(NAMES, reference.config.vocab_size, batch=3, seq_len=21)
    np.testing.assert_allclose(session.run(["logits"], session_feed(session, feeds))[0], logits_of(reference, feeds),
                               atol=1e-4, rtol=0)


def test_int8_export_is_smaller_and_checks_the_metric(masked_model_dir: Path, tmp_path: Path, sst2_dir: Path
                                                      ) -> None:
    result = CliRunner().invoke(cli, [
        "export", str(masked_model_dir), "--onnx", "--quantize", "dynamic-int8", "--task", "sst2",
        "--out", str(tmp_path / "q"), "--json",
    ], env={"SPDC_DATA_DIR": str(sst2_dir.parent.parent)})
    assert result.exit_code in (0, 7), result.output
    manifest = read_manifest(tmp_path / "q")
    assert manifest.export.precision == "int8"
    assert [check.name for check in manifest.parity.checks] == ["accuracy drop"]
    fp32 = export_artifact(ExportSource.resolve(masked_model_dir), tmp_path / "f", ExportConfig(), validate=False)
    assert manifest.sizes.onnx_bytes < fp32.sizes.onnx_bytes
    graph_ops = {node.op_type for node in onnx.load(str(tmp_path / "q" / ONNX_FILE)).graph.node}
    assert "DynamicQuantizeLinear" in graph_ops or "MatMulInteger" in graph_ops


def test_corrupted_weight_fails_parity_and_marks_the_artifact(tiny_model_dir: Path, tmp_path: Path,
                                                              sst2_dir: Path) -> None:
    env = {"SPDC_DATA_DIR": str(sst2_dir.parent.parent)}
    runner = CliRunner()
    result = runner.invoke(cli, ["export", str(tiny_model_dir), "--task", "sst2", "--out", str(tmp_path / "a"),
                                 "--json"], env=env)
    assert result.exit_code == 0, result.output
    path = tmp_path / "a" / ONNX_FILE
    model = onnx.load(str(path))
    largest = max(model.graph.initializer, key=lambda tensor: int(np.prod(tensor.dims)))
    array = numpy_helper.to_array(largest).copy()
    array += np.random.default_rng(0).normal(0.0, 0.5, array.shape).astype(array.dtype)
    largest.CopyFrom(numpy_helper.from_array(array, largest.name))
    onnx.save(model, str(path))
    result = runner.invoke(cli, ["validate", str(tmp_path / "a"), "--json"], env=env)
    assert result.exit_code == 7, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is False and not report["parity"]["checks"][0]["passed"]
    assert read_manifest(tmp_path / "a").status == "failed"
    result = runner.invoke(cli, ["validate", str(tmp_path / "a")], env=env)
    assert result.exit_code == 7 and "FAIL" in result.output


def test_cli_errors(tiny_model_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["export", str(tiny_model_dir), "--out", str(tmp_path / "x")])
    assert result.exit_code == 6 and "--task" in result.output
    assert not (tmp_path / "x").exists()
    result = runner.invoke(cli, ["validate", str(tmp_path)])
    assert result.exit_code == 6 and "not an spdc export artifact" in result.output
    result = runner.invoke(cli, ["fold", str(tmp_path / "missing")])
    assert result.exit_code == 6
    result = runner.invoke(cli, ["export", str(tiny_model_dir), "--optimize", "O9"])
    assert result.exit_code == 2


def test_compress_folds_and_exports_a_run(compress_recipe, tmp_path: Path) -> None:
    recipe = compress_recipe("spd", "{granularity: structured, head_sparsity: 0.5, neuron_sparsity: 0.5, "
                                    "num_updates: 2}", extra="export: {fold: true}\n")
    runner = CliRunner()
    result = runner.invoke(cli, ["compress", str(recipe), "--out", str(tmp_path / "run"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["fold"]["structure"]["kept_heads"] == [2, 2]
    assert summary["fold"]["max_logit_difference"] <= 1e-5
    assert structure_of(load_model(str(tmp_path / "run" / "folded"), None).model.config) is not None
    result = runner.invoke(cli, ["export", str(tmp_path / "run"), "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)["manifest"]
    assert manifest["source"]["kind"] == "run" and manifest["status"] == "passed"
    assert manifest["export"]["fused_operators"].get("Attention") == 2  # 2 heads in every layer: fusable
    assert (tmp_path / "run" / "onnx" / ONNX_FILE).is_file()


@requires_minilm
@requires_real_glue
def test_folding_real_minilm_on_real_mrpc_rows() -> None:
    task = validate_task({"name": "mrpc", "data_dir": str(real_glue_dir() / "MRPC"), "max_eval_samples": 24})
    from spdc.data.batching import encode
    from spdc.data.sources import load_split, task_spec
    from spdc.heads import HEADS

    loaded = load_model("minilm", task_spec(task))  # the sentence encoder has no head: the task asks a new one
    model = loaded.model.eval()
    heads = [[h for h in range(12) if (h + layer) % 3] for layer in range(6)]  # 8 of 12 heads, shifting
    heads[2] = [0, 5, 7]
    mask_units(model, heads, neuron_keep=0.5, seed=0)
    folded = copy.deepcopy(model)
    assert fold(folded) is not None
    rows = encode(load_split(task, "dev").examples, loaded.tokenizer, 128)
    batch = HEADS["sequence-classification"].collator(loaded.tokenizer)([rows[i] for i in range(len(rows))])
    batch.pop("labels")
    with torch.no_grad():
        torch.testing.assert_close(folded(**batch).logits, model(**batch).logits, atol=1e-5, rtol=0)
