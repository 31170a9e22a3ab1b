"""The package's shape: layers import downward only, no import cycles, registries that match the recipe
schema's allowed values, and hooks that are removed when their owner is done."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification

import spdc
from spdc.compression.grafting import GRAFTING_SCHEDULES
from spdc.compression.losses import LOSS_NAMES, LOSSES
from spdc.compression.methods import METHODS
from spdc.compression.pruning.criteria import CRITERIA
from spdc.compression.pruning.patterns import PATTERNS
from spdc.compression.pruning.schedules import SCHEDULES
from spdc.compression.recorder import OutputRecorder
from spdc.models.families import encoder_layers, family_of
from spdc.recipe.schema import GraftingConfig, LossWeights, PruningConfig, Recipe

PACKAGE = Path(spdc.__file__).resolve().parent
# Lowest first: a module may import its own layer and the layers before it, never one after it.
LAYERS = ["core", "data", "heads", "recipe", "models", "runs", "training", "compression", "deploy", "benchmark",
          "reporting", "api", "cli"]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:  # spdc/__init__.py re-exports the API
        return "api"
    return "cli" if parts[1] == "__main__" else parts[1]


def imports_of(path: Path) -> set[str]:
    """Every spdc module `path` imports, at module level or inside functions (both are dependencies)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("spdc"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("spdc"):
            found.add(node.module)
    return found


def import_graph() -> dict[str, set[str]]:
    return {module_name(path): imports_of(path) for path in PACKAGE.rglob("*.py")}


def test_every_module_belongs_to_a_known_layer() -> None:
    assert {layer_of(module) for module in import_graph()} <= set(LAYERS)
    assert {path.name for path in PACKAGE.iterdir() if path.is_dir() and not path.name.startswith("__")} == (
        set(LAYERS) - {"api"})


def test_layers_import_downward_only() -> None:
    upward = []
    for module, imported in import_graph().items():
        rank = LAYERS.index(layer_of(module))
        upward += [f"{module} -> {target}" for target in imported if LAYERS.index(layer_of(target)) > rank]
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle among modules (a package's import counts as importing its __init__), or None."""
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in graph:
                continue
            if state.get(target) == 1:
                return [*stack[stack.index(target):], target]
            if state.get(target) is None and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if state.get(node) is None and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles() -> None:
    graph = {module: targets for module, targets in import_graph().items() if module != "spdc"}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_cycle_finder_finds_a_planted_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def literal_values(annotation: object) -> set[str]:
    return {str(value) for value in typing.get_args(annotation)}


@pytest.mark.parametrize(("registry", "model", "field"), [
    (CRITERIA, PruningConfig, "criterion"),
    (SCHEDULES, PruningConfig, "schedule"),
    (PATTERNS, PruningConfig, "granularity"),
    (GRAFTING_SCHEDULES, GraftingConfig, "schedule"),
    (METHODS, Recipe, "method"),
])
def test_registries_match_the_recipe_schema(registry: dict[str, object], model: type, field: str) -> None:
    assert set(registry) == literal_values(model.model_fields[field].annotation)


def test_loss_registry_matches_the_loss_weights() -> None:
    assert set(LOSSES) == set(LossWeights.model_fields) == set(LOSS_NAMES)


def test_recorder_removes_its_hooks(tiny_model_dir: Path) -> None:
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir)
    model.set_attn_implementation("eager")
    family = family_of(model)

    def hook_count() -> int:
        return sum(len(module._forward_hooks) for module in model.modules())

    before = hook_count()
    with OutputRecorder(family, [model], [encoder_layers(model, family)]) as recorder:
        assert hook_count() == before + recorder.hook_count > before
        with recorder.record() as recording, torch.no_grad():
            model(input_ids=torch.tensor([[5, 6, 7]]))
        assert len(recording.hidden) == 3 and len(recording.attentions) == 2  # embeddings + 2 layers
    assert hook_count() == before


def test_public_api_is_listed() -> None:
    for name in ("load_recipe", "finetune", "compress", "fold", "export", "validate", "evaluate", "bench", "report"):
        assert callable(getattr(spdc, name)) and name in spdc.__all__ and name in (spdc.__doc__ or "")


def test_the_linter_reads_the_whole_package() -> None:
    """ruff's exclude names the output folder (./runs), not every folder called runs (spdc/runs/ is code)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    listed = subprocess.run([sys.executable, "-m", "ruff", "check", "--show-files", "spdc"], cwd=root,
                            capture_output=True, text=True, check=True).stdout
    package = {path.relative_to(root).as_posix() for path in (root / "spdc").rglob("*.py")}
    shown = {Path(line.strip()).resolve().relative_to(root).as_posix() for line in listed.splitlines() if line.strip()}
    assert package <= shown, sorted(package - shown)
