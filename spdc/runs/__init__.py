"""Runs: the run directory and its typed records, run set-up (seeds, threads, device, data, teacher), and which
run a command acts on when given a recipe or nothing (`latest`)."""
