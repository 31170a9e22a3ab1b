"""Pruning, kept as separate registries keyed by the recipe's values: schedules (`pruning.schedule`: how sparse,
when), criteria (`pruning.criterion`: which weights matter) and patterns (`pruning.granularity`: what unit is
removed). The pruner combines one of each."""
