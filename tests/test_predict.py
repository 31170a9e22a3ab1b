"""`spdc predict`: batch inference with an exported artifact over a file, as a deployment pipeline runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import spdc
from spdc.core.errors import UsageError

from .test_reliability import expect_error, invoke, one_json_document


@pytest.fixture(scope="module")
def sst2_artifact(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("predict") / "artifact"
    result = invoke("export", str(tiny_model_dir), "--task", "sst2", "--no-validate", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    return out


def rows_file(tmp_path: Path, lines: list[str], name: str = "in.tsv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_predicts_every_row_with_its_number_label_and_scores(sst2_artifact: Path, tmp_path: Path) -> None:
    source = rows_file(tmp_path, ["sentence", "the movie was good", "", "a dull story", "really superb acting"])
    out = tmp_path / "out.jsonl"
    result = invoke("predict", str(sst2_artifact), "--input", str(source), "--output", str(out), "--batch-size", "2",
                    "--json")
    assert result.exit_code == 0, result.output
    summary = one_json_document(result)
    assert summary["predicted"] == 3 and summary["skipped"] == 0 and summary["rows_per_second"] > 0
    predictions = [json.loads(line) for line in out.read_text().splitlines()]
    assert [p["row"] for p in predictions] == [2, 4, 5]  # file lines: the blank line 3 is no row
    for prediction in predictions:
        assert prediction["label"] in ("negative", "positive")  # the task's label names
        assert sum(prediction["scores"].values()) == pytest.approx(1.0, abs=1e-5)
        assert prediction["label"] == max(prediction["scores"], key=prediction["scores"].get)
    jsonl = rows_file(tmp_path, [json.dumps({"sentence": "the plot was awful"})], "in.jsonl")
    api = spdc.predict(sst2_artifact, jsonl, tmp_path / "api.jsonl", show_progress=False)
    assert api.predicted == 1 and json.loads((tmp_path / "api.jsonl").read_text())["row"] == 1


def test_a_bad_row_stops_before_any_output_or_is_skipped_by_number(sst2_artifact: Path, tmp_path: Path) -> None:
    source = rows_file(tmp_path, ["sentence,label", "the movie was good,1", '"an unterminated quote,1', "fine,1"],
                       "in.csv")
    out = tmp_path / "out.jsonl"
    stopped = invoke("predict", str(sst2_artifact), "--input", str(source), "--output", str(out), "--json")
    expect_error(stopped, 3, "DataError", "line 3")
    assert not out.exists()
    skipped = invoke("predict", str(sst2_artifact), "--input", str(source), "--output", str(out), "--skip-bad-rows",
                     "--json")
    assert skipped.exit_code == 0, skipped.output
    summary = one_json_document(skipped)
    assert summary["skipped"] == 1 and "line 3" in summary["skip_reasons"][0] and summary["rows"] == 3
    assert [json.loads(line)["row"] for line in out.read_text().splitlines()] == [2, 4]


@pytest.mark.parametrize(("lines", "fragment"), [
    ([], "no rows to predict"),
    (["text", "the movie was good"], "column 'sentence' is missing"),
])
def test_empty_files_and_missing_columns_are_data_errors(lines: list[str], fragment: str, sst2_artifact: Path,
                                                         tmp_path: Path) -> None:
    source = rows_file(tmp_path, lines)
    out = tmp_path / "out.jsonl"
    expect_error(invoke("predict", str(sst2_artifact), "--input", str(source), "--output", str(out), "--json"), 3,
                 "DataError", fragment)
    assert not out.exists()


def test_an_existing_output_is_replaced_only_when_spdc_wrote_it(sst2_artifact: Path, tmp_path: Path) -> None:
    source = rows_file(tmp_path, ["sentence", "the movie was good"])
    mine = tmp_path / "mine.jsonl"
    mine.write_text('{"my": "data"}\n')
    expect_error(invoke("predict", str(sst2_artifact), "--input", str(source), "--output", str(mine), "--json"), 8,
                 "OutputError", "not written by spdc")
    assert mine.read_text() == '{"my": "data"}\n'
    expect_error(invoke("predict", str(sst2_artifact), "--input", str(source), "--output", str(source), "--json"),
                 8, "OutputError", "is an input")
    out = tmp_path / "out.jsonl"
    for _ in range(2):  # the second run replaces what the first wrote
        assert invoke("predict", str(sst2_artifact), "--input", str(source), "--output", str(out)).exit_code == 0
    assert len(out.read_text().splitlines()) == 1


def test_predict_arguments_have_the_cli_bounds(sst2_artifact: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="batch_size"):
        spdc.predict(sst2_artifact, tmp_path / "in.tsv", tmp_path / "out.jsonl", batch_size=0)
    assert invoke("predict", str(sst2_artifact), "--input", "x", "--output", "y", "--batch-size", "0",
                  "--json").exit_code == 2
