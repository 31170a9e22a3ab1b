"""Deployment: the bench names the machine; int8 that passes parity (fallback, static int8); uneven heads keep
fused attention per layer; sparse storage of pruned matrices; regression parity. Tiny random models, no timing
asserts."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from transformers import BertConfig, BertForSequenceClassification

from spdc.benchmark.machine import machine_header
from spdc.cli.main import cli
from spdc.core.cpu import ISA_FLAGS, parse_cpuinfo
from spdc.deploy.build import ExportSource, export_artifact
from spdc.deploy.manifest import ONNX_FILE, read_manifest
from spdc.deploy.sessions import create_session, session_feed
from spdc.models.loading import load_model, save_model
from spdc.recipe import ExportConfig, validate_task

from .conftest import FILLER, NEGATIVE, POSITIVE
from .test_export import NAMES, logits_of, mask_units, random_bert

PNG = b"\x89PNG\r\n\x1a\n"


def invoke(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), env=env)


def test_cpuinfo_parsing_finds_the_model_and_features() -> None:
    text = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
            "flags\t\t: fpu sse avx2 avx512f avx512_vnni amx_int8 amx_bf16 avx512_bf16\n\nprocessor\t: 1\n"
            "model name\t: other\nflags\t\t: fpu\n")
    model, flags = parse_cpuinfo(text)
    assert model == "Intel(R) Xeon(R) Platinum 8480+" and {"amx_int8", "avx512_vnni"} <= flags
    assert "avx_vnni" not in flags and set(ISA_FLAGS) >= {"avx2", "amx_bf16"}


def test_bench_document_names_the_machine(tiny_model_dir: Path, tmp_path: Path) -> None:
    artifact = tmp_path / "a"
    assert invoke("export", str(tiny_model_dir), "--no-validate", "--out", str(artifact)).exit_code == 0
    result = invoke("bench", str(artifact), "--batch-sizes", "1", "--seq-lens", "8", "--time-s", "0.02", "--warmup-s",
                    "0", "--threads", "1", "--json")
    assert result.exit_code == 0, result.output
    machine = json.loads(result.stdout)["machine"]
    assert machine["cpu_model"] and machine["cpu_count"] >= 1 and machine["cpu_usable"] >= 1
    assert set(machine["isa"]) == set(ISA_FLAGS.values()) and all(isinstance(v, bool) for v in machine["isa"].values())
    assert machine["execution_provider"] == "CPUExecutionProvider"
    assert machine["ort_graph_optimization"] == "ORT_ENABLE_ALL" and machine["ort_intra_op_threads"] == 1
    assert machine["torch_threads"] >= 1 and machine["onnxruntime"]
    model = json.loads(result.stdout)["models"][0]
    assert model["load_seconds"] > 0
    table = invoke("bench", str(artifact), "--batch-sizes", "1", "--seq-lens", "8", "--time-s", "0.02",
                   "--warmup-s", "0", "--threads", "1")
    assert "machine: " in table.output and "ISA: " in table.output and "CPUExecutionProvider" in table.output
    from spdc.benchmark.document import BenchDocument

    assert machine_header(BenchDocument.model_validate(json.loads(result.stdout)).machine).startswith("machine:")


# --- uneven heads keep fused attention --------------------------------------------------------------------------

def attention_heads(path: Path) -> list[int]:
    graph = onnx.load(str(path)).graph
    return [next(attribute.i for attribute in node.attribute if attribute.name == "num_heads")
            for node in graph.node if node.op_type == "Attention"]


@pytest.mark.parametrize("heads", [[[0, 2], [], [1, 2, 3]], [[0, 1, 2, 3], [3], [1, 2]]])
def test_uneven_heads_fuse_one_attention_per_layer(heads: list[list[int]], tiny_model_dir: Path,
                                                   tmp_path: Path) -> None:
    model = random_bert(7)
    mask_units(model, heads, neuron_keep=0.5, seed=7)
    tokenizer = load_model(str(tiny_model_dir), None).tokenizer
    save_model(model, tokenizer, tmp_path / "masked")
    source = ExportSource.resolve(tmp_path / "masked")
    fused = export_artifact(source, tmp_path / "fused", ExportConfig(), validate=False)
    plain = export_artifact(source, tmp_path / "plain", ExportConfig(optimize="O0"), validate=False)
    assert attention_heads(tmp_path / "fused" / ONNX_FILE) == [len(kept) for kept in heads if kept]
    assert fused.export.fused_operators["Attention"] == sum(1 for kept in heads if kept)
    assert not any("unfused" in note for note in fused.export.notes)
    fused_session = create_session(tmp_path / "fused" / ONNX_FILE, threads=1)
    plain_session = create_session(tmp_path / "plain" / ONNX_FILE, threads=1)
    from spdc.data.synthetic import synthetic_inputs

    for batch, seq_len in ((1, 7), (3, 40)):
        feeds = synthetic_inputs(NAMES, model.config.vocab_size, batch=batch, seq_len=seq_len, seed=seq_len)
        np.testing.assert_allclose(fused_session.run(["logits"], session_feed(fused_session, feeds))[0],
                                   plain_session.run(["logits"], session_feed(plain_session, feeds))[0],
                                   atol=1e-4, rtol=0)
    assert plain.export.fused_operators == {}


# --- sparse storage ---------------------------------------------------------------------------------------------

@pytest.fixture
def sparse_model_dir(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """The tiny BERT with 90% of every encoder matrix's weights exactly zero, like an unstructured student."""
    loaded = load_model(str(tiny_model_dir), None)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in loaded.model.named_parameters():
            if "encoder" in name and name.endswith("weight") and parameter.dim() == 2:
                parameter.mul_((torch.rand(parameter.shape, generator=generator) >= 0.9).float())
    save_model(loaded.model, loaded.tokenizer, tmp_path / "sparse90")
    return tmp_path / "sparse90"


@pytest.mark.parametrize("quantize", ["none", "dynamic-int8"])
def test_sparse_storage_is_smaller_and_gives_the_same_logits(quantize: str, sparse_model_dir: Path,
                                                             tmp_path: Path) -> None:
    source = ExportSource.resolve(sparse_model_dir)
    settings = ExportConfig(quantize=quantize, optimize="O1")
    sparse = export_artifact(source, tmp_path / "sparse", settings, validate=False)
    dense = export_artifact(source, tmp_path / "dense", settings.model_copy(update={"sparse": "never"}),
                            validate=False)
    assert sparse.export.sparse is not None and sparse.export.sparse.matrices >= 12  # 6 per layer, 2 layers
    assert sparse.sizes.onnx_bytes < dense.sizes.onnx_bytes and dense.export.sparse is None
    assert len(onnx.load(str(tmp_path / "sparse" / ONNX_FILE)).graph.sparse_initializer) == \
        sparse.export.sparse.matrices
    from spdc.data.synthetic import synthetic_inputs

    feeds = synthetic_inputs(NAMES, 24, batch=3, seq_len=12, seed=3)
    outputs = [create_session(tmp_path / name / ONNX_FILE, threads=1) for name in ("sparse", "dense")]
    results = [session.run(["logits"], session_feed(session, feeds))[0] for session in outputs]
    np.testing.assert_array_equal(results[0], results[1])  # densified at load: the same computation


# --- int8 that passes parity ------------------------------------------------------------------------------------

@pytest.fixture
def stsb_like(tmp_path: Path, tiny_model_dir: Path) -> tuple[Path, Path]:
    """A tiny regression model on the sst2 vocabulary and a GLUE-layout STS-B folder it can read."""
    rng = random.Random(0)
    folder = tmp_path / "glue" / "STS-B"
    folder.mkdir(parents=True)
    for name, count in (("train.tsv", 64), ("dev.tsv", 48)):
        lines = ["sentence1\tsentence2\tscore"]
        for _ in range(count):
            score = rng.random() * 5
            words = POSITIVE if score > 2.5 else NEGATIVE
            first = f"{' '.join(rng.sample(FILLER, 3))} {rng.choice(words)}"
            lines.append(f"{first}\t{rng.choice(words)} movie\t{score:.2f}")
        (folder / name).write_text("\n".join(lines) + "\n")
    torch.manual_seed(3)
    tokenizer = load_model(str(tiny_model_dir), None).tokenizer
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, num_labels=1, problem_type="regression",
                        initializer_range=0.5)  # outputs that depend on the input (std ~1), so Pearson means something
    save_model(BertForSequenceClassification(config), tokenizer, tmp_path / "regressor")
    return tmp_path / "regressor", folder


def test_regression_parity_in_fp32_and_int8(stsb_like: tuple[Path, Path], tmp_path: Path) -> None:
    model_dir, data = stsb_like
    env = {"SPDC_DATA_DIR": str(data.parent.parent)}
    fp32 = invoke("export", str(model_dir), "--task", "stsb", "--out", str(tmp_path / "fp32"), "--json", env=env)
    assert fp32.exit_code == 0, fp32.output
    parity = json.loads(fp32.stdout)["manifest"]["parity"]
    assert parity["agreement"] is None and [c["name"] for c in parity["checks"]] == ["max |logit diff|"]
    int8 = invoke("export", str(model_dir), "--task", "stsb", "--quantize", "dynamic-int8", "--no-int8-fallback",
                  "--max-metric-drop", "1", "--out", str(tmp_path / "int8"), "--json", env=env)
    assert int8.exit_code == 0, int8.output
    checks = json.loads(int8.stdout)["manifest"]["parity"]["checks"]
    assert [check["name"] for check in checks] == ["pearson drop"] and checks[0]["passed"]


def test_int8_fallback_turns_a_failing_threshold_into_a_passing_artifact(stsb_like: tuple[Path, Path],
                                                                         tmp_path: Path) -> None:
    model_dir, data = stsb_like
    env = {"SPDC_DATA_DIR": str(data.parent.parent)}
    limit = "0.000001"  # any int8 rounding moves a regression's Pearson by more than this
    without = invoke("export", str(model_dir), "--task", "stsb", "--quantize", "dynamic-int8", "--no-int8-fallback",
                     "--max-metric-drop", limit, "--out", str(tmp_path / "plain-int8"), "--json", env=env)
    assert without.exit_code == 7  # the threshold fails with every operator in int8
    result = invoke("export", str(model_dir), "--task", "stsb", "--quantize", "dynamic-int8", "--max-metric-drop",
                    limit, "--out", str(tmp_path / "int8"), "--json", env=env)
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)["manifest"]
    int8 = manifest["export"]["int8"]
    assert manifest["status"] == "passed" and int8["fp32_operators"]
    assert int8["initial_drop"] > float(limit) >= int8["final_drop"]
    assert int8["sensitivity"] and "kept the" in int8["reason"]
    graph = onnx.load(str(tmp_path / "int8" / ONNX_FILE)).graph
    remaining = {node.name for node in graph.node}
    assert set(int8["fp32_operators"]) <= remaining  # the excluded operators are still there, unquantised
    text = invoke("export", str(model_dir), "--task", "stsb", "--quantize", "dynamic-int8", "--max-metric-drop",
                  limit, "--out", str(tmp_path / "int8"), env=env)
    assert "kept in fp32:" in text.output


def test_static_int8_runs_and_passes_parity(tiny_model_dir: Path, sst2_dir: Path, tmp_path: Path) -> None:
    source = ExportSource.resolve(tiny_model_dir)
    source.task = validate_task({"name": "sst2", "data_dir": str(sst2_dir)})
    manifest = export_artifact(source, tmp_path / "static", ExportConfig(quantize="static-int8"),
                               show_progress=False)
    assert manifest.status == "passed" and manifest.export.int8 is not None
    assert manifest.export.int8.mode == "static" and manifest.export.precision == "int8"
    ops = {node.op_type for node in onnx.load(str(tmp_path / "static" / ONNX_FILE)).graph.node}
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    assert read_manifest(tmp_path / "static").parity is not None
    default = ExportSource.resolve(tiny_model_dir).default_output(ExportConfig(quantize="static-int8"))
    assert default.name.endswith("-onnx-int8-static")


def test_int8_variants_build_and_record_their_settings(tiny_model_dir: Path, tmp_path: Path) -> None:
    source = ExportSource.resolve(tiny_model_dir)
    for name, settings in {
        "per-tensor": ExportConfig(quantize="dynamic-int8", int8_per_channel=False),
        "plain-graph": ExportConfig(quantize="dynamic-int8", int8_after_fusion=False),
        "embeddings": ExportConfig(quantize="dynamic-int8", int8_embeddings=True),
    }.items():
        manifest = export_artifact(source, tmp_path / name, settings, validate=False)
        record = manifest.export.int8
        assert record is not None and record.per_channel == settings.int8_per_channel
        assert record.after_fusion == settings.int8_after_fusion and record.embeddings == settings.int8_embeddings
        ops = {node.op_type for node in onnx.load(str(tmp_path / name / ONNX_FILE)).graph.node}
        assert ("QAttention" in ops) == settings.int8_after_fusion  # fused attention is quantised as a whole
        assert ("QEmbedLayerNormalization" in ops) == settings.int8_embeddings
    reference = load_model(str(tiny_model_dir), None).model
    from spdc.data.synthetic import synthetic_inputs

    feeds = synthetic_inputs(NAMES, reference.config.vocab_size, batch=2, seq_len=9)
    session = create_session(tmp_path / "per-tensor" / ONNX_FILE, threads=1)
    assert np.abs(session.run(["logits"], session_feed(session, feeds))[0] - logits_of(reference, feeds)).max() < 0.5
