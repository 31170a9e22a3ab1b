"""`spdc predict`: batch inference with an exported artifact over a CSV / TSV / JSON / JSONL file, the way a
deployment pipeline runs it. Every row is read and checked before anything runs, so a bad row stops the job before
any output exists (or, with `skip_bad_rows`, is reported by number and left out); the JSONL output is staged and
renamed like every spdc output, and an existing file is replaced only when spdc wrote it."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spdc.core.atomic import atomic_write_text
from spdc.core.console import progress_bar
from spdc.core.errors import ArtifactError, DataError
from spdc.core.outputs import check_output_file
from spdc.core.records import Result
from spdc.data.examples import row_text
from spdc.data.readers import detect_format, read_rows
from spdc.data.sources import task_spec
from spdc.deploy.manifest import ONNX_FILE, read_manifest
from spdc.deploy.sessions import open_artifact
from spdc.recipe.schema import TaskConfig

OUTPUT_SIGNATURE = b'{"row": '  # every line spdc writes starts so: an existing file without it is the user's
MAX_REASONS = 5


class PredictResult(Result):
    """What `spdc predict` did: rows read, predicted and skipped (with the first reasons), and its speed."""

    artifact: str
    input: str
    output: str
    task: str
    rows: int
    predicted: int
    skipped: int
    skip_reasons: list[str]
    seconds: float
    rows_per_second: float


@dataclass(frozen=True)
class InputRow:
    number: int  # the file's line (or, for a JSON array, its element)
    text: str
    pair: str | None


def _read_rows(path: Path, task: TaskConfig, *, skip_bad_rows: bool) -> tuple[list[InputRow], list[str], int]:
    """Every usable row of `path` with the task's text columns (labels are not needed), the reasons of the rows
    left out, and how many were left out. Without `skip_bad_rows`, the first bad row is a DataError naming it."""
    spec = task_spec(task)
    columns = spec.local_columns
    wanted = tuple(name for name in (columns.text, columns.text_pair) if name)
    fmt = detect_format(path)
    word = "row" if fmt == "json" else "line"
    rows: list[InputRow] = []
    reasons: list[str] = []
    skipped = 0
    for number, row in read_rows(path, fmt, mapped=wanted if fmt in ("csv", "tsv") else ()):
        try:
            if isinstance(row, str):
                raise ValueError(row)
            texts = [row_text(row, name) for name in wanted]
        except ValueError as exc:
            reason = f"{path}, {word} {number}: {exc}"
            if not skip_bad_rows:
                raise DataError(f"{reason} (nothing was written; --skip-bad-rows leaves such rows out)") from None
            skipped += 1
            if len(reasons) < MAX_REASONS:
                reasons.append(reason)
            continue
        rows.append(InputRow(number, texts[0], texts[1] if len(texts) > 1 else None))
    if not rows:
        raise DataError(f"{path}: no rows to predict" + (f" ({skipped} bad rows left out)" if skipped else ""))
    return rows, reasons, skipped


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def predict_file(artifact: Path, input_file: Path, output_file: Path, *, batch_size: int = 32,
                 threads: int | None = None, skip_bad_rows: bool = False, show_progress: bool = True
                 ) -> PredictResult:
    """Predict every row of `input_file` with `artifact` into `output_file` (JSONL: row, label, scores; for a
    regression task, row and score)."""
    manifest = read_manifest(artifact)
    if not manifest.task:
        raise ArtifactError(f"{artifact}'s manifest records no task: predict needs its columns and labels")
    task = TaskConfig.model_validate(manifest.task)
    spec = task_spec(task)
    check_output_file(output_file, inputs=[input_file, artifact / ONNX_FILE], signature=OUTPUT_SIGNATURE,
                      what="predictions file")
    rows, reasons, skipped = _read_rows(input_file, task, skip_bad_rows=skip_bad_rows)
    opened = open_artifact(artifact / ONNX_FILE, threads=threads)
    names = [node.name for node in opened.session.get_inputs()]
    lines: list[str] = []
    started = time.perf_counter()
    progress = progress_bar()
    progress.disable = not show_progress
    with progress:
        bar = progress.add_task(f"predict {spec.name}", total=len(rows), status="")
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            pairs = [row.pair for row in chunk] if spec.local_columns.text_pair else None
            encoded = opened.tokenizer([row.text for row in chunk], pairs, truncation=True, padding=True,
                                       max_length=task.max_seq_length, return_tensors="np")
            feed = {name: np.asarray(encoded[name], dtype=np.int64) for name in names}
            logits = opened.session.run(["logits"], feed)[0].astype(np.float64)
            for row, values in zip(chunk, logits, strict=True):
                if spec.label_names is None:
                    lines.append(json.dumps({"row": row.number, "score": float(values[0])}))
                else:
                    scores = _softmax(values)
                    lines.append(json.dumps({"row": row.number, "label": spec.label_names[int(scores.argmax())],
                                             "scores": {label: round(float(score), 6) for label, score in
                                                        zip(spec.label_names, scores, strict=True)}}))
            progress.advance(bar, len(chunk))
    seconds = time.perf_counter() - started
    atomic_write_text(output_file, "\n".join(lines) + "\n")
    return PredictResult(artifact=str(artifact), input=str(input_file), output=str(output_file), task=spec.name,
                         rows=len(rows) + skipped, predicted=len(rows), skipped=skipped, skip_reasons=reasons,
                         seconds=round(seconds, 3), rows_per_second=round(len(rows) / seconds, 1) if seconds else 0.0)
