"""Data: reading task files, validating rows, resolving sources, tokenising into dynamically padded batches."""
