"""Recipe validation, overrides and round trip."""

from pathlib import Path

import pytest
import yaml

from spdc.core.errors import RecipeError
from spdc.recipe import Recipe, apply_overrides, load_recipe

ROOT = Path(__file__).resolve().parent.parent
BASE = "name: r\ntask:\n  name: mrpc\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BASE + "teacher:\n  finetune:\n    learning_rate: -1\n",
         "teacher.finetune.learning_rate: must be > 0.0, got -1"),
        (BASE + "teacher:\n  finetune:\n    lerning_rate: 1e-4\n", "teacher.finetune.lerning_rate: unknown key"),
        (BASE + "teacher:\n  finetune:\n    batch_size: 0\n", "teacher.finetune.batch_size: must be > 0, got 0"),
        (BASE + "teacher:\n  finetune:\n    warmup_ratio: 1.5\n",
         "teacher.finetune.warmup_ratio: must be < 1.0, got 1.5"),
        (BASE + "device: tpu\n", "device: Input should be 'auto', 'cpu' or 'cuda', got 'tpu'"),
        ("task:\n  name: mrpc\n", "name: required key is missing"),
        ("name: r\ntask:\n  name: glue-x\n", "task: unknown task 'glue-x'"),
        ("name: r\ntask:\n  name: custom\n  train_file: a.csv\n", "task: a custom task needs dev_file, columns"),
        ("name: r\ntask:\n  name: mrpc\n  labels: [a, b]\n", "task: labels only apply to `name: custom`"),
        (BASE + "version: 2\n", "version: Input should be 1, got 2"),
        (BASE + "task:\n  name: sst2\n  max_seq_length: -3\n", "task.max_seq_length: must be > 0, got -3"),
        ("- a\n- b\n", "a recipe must be a YAML mapping, got list"),
        ("name: [unclosed\n", "invalid YAML in"),
    ],
)
def test_invalid_recipes_name_the_key_path(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RecipeError) as excinfo:
        load_recipe(path)
    assert expected in str(excinfo.value)
    assert str(path) in str(excinfo.value)
    assert excinfo.value.exit_code == 2


def test_several_errors_are_all_reported(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "seed: x\nteacher:\n  finetune:\n    epochs: 0\n    bogus: 1\n")
    with pytest.raises(RecipeError) as raised:
        load_recipe(path)
    message = str(raised.value)
    for fragment in ("seed:", "teacher.finetune.epochs: must be > 0", "teacher.finetune.bogus: unknown key"):
        assert fragment in message


def test_defaults_and_task_aliases(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, "name: r\ntask:\n  name: SST-2\n"))
    assert recipe.task.name == "sst2"
    assert recipe.teacher.model == "minilm"
    assert recipe.teacher.finetune.learning_rate == 3e-5
    assert recipe.resolved_output_dir() == Path("runs/r")


def test_overrides_are_typed_by_the_schema(tmp_path: Path) -> None:
    recipe = load_recipe(
        write(tmp_path, BASE),
        ["teacher.finetune.learning_rate=1e-4", "teacher.finetune.epochs=2", "task.drop_bad_rows=true",
         "teacher.finetune.max_grad_norm=null", "seed=3"],
    )
    assert recipe.teacher.finetune.learning_rate == pytest.approx(1e-4)
    assert isinstance(recipe.teacher.finetune.learning_rate, float)
    assert recipe.teacher.finetune.epochs == 2
    assert recipe.task.drop_bad_rows is True
    assert recipe.teacher.finetune.max_grad_norm is None
    assert recipe.seed == 3


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("teacher.finetune.epochs=many", "teacher.finetune.epochs: Input should be a valid integer"),
        ("teacher.finetune.nope=1", "teacher.finetune.nope: unknown key"),
        ("name.sub=1", "--set 'name.sub=1': name is not a section"),
        ("novalue", "expected KEY.PATH=VALUE"),
    ],
)
def test_bad_overrides(tmp_path: Path, override: str, expected: str) -> None:
    with pytest.raises(RecipeError) as excinfo:
        load_recipe(write(tmp_path, BASE), [override])
    assert expected in str(excinfo.value)


def test_apply_overrides_creates_sections() -> None:
    assert apply_overrides({"a": 1}, ["b.c.d=[1, 2]"]) == {"a": 1, "b": {"c": {"d": [1, 2]}}}


def test_resolved_recipe_round_trips(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, BASE), ["teacher.finetune.epochs=3"])
    again = load_recipe(write(tmp_path, recipe.to_yaml()))
    assert again == recipe
    assert again.fingerprint() == recipe.fingerprint()
    assert load_recipe(write(tmp_path, BASE)).fingerprint() != recipe.fingerprint()


def test_custom_task_section(tmp_path: Path) -> None:
    text = ("name: r\ntask:\n  name: custom\n  train_file: t.csv\n  dev_file: d.csv\n"
            "  columns: {text: review, label: stars}\n  labels: [neg, pos]\n  metrics: [f1, accuracy]\n")
    recipe = load_recipe(write(tmp_path, text))
    assert recipe.task.columns is not None and recipe.task.columns.text == "review"
    bad = text.replace("metrics: [f1, accuracy]", "metrics: [bleu]")
    with pytest.raises(RecipeError, match=r"unknown metric\(s\) \['bleu'\]"):
        load_recipe(write(tmp_path, bad))
    both = text.replace("labels: [neg, pos]", "labels: [neg, pos]\n  regression: true")
    with pytest.raises(RecipeError, match="either `labels`"):
        load_recipe(write(tmp_path, both))


@pytest.mark.parametrize("path", sorted((ROOT / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_recipes_are_valid(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe.name == path.stem
    assert isinstance(Recipe.model_validate(yaml.safe_load(recipe.to_yaml())), Recipe)


def test_bert_base_recipes_cover_glue_with_paper_setup() -> None:
    tasks = set()
    for path in (ROOT / "recipes").glob("bert-base-*.yaml"):
        recipe = load_recipe(path)
        tasks.add(recipe.task.name)
        finetune = recipe.teacher.finetune
        assert (finetune.learning_rate, finetune.batch_size, finetune.epochs) == (3e-5, 32, 4)
        assert recipe.task.max_seq_length == 128
    assert tasks == {"mnli", "qqp", "qnli", "sst2", "cola", "stsb", "mrpc", "rte"}
