"""Render the recipe schema as a markdown reference, so docs/recipe-reference.md is generated, never hand-kept."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from spdc.recipe.schema import Recipe


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(repr(value) for value in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(arg) for arg in typing.get_args(annotation))
    if origin is list:
        return f"list[{_type_name(typing.get_args(annotation)[0])}]"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    metadata = getattr(annotation, "__metadata__", None)
    base = typing.get_args(annotation)[0] if metadata else annotation
    return getattr(base, "__name__", str(base))


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _nested_models(arg)]


def _default(field: Any) -> str:
    if field.is_required():
        return "**required**"
    if field.default_factory is not None:
        return "(section defaults)"
    value = field.default
    return "null" if value is None or value is PydanticUndefined else f"`{value}`"


def _constraints(field: Any) -> str:
    parts = []
    for item in field.metadata:
        for attribute, symbol in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            if getattr(item, attribute, None) is not None:
                parts.append(f"{symbol} {getattr(item, attribute)}")
    return ", ".join(parts)


def _section(path: str, model: type[BaseModel], out: list[str]) -> None:
    out += [f"## `{path}`", "", (model.__doc__ or "").strip(), "",
            "| key | type | default | constraint | meaning |", "|---|---|---|---|---|"]
    children: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        out.append(
            f"| `{name}` | {_type_name(annotation)} | {_default(field)} | {_constraints(field)} | "
            f"{field.description or ''} |"
        )
        children += [(f"{path}.{name}" if path != "(top level)" else name, child)
                     for child in _nested_models(annotation)]
    out.append("")
    for child_path, child in children:
        _section(child_path, child, out)


def recipe_reference() -> str:
    out = [
        "# Recipe reference",
        "",
        "Generated from the schema by `spdc recipe reference` (a test fails when this file is out of date).",
        "Unknown keys are errors. Values from `--set KEY.PATH=VALUE` are typed by this schema.",
        "",
    ]
    _section("(top level)", Recipe, out)
    return "\n".join(out).rstrip() + "\n"
