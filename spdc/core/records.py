"""Base class of every typed document spdc writes or prints (run records, summaries, manifests, bench documents,
API results): one pydantic definition is used by the writer and the reader, so a renamed field cannot leave a
reader silently looking for the old key."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict


def finite(value: Any) -> Any:
    """`value` with every NaN or infinity replaced by None: JSON has no such numbers (a diverged metric, a Pearson
    of constant predictions), and a document carrying them is not JSON that other tools can read."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value


class Record(BaseModel):
    """A JSON document with a fixed shape. Unknown keys are kept (older or newer spdc may add fields)."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class Result(Record):
    """What a public API function returns. `to_json()` is exactly the document the CLI prints with `--json`."""

    @property
    def ok(self) -> bool:
        return True

    def to_json(self) -> dict[str, Any]:
        return finite({"ok": self.ok, **self.to_dict()})
