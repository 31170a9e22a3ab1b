"""Reading recipes: safe YAML, `--set KEY.PATH=VALUE` overrides typed by the schema, and errors that name the
file and the key path of every problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

from spdc.core.errors import RecipeError
from spdc.core.hub import looks_like_local_path
from spdc.recipe.schema import ExportConfig, Recipe, StrictModel, TaskConfig

SectionT = TypeVar("SectionT", bound=StrictModel)

_MESSAGES = {
    "greater_than": "must be > {gt}",
    "greater_than_equal": "must be >= {ge}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
    "string_pattern_mismatch": "must be one folder name: letters, digits, '.', '_' or '-', not starting with '.'",
    "finite_number": "must be a finite number",
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


def _child(node: Any, part: str, override: str, walked: list[str]) -> Any:
    """The section or list item `part` of `node`, created as a section when missing."""
    here = ".".join(walked) or "(recipe)"
    if isinstance(node, list):
        if not part.isdigit() or int(part) >= len(node):
            raise RecipeError(f"--set {override!r}: {here} is a list of {len(node)}; address an item by its index "
                              f"(0..{len(node) - 1}), e.g. --set {here}.0.epochs=3")
        return node[int(part)]
    if not isinstance(node, dict):
        raise RecipeError(f"--set {override!r}: {here} is not a section")
    return node.setdefault(part, {})


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each `a.b.c=value` into the raw recipe mapping; list items are addressed by index
    (`stages.0.epochs=3`). The schema then types and checks the value."""
    for override in overrides:
        path, value = parse_override(override)
        node: Any = data
        for depth, part in enumerate(path[:-1]):
            node = _child(node, part, override, path[:depth])
        last = path[-1]
        if isinstance(node, list):
            _child(node, last, override, path[:-1])  # checks the index
            node[int(last)] = value
        elif isinstance(node, dict):
            node[last] = value
        else:
            raise RecipeError(f"--set {override!r}: {'.'.join(path[:-1])} is not a section")
    return data


MAX_RECIPE_BYTES = 1 << 20
MAX_RECIPE_VALUES = 100_000
# Paths a recipe names, resolved from the recipe's folder when relative (as users expect of a file they write).
PATH_KEYS = (("output_dir",), ("task", "data_dir"), ("task", "train_file"), ("task", "dev_file"))


def _expanded_size(value: Any, memo: dict[int, int]) -> int:
    """How many values `value` holds once YAML aliases are expanded (computed without expanding them)."""
    if id(value) in memo:
        return memo[id(value)]
    if isinstance(value, dict):
        size = 1 + sum(_expanded_size(key, memo) + _expanded_size(item, memo) for key, item in value.items())
    elif isinstance(value, list):
        size = 1 + sum(_expanded_size(item, memo) for item in value)
    else:
        size = 1
    memo[id(value)] = size
    return size


def _relative_to(base: Path, value: Any) -> Any:
    if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
        return str(base / value)
    return value


def resolve_recipe_paths(data: dict[str, Any], base: Path) -> None:
    """Relative paths in a recipe file are relative to the file's folder: output_dir, the task's data paths,
    and teacher.model when it names a folder (a hub id `org/name` or the `minilm` alias stays as it is; write
    `./name` for a folder beside the recipe whose name could be a hub id)."""
    for keys in PATH_KEYS:
        node: Any = data
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and keys[-1] in node:
            node[keys[-1]] = _relative_to(base, node[keys[-1]])
    teacher = data.get("teacher")
    model = teacher.get("model") if isinstance(teacher, dict) else None
    if isinstance(teacher, dict) and isinstance(model, str) and (
            looks_like_local_path(model) or (base / model).is_dir()):
        teacher["model"] = _relative_to(base, model)


def validate_recipe(data: Any, *, source: str) -> Recipe:
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe must be a YAML mapping, got {type(data).__name__}")
    return _validated(Recipe, data, source=f"recipe {source}")


def validate_export(data: dict[str, Any]) -> ExportConfig:
    """Validate export settings built from command-line options, with the recipe's messages."""
    return _validated(ExportConfig, data, source="export options", prefix=("export",))


def validate_task(data: dict[str, Any]) -> TaskConfig:
    """Validate a task section built from command-line options, with the same messages as in a recipe."""
    return _validated(TaskConfig, data, source="task options", prefix=("task",))


def load_recipe(path: Path, overrides: list[str] | None = None) -> Recipe:
    """Read, override and validate a recipe; any problem raises RecipeError naming the file and key path.
    Relative paths in the file are taken from the file's folder; those given with --set, from the working
    directory."""
    try:
        if path.stat().st_size > MAX_RECIPE_BYTES:
            raise RecipeError(f"recipe {path} is larger than {MAX_RECIPE_BYTES // 1024} KiB; is it a recipe?")
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise RecipeError(f"cannot read recipe {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise RecipeError(f"recipe {path} is not UTF-8 text (undecodable byte at offset {exc.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RecipeError(f"invalid YAML in {path}: {exc}") from None
    except RecursionError:
        raise RecipeError(f"invalid YAML in {path}: nested too deeply") from None
    if data is None:
        data = {}
    if _expanded_size(data, {}) > MAX_RECIPE_VALUES:
        raise RecipeError(f"recipe {path} expands to more than {MAX_RECIPE_VALUES:,} values (YAML aliases?)")
    if isinstance(data, dict):
        resolve_recipe_paths(data, path.resolve().parent)
        if overrides:
            data = apply_overrides(data, overrides)
    return validate_recipe(data, source=str(path))
