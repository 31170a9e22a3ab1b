"""Docs that must not drift from the code."""

from pathlib import Path

from click.testing import CliRunner

from spdc.cli.main import cli
from spdc.recipe import Recipe, TrainingConfig

ROOT = Path(__file__).resolve().parent.parent


def test_recipe_reference_is_up_to_date() -> None:
    result = CliRunner().invoke(cli, ["recipe", "reference"])
    assert result.exit_code == 0
    committed = (ROOT / "docs" / "recipe-reference.md").read_text(encoding="utf-8")
    assert result.stdout == committed, "regenerate with: spdc recipe reference > docs/recipe-reference.md"


def test_reference_lists_every_key() -> None:
    text = (ROOT / "docs" / "recipe-reference.md").read_text(encoding="utf-8")
    for model in (Recipe, TrainingConfig):
        for name in model.model_fields:
            assert f"| `{name}` |" in text
    assert "## `teacher.finetune`" in text and "## `task.columns`" in text


def test_readme_gives_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
