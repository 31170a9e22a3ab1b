"""Typed errors; each carries the exit code the CLI turns it into, so scripts can tell failures apart."""

from __future__ import annotations

from pathlib import Path


class SpdcError(Exception):
    """Base class: an expected failure with a message written for the user (no traceback)."""

    exit_code = 1


class RecipeError(SpdcError):
    """The recipe (file, YAML or a --set override) is invalid. Exit code 2, like a usage error."""

    exit_code = 2


class UsageError(SpdcError):
    """An argument of a command or of a Python API function is out of its bounds (the same bounds for both).
    Exit code 2, like the CLI's own usage errors."""

    exit_code = 2


class DataError(SpdcError):
    """Data could not be found or a row is invalid; the message names the file and the row."""

    exit_code = 3


class CheckpointError(SpdcError):
    """A checkpoint is missing, corrupt, or belongs to a different recipe."""

    exit_code = 4


class ModelLoadError(SpdcError):
    """A model or tokenizer could not be loaded from the given alias, directory or hub id."""

    exit_code = 5


class ArtifactError(SpdcError):
    """An export artifact is missing, unreadable, or could not be produced."""

    exit_code = 6


class ParityError(SpdcError):
    """An exported model does not give the same answers as its PyTorch source within the thresholds.
    The artifact is kept and marked failed in its manifest."""

    exit_code = 7

    def __init__(self, message: str, *, artifact: Path | None = None, precision: str | None = None) -> None:
        super().__init__(message)
        self.artifact = artifact
        self.precision = precision


class OutputError(SpdcError):
    """An output location is refused (it is the input, the working directory, a plain file, or something spdc
    did not create) or cannot be written (read-only, no space). Nothing is deleted or half-written."""

    exit_code = 8

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class DivergedError(SpdcError):
    """Training stopped because the loss became NaN or infinite; the message names the step and the last good
    checkpoint. Exit code 9."""

    exit_code = 9


class PeerLostError(SpdcError):
    """Under torchrun, another process of the job stopped (killed, or failed with its own error) while this one
    waited for it. Exit code 10."""

    exit_code = 10
