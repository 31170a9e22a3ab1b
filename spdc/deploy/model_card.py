"""The model card of an artifact: `README.md` in the Hugging Face model-card format (YAML front matter with
`model-index` results, then prose), so a model hub, a registry or a colleague reads what the folder holds. It is
regenerated from the manifest (and the run's summary, and the artifact's last bench) every time one of them is
written, never edited by hand: whatever it says comes from those records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from spdc.core.atomic import atomic_write_text
from spdc.core.errors import ArtifactError
from spdc.deploy.manifest import ExportManifest, write_manifest
from spdc.runs.records import CompressSummary, FinetuneSummary, read_summary

CARD_FILE = "README.md"
BENCH_FILE = "spdc_bench.json"  # the artifact's cells of its last `spdc bench`, with the machine block
NOTICE = "<!-- Written by spdc from spdc_manifest.json; regenerated on every export, validate and bench. -->"


def _run_summary(manifest: ExportManifest) -> FinetuneSummary | CompressSummary | None:
    if manifest.source.kind != "run":
        return None
    try:
        return read_summary(Path(manifest.source.path))
    except ArtifactError:  # the run moved or is gone: the card says what the manifest knows
        return None


def _bench(artifact: Path) -> dict[str, Any] | None:
    try:
        document = json.loads((artifact / BENCH_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return document if isinstance(document, dict) and isinstance(document.get("cells"), list) else None


def front_matter(manifest: ExportManifest, name: str, summary: FinetuneSummary | CompressSummary | None
                 ) -> dict[str, Any]:
    """The card's YAML header: tags, base model and the `model-index` results of the ONNX model's parity run."""
    task = manifest.task or {}
    metrics = []
    if manifest.parity is not None:
        for metric, value in manifest.parity.metrics_onnx.items():
            metrics.append({"type": metric, "value": round(float(value), 4),
                            "name": f"{manifest.parity.split} {metric} (ONNX {manifest.parity.precision})"})
    base = summary.teacher if isinstance(summary, CompressSummary) else (
        summary.model if isinstance(summary, FinetuneSummary) else manifest.source.model_dir)
    header: dict[str, Any] = {
        "library_name": "onnxruntime", "pipeline_tag": "text-classification",
        "tags": ["spdc", "onnx", "text-classification", *([summary.method] if isinstance(summary, CompressSummary)
                                                           else []), manifest.export.precision],
        "base_model": base,
    }
    if metrics:
        header["model-index"] = [{"name": name, "results": [{
            "task": {"type": "text-classification", "name": "Text Classification"},
            "dataset": {"name": f"GLUE {str(task.get('name', '')).upper()}", "type": "glue",
                        "config": task.get("name"), "split": manifest.parity.split if manifest.parity else None},
            "metrics": metrics}]}]
    return header


def _structure_lines(manifest: ExportManifest, summary: FinetuneSummary | CompressSummary | None) -> list[str]:
    lines = []
    if isinstance(summary, CompressSummary):
        flops = (summary.structure.flops or {}).get("reduction")
        lines.append(f"- Compression: {summary.method}" + (f", {summary.structure.granularity}"
                                                          if summary.structure.granularity else "")
                     + (f", {flops:.1%} of encoder FLOPs removed" if flops is not None else ""))
    if manifest.folded:
        heads = [len(kept) for kept in manifest.folded["heads"]]
        lines.append(f"- Structure per layer: heads {heads}, FFN neurons {manifest.folded['neurons']}")
    lines.append(f"- Parameters: {manifest.sizes.parameters:,} (source model {manifest.sizes.source_parameters:,});"
                 f" ONNX file {manifest.sizes.onnx_bytes / 1e6:.1f} MB")
    return lines


def card_name(artifact: Path, manifest: ExportManifest) -> str:
    """The artifact's name on its card: a run's export folders (onnx, onnx-int8) are named after the run."""
    if manifest.source.kind == "run" and artifact.parent.resolve() == Path(manifest.source.path).resolve():
        return f"{artifact.parent.resolve().name}-{artifact.name}"
    return artifact.resolve().name


def card_text(artifact: Path, manifest: ExportManifest, *, location: Path | None = None) -> str:
    """The card of `artifact` (its final place: `location` is where its files are now, a staging folder)."""
    summary = _run_summary(manifest)
    name = card_name(artifact, manifest)
    matter = front_matter(manifest, name, summary)
    header = yaml.safe_dump(matter, sort_keys=False, allow_unicode=True)
    task = manifest.task or {}
    lines = ["---", header.rstrip(), "---", NOTICE, "", f"# {name}", "",
             (f"An ONNX export ({manifest.export.precision}, optimisation {manifest.export.optimize}) made by spdc "
             f"{manifest.spdc} on {manifest.created} from `{manifest.source.path}` ({manifest.source.kind})."), "",
             "## Model", "", f"- Task: {task.get('name', 'not recorded')}, head: sequence classification"
             + (" (regression)" if task.get("regression") else "")]
    if summary is not None:
        lines.append(f"- Base model: `{matter['base_model']}`")
        for split, info in summary.data.items():
            lines.append(f"- {split} rows: {info.rows:,} from `{info.source}`"
                         + (f" ({info.dropped} bad rows dropped)" if info.dropped else ""))
    lines += _structure_lines(manifest, summary)
    lines += ["", "## Accuracy", ""]
    if manifest.parity is not None:
        parity = manifest.parity
        lines += ["| metric | PyTorch | ONNX |", "|---|---:|---:|"]
        lines += [f"| {metric} | {parity.metrics_torch[metric]:.4f} | {value:.4f} |"
                  for metric, value in parity.metrics_onnx.items()]
        if summary is not None and summary.baseline:
            baseline = summary.baseline.get(parity.main_metric, 0.0)
            lines.append(f"| majority baseline ({parity.main_metric}) | {baseline:.4f} | |")
        lines += ["", (f"Parity on {parity.rows} {parity.split} rows: **{manifest.status}** (max |logit diff| "
                  f"{parity.max_abs_diff:.2e}).")]
    else:
        lines.append(f"Not validated (`spdc validate {artifact}` checks parity): status {manifest.status}.")
    bench = _bench(location or artifact)
    lines += ["", "## Speed", ""]
    if bench is None:
        lines.append(f"No bench yet: `spdc bench {artifact}` records one here.")
    else:
        machine = bench.get("machine", {})
        isa = ", ".join(flag for flag, present in (machine.get("isa") or {}).items() if present) or "none"
        lines += [(f"Measured {bench.get('created')} on {machine.get('cpu_model') or machine.get('processor')} "
                  f"(ISA: {isa}; {machine.get('provider')}, {machine.get('ort_intra_op_threads')} threads, "
                  f"onnxruntime {machine.get('onnxruntime')}), against `{bench.get('baseline')}`:"), "",
                  "| batch x length | p50 ms | items/s | speedup |", "|---|---:|---:|---:|"]
        lines += [f"| {cell['batch']} x {cell['seq_len']} | {cell['p50_ms']:.2f} | {cell['items_per_s']:.1f} | "
                  f"{cell['speedup']:.2f}x |" for cell in bench["cells"]]
    versions = manifest.export.versions
    lines += ["", "## How it was made", "", "```bash", f"spdc export {manifest.source.path} --onnx"
              + (f" --quantize {manifest.export.quantize}" if manifest.export.quantize != "none" else ""), "```", "",
              f"spdc {manifest.spdc}, " + ", ".join(f"{name} {version}" for name, version in versions.items())
              + ". Load it with onnxruntime, or optimum's `ORTModelForSequenceClassification.from_pretrained` on "
              "this folder.", ""]
    return "\n".join(lines)


def record_manifest(artifact: Path, manifest: ExportManifest, *, location: Path | None = None) -> None:
    """Write the manifest, then the model card regenerated from it (`location`: where the files are now)."""
    folder = location or artifact
    write_manifest(folder, manifest)
    atomic_write_text(folder / CARD_FILE, card_text(artifact, manifest, location=folder))


def read_front_matter(text: str) -> dict[str, Any]:
    """The YAML header of a model card (for tests and tools that read cards)."""
    if not text.startswith("---\n"):
        raise ValueError("a model card starts with a YAML front matter block")
    return yaml.safe_load(text.split("\n---\n", 1)[0].removeprefix("---\n"))


def record_bench(artifact: Path, bench: dict[str, Any]) -> None:
    """Keep an artifact's cells of its last bench (with the machine block) beside it, and regenerate its card."""
    from spdc.deploy.manifest import read_manifest

    atomic_write_text(artifact / BENCH_FILE, json.dumps(bench, indent=2) + "\n")
    record_manifest(artifact, read_manifest(artifact))
