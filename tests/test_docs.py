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


def test_the_readme_demo_figures_match_the_demo_recipe() -> None:
    """The README says what `make demo` runs and what a newcomer should see; read from the recipe, not run."""
    import re

    from spdc.recipe import load_recipe

    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    used = re.search(r"spdc compress (recipes/\S+\.yaml)", makefile)
    assert used is not None
    recipe = load_recipe(ROOT / used.group(1))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Two commands"):readme.index("## Using spdc")]
    assert used.group(1) in section and f"runs/{recipe.name}" in section
    assert recipe.task.max_train_samples is not None and f"{recipe.task.max_train_samples:,}" in section
    assert recipe.task.name.upper().replace("SST2", "SST-2") in section
    assert recipe.pruning is not None and f"{recipe.pruning.head_sparsity:.0%}" in section
    assert "majority baseline" in section and "minutes" in section
