"""Pruning, kept as three separate registries: schedules (how sparse, when), criteria (which weights matter),
and patterns (what unit is removed: single weights, attention heads, FFN neurons)."""
