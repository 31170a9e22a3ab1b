"""Recipes: the typed, strict schema (`schema`), reading files with `--set` overrides (`loading`) and the
generated markdown reference (`reference`)."""

from spdc.recipe.loading import apply_overrides, load_recipe, parse_override, validate_recipe, validate_task
from spdc.recipe.schema import (
    ColumnMapping,
    DistillationConfig,
    ExportConfig,
    GraftingConfig,
    LossWeights,
    ParityThresholds,
    PruningConfig,
    Recipe,
    StageConfig,
    StudentConfig,
    TaskConfig,
    TeacherConfig,
    TrainingConfig,
)

__all__ = [
    "ColumnMapping", "DistillationConfig", "ExportConfig", "GraftingConfig", "LossWeights", "ParityThresholds",
    "PruningConfig", "Recipe", "StageConfig", "StudentConfig", "TaskConfig", "TeacherConfig", "TrainingConfig",
    "apply_overrides", "load_recipe", "parse_override", "validate_recipe", "validate_task",
]
