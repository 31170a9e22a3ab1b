"""The bottom layer: typed errors with exit codes, atomic writes, terminal output and the base of result types.
Nothing here imports another spdc package."""
