"""Every artifact carries a model card (README.md, Hugging Face format) regenerated from its records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from spdc.deploy.manifest import read_manifest
from spdc.deploy.model_card import BENCH_FILE, CARD_FILE, read_front_matter

from .test_integrity import finished_run  # noqa: F401 (a module fixture: one finished run with onnx/)
from .test_reliability import invoke


def test_the_card_matches_the_manifest_and_the_run(finished_run: Path, tmp_path: Path) -> None:  # noqa: F811
    artifact = finished_run / "onnx"
    manifest = read_manifest(artifact)
    text = (artifact / CARD_FILE).read_text(encoding="utf-8")
    header = read_front_matter(text)
    summary = json.loads((finished_run / "summary.json").read_text())
    assert header["base_model"] == summary["model"] and "spdc" in header["tags"]
    assert header["library_name"] == "onnxruntime" and header["pipeline_tag"] == "text-classification"
    result = header["model-index"][0]["results"][0]
    assert result["dataset"]["config"] == "sst2" and result["dataset"]["split"] == manifest.parity.split
    assert {metric["type"]: metric["value"] for metric in result["metrics"]} == {
        name: round(value, 4) for name, value in manifest.parity.metrics_onnx.items()}
    assert header["model-index"][0]["name"] == f"{finished_run.name}-onnx"
    assert f"**{manifest.status}**" in text and f"{summary['data']['train']['rows']:,}" in text
    assert "majority baseline" in text and "No bench yet" in text


def test_validate_and_bench_regenerate_the_card(finished_run: Path, tmp_path: Path) -> None:  # noqa: F811
    run = tmp_path / "run"
    shutil.copytree(finished_run, run, symlinks=True)
    artifact = run / "onnx"
    bench = invoke("bench", str(artifact), "--batch-sizes", "1", "--seq-lens", "8", "--time-s", "0.02", "--rounds",
                   "1", "--json")
    assert bench.exit_code == 0, bench.output
    document = json.loads(bench.stdout)
    recorded = json.loads((artifact / BENCH_FILE).read_text())
    assert recorded["machine"]["cpu_model"] == document["machine"]["cpu_model"]
    assert [cell["batch"] for cell in recorded["cells"]] == [1]
    text = (artifact / CARD_FILE).read_text()
    assert "## Speed" in text and "| 1 x 8 |" in text and document["machine"]["onnxruntime"] in text
    header_before = read_front_matter(text)
    assert invoke("validate", str(artifact), "--task", "sst2", "--data-dir", str(finished_run.parent / "SST-2"),
                  "--json").exit_code == 0
    assert read_front_matter((artifact / CARD_FILE).read_text()) == header_before  # same verdict, same card head
    assert "| 1 x 8 |" in (artifact / CARD_FILE).read_text()  # the bench is kept across a validate
    assert invoke("finetune", str(run / "recipe.yaml"), "--out", str(run), "--overwrite").exit_code == 0  # recorded
