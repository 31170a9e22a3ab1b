"""Reporting: markdown reports with plots of runs, and comparisons across runs."""
