"""Benchmarking: timing and statistics (`timing`), the models under test (`models`), the machine block
(`machine`), the typed bench document (`document`), the interleaved runner (`runner`) and its plot (`plot`)."""
