"""`python -m spdc ...` runs the CLI (the form launchers such as torchrun take)."""

from spdc.cli.main import cli

cli()
