"""onnxruntime sessions as spdc uses them: explicit providers and threads, and feeds built from a batch."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spdc.core.errors import ArtifactError, SpdcError

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
ORT_WARNING, ORT_ERROR = 2, 3  # onnxruntime logger severities (warning is its default)


@contextlib.contextmanager
def quiet_onnxruntime_tools() -> Iterator[None]:
    """Run onnxruntime's optimizer or quantizer without its chatter: their progress prints go to stderr (stdout
    carries --json), and the sessions they open internally log one warning per initializer their own graph
    clean-up removes, dozens per export, none of them the user's concern."""
    import onnxruntime as ort

    ort.set_default_logger_severity(ORT_ERROR)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        ort.set_default_logger_severity(ORT_WARNING)


def resolve_provider(provider: str) -> str:
    """'auto' picks CUDA when onnxruntime has it; asking for CUDA where it is absent is an error that says so."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if provider == "auto":
        return PROVIDERS["cuda"] if PROVIDERS["cuda"] in available else PROVIDERS["cpu"]
    if PROVIDERS[provider] not in available:
        raise SpdcError(f"onnxruntime has no {PROVIDERS[provider]} here (available: {', '.join(available)}); "
                        "CUDA needs a GPU and the onnxruntime-gpu package")
    return PROVIDERS[provider]


def create_session(path: Path, *, threads: int | None = None, provider: str = "cpu", spinning: bool = True) -> Any:
    """A session on one provider. `spinning=False` stops idle worker threads from busy-waiting, so sessions
    measured one after another in the same process do not steal each other's cores."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = ORT_ERROR
    providers = [resolve_provider(provider)]
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises untyped errors for unreadable or invalid graphs
        raise ArtifactError(f"onnxruntime cannot load {path}: {str(exc).strip().splitlines()[0][:300]}") from None


def session_feed(session: Any, batch: dict[str, Any]) -> dict[str, np.ndarray]:
    """The inputs the graph declares, as int64 arrays (exporters may drop an input the model ignores)."""
    names = [node.name for node in session.get_inputs()]
    missing = [name for name in names if name not in batch]
    if missing:
        raise SpdcError(f"the ONNX model needs inputs {missing} that the batch does not have")
    return {name: np.asarray(batch[name].cpu() if hasattr(batch[name], "cpu") else batch[name], dtype=np.int64)
            for name in names}


@dataclass
class OpenedArtifact:
    """An artifact folder as a deployment reads it (optimum's ORTModel layout): graph, config and tokenizer."""

    session: Any
    config: Any
    tokenizer: Any


def open_artifact(onnx_file: Path, *, threads: int | None = None, provider: str = "cpu", spinning: bool = True
                  ) -> OpenedArtifact:
    """Open `onnx_file` with the config.json and tokenizer beside it, refusing (ArtifactError) what a deployment
    could not serve: a missing or unreadable config or tokenizer, a tokenizer without vocabulary or with ids the
    graph cannot embed, graph inputs other than the tokenizer's, or no `logits` output."""
    from transformers import AutoConfig, AutoTokenizer

    from spdc.core.errors import ModelLoadError
    from spdc.data.synthetic import model_input_names
    from spdc.models.loading import check_tokenizer

    folder = onnx_file.parent
    session = create_session(onnx_file, threads=threads, provider=provider, spinning=spinning)
    try:
        config, tokenizer = AutoConfig.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
        check_tokenizer(tokenizer, str(folder), embedding_rows=int(config.vocab_size))
    except (OSError, ValueError, ModelLoadError) as exc:
        raise ArtifactError(f"{folder} lacks a readable config.json or tokenizer beside {onnx_file.name} "
                            f"({str(exc).splitlines()[0][:300]}); re-export it with `spdc export`") from None
    inputs = [node.name for node in session.get_inputs()]
    expected = model_input_names(tokenizer)
    outputs = [node.name for node in session.get_outputs()]
    if "input_ids" not in inputs or any(name not in expected for name in inputs):
        raise ArtifactError(f"{onnx_file} takes inputs {inputs}, but its tokenizer gives {expected}: the graph was "
                            "changed after export; re-export it with `spdc export`")
    if "logits" not in outputs:
        raise ArtifactError(f"{onnx_file} has outputs {outputs}, none named 'logits'; re-export it with `spdc export`")
    return OpenedArtifact(session=session, config=config, tokenizer=tokenizer)
