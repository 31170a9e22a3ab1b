"""Property-based tests: whatever bytes, YAML or rows a user feeds spdc, the answer is a documented exit code
(or a DataError from the readers), exactly one JSON document under --json, and no file written outside the
command's own output."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spdc.cli.main import cli
from spdc.core.errors import DataError
from spdc.data.sources import load_split
from spdc.recipe import TaskConfig

RECIPE_EXIT_CODES = {0, 2}
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                                     HealthCheck.function_scoped_fixture])
RECIPE_KEYS = ["name", "seed", "device", "threads", "output_dir", "task", "teacher", "method", "student", "pruning",
               "distillation", "stages", "export", "finetune", "epochs", "learning_rate", "batch_size", "max_steps",
               "max_seq_length", "granularity", "final_sparsity", "grafting", "p0", "schedule", "weights", "version"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["mrpc", "sst2", "custom", "spd", "kd", "structured", "cubic", "..", "/tmp", "minilm"]),
)
yaml_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.sampled_from(RECIPE_KEYS) | st.text(max_size=8), children,
                                               max_size=5)),
    max_leaves=25,
)


def files_under(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))


def check_validate(runner: CliRunner, folder: Path, content: bytes) -> None:
    recipe = folder / "recipe.yaml"
    recipe.write_bytes(content)
    before = files_under(folder)
    result = runner.invoke(cli, ["recipe", "validate", str(recipe), "--json"])
    assert result.exit_code in RECIPE_EXIT_CODES, result.output
    assert "Traceback" not in result.output
    document = json.loads(result.stdout)  # exactly one JSON document
    assert document["ok"] is (result.exit_code == 0)
    if result.exit_code == 2:
        assert document["error"]["type"] == "RecipeError"
    assert files_under(folder) == before  # validating writes nothing


@PROPERTY_SETTINGS
@given(content=st.binary(max_size=400))
def test_any_bytes_as_a_recipe(content: bytes, tmp_path: Path) -> None:
    check_validate(CliRunner(), tmp_path, content)


@PROPERTY_SETTINGS
@given(data=yaml_values)
def test_any_yaml_as_a_recipe(data: object, tmp_path: Path) -> None:
    check_validate(CliRunner(), tmp_path, yaml.safe_dump(data, allow_unicode=True).encode("utf-8"))


@PROPERTY_SETTINGS
@given(task=st.fixed_dictionaries({
    "name": st.sampled_from(["mrpc", "sst2", "stsb", "cola"]),
    "max_seq_length": st.integers(min_value=-5, max_value=10**6),
    "max_train_samples": st.one_of(st.none(), st.integers(min_value=-3, max_value=10**10)),
}), teacher=st.fixed_dictionaries({"finetune": st.fixed_dictionaries({
    "epochs": st.integers(min_value=-2, max_value=10**7),
    "learning_rate": st.floats(allow_nan=True, allow_infinity=True),
    "batch_size": st.integers(min_value=-1, max_value=10**8),
    "warmup_ratio": st.floats(allow_nan=True, allow_infinity=True),
})}), seed=st.integers(min_value=-(2**70), max_value=2**70))
def test_recipe_like_values_of_any_size(task: dict, teacher: dict, seed: int, tmp_path: Path) -> None:
    recipe = {"name": "r", "seed": seed, "task": task, "teacher": teacher}
    check_validate(CliRunner(), tmp_path, yaml.safe_dump(recipe).encode())


cells = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)


def custom_task(path: Path, fmt: str) -> TaskConfig:
    return TaskConfig.model_validate({"name": "custom", "train_file": str(path), "dev_file": str(path),
                                      "format": fmt, "columns": {"text": "text", "label": "label"},
                                      "labels": ["neg", "pos"]})


def check_reader(path: Path, fmt: str) -> None:
    try:
        split = load_split(custom_task(path, fmt), "train")
    except DataError as error:
        assert str(path) in str(error)  # the message names the file
        return
    assert split.examples and all(example.label in (0, 1) for example in split.examples)
    assert all(example.text.strip() for example in split.examples)


@PROPERTY_SETTINGS
@given(header=st.lists(st.sampled_from(["text", "label", "other", ""]) | cells, max_size=4),
       rows=st.lists(st.lists(cells | st.sampled_from(["pos", "neg", "0", "1", "2"]), max_size=4), max_size=6),
       delimiter=st.sampled_from([",", "\t"]))
def test_any_csv_rows(header: list[str], rows: list[list[str]], delimiter: str, tmp_path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter)
    for row in [header, *rows]:
        writer.writerow(row)
    path = tmp_path / ("d.csv" if delimiter == "," else "d.tsv")
    path.write_text(buffer.getvalue(), encoding="utf-8")
    check_reader(path, "auto")


json_rows = st.lists(st.dictionaries(st.sampled_from(["text", "label", "extra"]) | cells,
                                     scalars | st.lists(scalars, max_size=2), max_size=4), max_size=6)


@PROPERTY_SETTINGS
@given(rows=json_rows | st.lists(scalars, max_size=3), as_lines=st.booleans())
def test_any_json_rows(rows: list, as_lines: bool, tmp_path: Path) -> None:
    if as_lines:
        path = tmp_path / "d.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    else:
        path = tmp_path / "d.json"
        path.write_text(json.dumps(rows), encoding="utf-8")
    check_reader(path, "auto")


@PROPERTY_SETTINGS
@given(content=st.binary(max_size=300), suffix=st.sampled_from([".csv", ".tsv", ".json", ".jsonl"]))
def test_any_bytes_as_data(content: bytes, suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"d{suffix}"
    path.write_bytes(content)
    check_reader(path, "auto")
