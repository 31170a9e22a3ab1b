"""`spdc recipe validate FILE` and `spdc recipe show FILE`."""

from __future__ import annotations

from pathlib import Path

import click

from spdc.cli.common import handle_errors, json_option, set_option
from spdc.core.console import print_json, stderr
from spdc.recipe.loading import load_recipe


@click.group("recipe")
def recipe_group() -> None:
    """Check and inspect recipes."""


@recipe_group.command("validate")
@click.argument("file", type=click.Path(path_type=Path))
@set_option
@json_option
@handle_errors
def validate_command(file: Path, overrides: tuple[str, ...], json_output: bool) -> None:
    """Validate FILE against the schema; exit 2 with the key path of every problem."""
    recipe = load_recipe(file, list(overrides))
    if json_output:
        print_json({"ok": True, "file": str(file), "name": recipe.name, "fingerprint": recipe.fingerprint()})
    else:
        stderr.print(f"[green]ok[/]: {file} (recipe {recipe.name!r}, task {recipe.task.name})")


@recipe_group.command("show")
@click.argument("file", type=click.Path(path_type=Path))
@set_option
@json_option
@handle_errors
def show_command(file: Path, overrides: tuple[str, ...], json_output: bool) -> None:
    """Print the fully resolved recipe (every default filled in) as YAML, or JSON with --json."""
    recipe = load_recipe(file, list(overrides))
    if json_output:
        print_json(recipe.model_dump(mode="json"))
    else:
        click.echo(recipe.to_yaml(), nl=False)


@recipe_group.command("reference")
def reference_command() -> None:
    """Print the recipe reference (every key, type, default and constraint) as markdown."""
    from spdc.recipe.reference import recipe_reference

    click.echo(recipe_reference(), nl=False)
