"""The bench document (`spdc bench --json`, schema `spdc-bench/1`, documented in docs/bench.md), typed once for
the writer and every reader (the report's frontier view, the benchmark scripts). Fields are only ever added."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ConfigDict, Field, ValidationError

from spdc.core.errors import ArtifactError
from spdc.core.records import Record, Result

SCHEMA = "spdc-bench/1"


class MachineInfo(Record):
    platform: str
    processor: str
    cpu_model: str = ""
    cpu_count: int | None
    cpu_usable: int | None = None
    isa: dict[str, bool] = Field(default_factory=dict)
    python: str
    torch: str
    onnxruntime: str
    provider: str
    execution_provider: str = ""
    ort_graph_optimization: str = ""
    ort_intra_op_threads: int | None = None
    torch_threads: int | None = None
    gpu: str | None = None


class BenchSettingsRecord(Record):
    batch_sizes: list[int]
    seq_lens: list[int]
    threads: int | None
    provider_requested: str
    provider: str
    warmup_s: float
    time_s: float
    rounds: int
    inputs: str


class BenchModelRecord(Record):
    index: int
    label: str
    path: str
    engine: str
    provider: str
    precision: str
    file_bytes: int
    parameters: int | None
    load_mb: float
    load_seconds: float | None = None

class OrderEntry(Record):
    batch: int
    seq_len: int
    round: int
    model: int


class CellResult(Record):
    model: int
    label: str
    batch: int
    seq_len: int
    runs: int
    latency_ms: dict[str, float]
    items_per_s: float
    process_peak_rss_mb: float
    encoder_flops_per_sequence: float
    speedup: float
    flop_ratio: float
    efficiency: float


class BenchDocument(Result):
    model_config = ConfigDict(extra="allow", populate_by_name=True, protected_namespaces=())

    schema_: str = Field(SCHEMA, alias="schema")
    spdc: str
    created: str
    machine: MachineInfo
    settings: BenchSettingsRecord
    models: list[BenchModelRecord]
    order: list[OrderEntry]
    results: list[CellResult]
    notes: list[str]
    plot: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def cell(self, model: int, batch: int, seq_len: int) -> CellResult | None:
        return next((c for c in self.results if (c.model, c.batch, c.seq_len) == (model, batch, seq_len)), None)


def read_bench_document(path: Path) -> BenchDocument:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        document = BenchDocument.model_validate(data)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValidationError) as exc:
        raise ArtifactError(f"cannot read bench document {path}: {exc}") from None
    if document.schema_ != SCHEMA:
        raise ArtifactError(f"{path} is not a {SCHEMA} document (schema {document.schema_!r})")
    return document
