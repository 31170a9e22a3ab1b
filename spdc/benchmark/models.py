"""Models under test: an export artifact or .onnx file on onnxruntime, or a model / run directory on PyTorch,
loaded once and wrapped as one `run(feeds)` call; and the inputs they are fed (real task rows or random ids)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spdc.core.errors import ArtifactError
from spdc.data.synthetic import model_input_names, synthetic_inputs
from spdc.deploy.manifest import MANIFEST_FILE, ONNX_FILE, ExportManifest, read_manifest
from spdc.models.families import family_spec
from spdc.models.shape import encoder_flops_per_token
from spdc.models.structure import structure_of
from spdc.recipe.schema import TaskConfig
from spdc.runs.directory import locate_model


@dataclass
class BenchModel:
    """One model under test, loaded and ready: `run(feeds)` does one forward pass."""

    label: str
    path: Path
    engine: str
    provider: str
    precision: str
    file_bytes: int
    parameters: int | None
    config: Any
    tokenizer: Any
    run: Callable[[dict[str, np.ndarray]], None]
    load_mb: float = 0.0
    load_seconds: float = 0.0

    def flops_per_sequence(self, seq_len: int) -> float:
        """Encoder FLOPs for one sequence: folded heads/neurons count, unstructured zeros do not (dense kernels)."""
        config = self.config
        family = family_spec(config.model_type)
        hidden, heads, layers = config.hidden_size, config.num_attention_heads, config.num_hidden_layers
        structure = structure_of(config)
        kept_heads = [len(kept) for kept in structure.heads] if structure else [heads] * layers
        neurons = structure.neurons if structure else [getattr(config, family.intermediate_key)] * layers
        return seq_len * encoder_flops_per_token(hidden=hidden, seq_len=seq_len, head_dim=hidden // heads,
                                                 heads_per_layer=kept_heads, neurons_per_layer=neurons,
                                                 ffn_matrices=3 if family.gated else 2)


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def engine_of(path: Path, engine: str) -> str:
    if not path.exists():
        raise ArtifactError(f"{path} does not exist: name an export artifact, an .onnx file, or a model or run "
                            "directory")
    is_onnx = path.suffix == ".onnx" or (path / ONNX_FILE).is_file()
    if engine == "auto":
        return "ort" if is_onnx else "torch"
    if engine == "ort" and not is_onnx:
        raise ArtifactError(f"{path} has no {ONNX_FILE}: export it first (`spdc export {path} --onnx`) or use "
                        "--engine torch")
    if engine == "torch" and is_onnx and not (path / "config.json").is_file():
        raise ArtifactError(f"{path} is an ONNX file; --engine torch needs a model or run directory")
    return engine


def load_bench_model(path: Path, *, engine: str, provider: str, threads: int | None,
                     semi_structured: bool = False) -> BenchModel:
    """Open `path` (artifact dir, .onnx file, model dir or run dir) for timing on `provider` (cpu or cuda)."""
    engine = engine_of(path, engine)
    before, started = _rss_mb(), time.perf_counter()
    if engine == "ort":
        from spdc.deploy.sessions import open_artifact

        onnx_file = path if path.suffix == ".onnx" else path / ONNX_FILE
        opened = open_artifact(onnx_file, threads=threads, provider=provider, spinning=False)
        session, config, tokenizer = opened.session, opened.config, opened.tokenizer
        names = [node.name for node in session.get_inputs()]
        manifest = _manifest_or_none(onnx_file.parent)
        on_cuda = session.get_providers()[0] == "CUDAExecutionProvider"
        model = BenchModel(
            label=_label(path), path=path, engine="ort", provider="cuda" if on_cuda else "cpu",
            precision=manifest.export.precision if manifest else "fp32",
            file_bytes=onnx_file.stat().st_size,
            parameters=manifest.sizes.parameters if manifest else None,
            config=config, tokenizer=tokenizer,
            run=_bound_runner(session, names) if on_cuda else (
                lambda feeds: session.run(["logits"], {name: feeds[name] for name in names})),
        )
    else:
        model = _torch_model(path, provider, threads, semi_structured=semi_structured)
    model.run(synthetic_inputs(model_input_names(model.tokenizer), model.config.vocab_size, batch=1, seq_len=8))
    model.load_seconds = time.perf_counter() - started  # reading, (densifying,) building the session, first call
    model.load_mb = max(0.0, _rss_mb() - before)
    return model


def _bound_runner(session: Any, names: list[str]) -> Callable[[dict[str, np.ndarray]], None]:
    """One call on CUDA through I/O binding: the inputs are copied to the GPU once per feed (then reused), the
    logits stay on the GPU, and the call waits for the device, so the time is the model's, not the copies'."""
    import onnxruntime as ort

    binding = session.io_binding()
    bound: list[int] = []

    def run(feeds: dict[str, np.ndarray]) -> None:
        if bound != [id(feeds)]:
            binding.clear_binding_inputs()
            for name in names:
                binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(feeds[name], "cuda", 0))
            binding.bind_output("logits", "cuda")
            bound[:] = [id(feeds)]
        session.run_with_iobinding(binding)
        binding.synchronize_outputs()

    return run


def _label(path: Path) -> str:
    parts = path.parts[-2:] if path.name in ("model", "folded", "onnx", "onnx-int8", ONNX_FILE) else path.parts[-1:]
    return "/".join(parts)


def _manifest_or_none(folder: Path) -> ExportManifest | None:
    """The artifact's manifest; None for a bare .onnx folder without one (a broken manifest is an error)."""
    return read_manifest(folder) if (folder / MANIFEST_FILE).is_file() else None


def is_two_four(weight: Any) -> bool:
    """Every group of four consecutive weights in a row has at most two non-zeros."""
    rows, columns = weight.shape
    if columns % 4:
        return False
    return bool(((weight.reshape(rows, columns // 4, 4) != 0).sum(dim=-1) <= 2).all())


def to_semi_structured(network: Any) -> int:
    """Swap the weights of every 2:4 Linear for torch's semi-structured sparse tensor (CUDA sparse tensor cores,
    fp16/bf16); returns how many were swapped. Shapes the kernels reject stay dense."""
    import torch
    from torch.sparse import to_sparse_semi_structured

    swapped = 0
    for module in network.modules():
        if isinstance(module, torch.nn.Linear) and is_two_four(module.weight.detach()):
            try:
                module.weight = torch.nn.Parameter(to_sparse_semi_structured(module.weight.detach()),
                                                   requires_grad=False)
                swapped += 1
            except (RuntimeError, ValueError):
                continue
    return swapped


def _torch_model(path: Path, provider: str, threads: int | None, *, semi_structured: bool = False) -> BenchModel:
    import torch

    from spdc.models.loading import load_model
    from spdc.models.structure import parameter_count

    model_dir = locate_model(path).model_dir
    loaded = load_model(str(model_dir), None)
    if threads:
        torch.set_num_threads(threads)
    device = torch.device("cuda" if provider == "cuda" else "cpu")
    network = loaded.model.eval().to(device)
    precision = "bf16-autocast" if device.type == "cuda" else "fp32"
    if semi_structured and device.type == "cuda":
        network = network.half()
        precision = f"fp16, 2:4 sparse kernels in {to_semi_structured(network)} Linear layers"

    @torch.inference_mode()
    def run(feeds: dict[str, np.ndarray]) -> None:
        inputs = {name: torch.from_numpy(array).to(device) for name, array in feeds.items()}
        if device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=not semi_structured):
                network(**inputs)
            torch.cuda.synchronize()
        else:
            network(**inputs)

    weights = model_dir / "model.safetensors"
    return BenchModel(
        label=_label(path), path=path, engine="torch", provider="cuda" if device.type == "cuda" else "cpu",
        precision=precision,
        file_bytes=weights.stat().st_size if weights.is_file() else 0, parameters=parameter_count(network),
        config=loaded.model.config, tokenizer=loaded.tokenizer, run=run,
    )


def resolve_bench_provider(requested: str, engine: str) -> tuple[str, str | None]:
    """'cuda' or 'cpu' for one engine, and a note when CUDA was asked for but this engine has none here
    (measured on CPU instead of failing)."""
    if requested == "cpu":
        return "cpu", None
    if engine == "ort":
        import onnxruntime as ort

        available = ort.get_available_providers()
        has_cuda, detail = "CUDAExecutionProvider" in available, f"onnxruntime providers: {', '.join(available)}"
    else:
        import torch

        has_cuda, detail = torch.cuda.is_available(), f"torch {torch.__version__}: torch.cuda.is_available() False"
    if has_cuda:
        return "cuda", None
    note = f"CUDA requested but absent for {engine} here ({detail}): measured on CPU" if requested == "cuda" else None
    return "cpu", note


def bench_inputs(model: BenchModel, *, batch: int, seq_len: int, task: TaskConfig | None) -> dict[str, np.ndarray]:
    """Real dev sentences of `task` padded or cut to `seq_len` (cycled to fill the batch), else random ids."""
    names = model_input_names(model.tokenizer)
    if task is None:
        return synthetic_inputs(names, model.config.vocab_size, batch=batch, seq_len=seq_len, padded=False)
    from spdc.data.sources import load_split, task_spec

    examples = load_split(task.model_copy(update={"max_eval_samples": batch}), task_spec(task).dev_splits[0]).examples
    rows = [examples[index % len(examples)] for index in range(batch)]
    pairs = [row.text_pair for row in rows]
    encoded = model.tokenizer([row.text for row in rows], pairs if any(p is not None for p in pairs) else None,
                              padding="max_length", truncation=True, max_length=seq_len, return_tensors="np")
    return {name: encoded[name].astype(np.int64) for name in names}
