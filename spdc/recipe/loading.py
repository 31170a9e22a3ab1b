"""Reading recipes: safe YAML, `--set KEY.PATH=VALUE` overrides typed by the schema, and errors that name the
file and the key path of every problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

from spdc.core.errors import RecipeError
from spdc.recipe.schema import Recipe, StrictModel, TaskConfig

SectionT = TypeVar("SectionT", bound=StrictModel)

_MESSAGES = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
}


def _format_error(error: Any, prefix: tuple[str, ...] = ()) -> str:
    path = ".".join(str(part) for part in (*prefix, *error["loc"])) or "(recipe)"
    template = _MESSAGES.get(error["type"])
    message = template.format(**error.get("ctx", {})) if template else error["msg"].removeprefix("Value error, ")
    if error["type"] not in ("missing", "extra_forbidden") and not isinstance(error.get("input"), dict):
        message += f", got {error.get('input')!r}"
    return f"{path}: {message}"


def _validated(model: type[SectionT], data: Any, *, source: str, prefix: tuple[str, ...] = ()) -> SectionT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = [_format_error(error, prefix) for error in exc.errors()]
        raise RecipeError(f"invalid {source}:\n  " + "\n  ".join(lines)) from None


def parse_override(override: str) -> tuple[list[str], Any]:
    """Split `a.b.c=value`; the value is parsed as YAML so numbers, booleans and lists get their types."""
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise RecipeError(f"--set {override!r}: expected KEY.PATH=VALUE")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise RecipeError(f"--set {override!r}: value is not valid YAML ({exc})") from exc
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each `a.b.c=value` into the raw recipe mapping; the schema then types and checks the value."""
    for override in overrides:
        path, value = parse_override(override)
        node = data
        for depth, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise RecipeError(f"--set {override!r}: {'.'.join(path[: depth + 1])} is not a section")
            node = child
        node[path[-1]] = value
    return data


def validate_recipe(data: Any, *, source: str) -> Recipe:
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe must be a YAML mapping, got {type(data).__name__}")
    return _validated(Recipe, data, source=f"recipe {source}")


def validate_task(data: dict[str, Any]) -> TaskConfig:
    """Validate a task section built from command-line options, with the same messages as in a recipe."""
    return _validated(TaskConfig, data, source="task options", prefix=("task",))


def load_recipe(path: Path, overrides: list[str] | None = None) -> Recipe:
    """Read, override and validate a recipe; any problem raises RecipeError naming the file and key path."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecipeError(f"cannot read recipe {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RecipeError(f"invalid YAML in {path}: {exc}") from None
    if data is None:
        data = {}
    if isinstance(data, dict) and overrides:
        data = apply_overrides(data, overrides)
    return validate_recipe(data, source=str(path))
