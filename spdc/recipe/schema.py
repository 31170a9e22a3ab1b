"""Recipe schema: typed, strict (unknown keys are errors) and round-trippable (`spdc recipe show` output loads back).

A recipe names a task, a teacher model and how to fine-tune it. The SPD sections (student, pruning, grafting,
distillation, stages, export, bench) are added beside `teacher` as optional top-level keys, so every recipe
written against this schema stays valid as the schema grows; `version` guards incompatible changes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from spdc.data.metrics import METRICS
from spdc.data.tasks import GLUE_TASKS, canonical_task_name, implied_head
from spdc.heads import HEADS

SAFE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"  # one path component, never '.', '..' or hidden


class StrictModel(BaseModel):
    """Base for every recipe section: unknown keys are rejected so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ColumnMapping(StrictModel):
    """Which columns (or JSON keys) of a custom data file hold the texts and the label."""

    text: str
    text_pair: str | None = None
    label: str


class TaskConfig(StrictModel):
    """The task and where its data comes from: a GLUE task name, or `custom` with files and a column mapping."""

    name: str = Field(description="GLUE task (cola, sst2, mrpc, qqp, stsb, mnli, qnli, rte) or 'custom'.")
    data_dir: Path | None = Field(
        None, description="GLUE: folder holding this task's train.tsv/dev.tsv; tried before $SPDC_DATA_DIR and the hub."
    )
    train_file: Path | None = Field(None, description="custom: training file (csv, tsv, json or jsonl).")
    dev_file: Path | None = Field(None, description="custom: evaluation file.")
    format: Literal["auto", "csv", "tsv", "json", "jsonl"] = Field(
        "auto", description="custom: file format; auto picks it from the file extension."
    )
    columns: ColumnMapping | None = Field(None, description="custom: which columns hold text, text_pair, label.")
    labels: list[str] | None = Field(None, description="custom classification: label names, in index order.")
    regression: bool = Field(False, description="custom: the label is a real number (one output).")
    metrics: list[str] | None = Field(
        None, description="custom: metrics to report; the first selects the best checkpoint.")
    head: str | None = Field(
        None, description=f"Task head ({', '.join(HEADS)}); null: the task's own (sequence-regression for stsb "
        "and custom `regression: true`, sequence-classification otherwise).")
    max_seq_length: int = Field(128, gt=0, le=32_768, description="Truncate tokenised inputs to this many tokens.")
    max_train_samples: int | None = Field(
        None, gt=0, le=1_000_000_000, description="Use only the first N training rows.")
    max_eval_samples: int | None = Field(
        None, gt=0, le=1_000_000_000, description="Use only the first N evaluation rows.")
    drop_bad_rows: bool = Field(False, description="Skip invalid rows (and report how many) instead of failing.")
    validation_fraction: float = Field(
        0.0, ge=0, le=0.5,
        description="Hold out this fraction of the training rows (a fixed seeded split) as a validation split: the "
        "best checkpoint is selected on it, never on dev, and it is not trained on. 0: select on dev.")

    @field_validator("head")
    @classmethod
    def _check_head(cls, head: str | None, info: ValidationInfo) -> str | None:
        if head is None:
            return None
        if head not in HEADS:
            raise ValueError(f"unknown head (known: {', '.join(HEADS)})")
        name = canonical_task_name(str(info.data.get("name", "")))
        implied = (GLUE_TASKS[name].head if name is not None else
                   implied_head(regression=bool(info.data.get("regression"))))
        if head != implied:
            raise ValueError(f"task {info.data.get('name')!r} needs the {implied} head")
        return head

    def implied_fields(self) -> set[str]:
        """Fields left at a default that changes nothing (a head of null is the task's own): not part of the
        fingerprints, so a recipe resumes whether it names its head or not."""
        return {"head"} if self.head is None else set()

    @model_validator(mode="after")
    def _check_source(self) -> TaskConfig:
        if self.name == "custom":
            missing = [key for key in ("train_file", "dev_file", "columns") if getattr(self, key) is None]
            if missing:
                raise ValueError(f"a custom task needs {', '.join(missing)}")
            if self.regression == bool(self.labels):
                raise ValueError("a custom task needs either `labels` (classification) or `regression: true`")
            unknown = [name for name in self.metrics or [] if name not in METRICS]
            if unknown:
                raise ValueError(f"unknown metric(s) {unknown}; known: {sorted(METRICS)}")
            return self
        canonical = canonical_task_name(self.name)
        if canonical is None:
            raise ValueError(f"unknown task {self.name!r}; use one of {', '.join(GLUE_TASKS)} or 'custom'")
        custom_only = [
            key
            for key in ("train_file", "dev_file", "columns", "labels", "metrics")
            if getattr(self, key) is not None
        ]
        if custom_only or self.regression:
            raise ValueError(f"{', '.join(custom_only or ['regression'])} only apply to `name: custom`")
        self.name = canonical
        return self


class TrainingConfig(StrictModel):
    """One optimisation schedule. Used for teacher fine-tuning now, and by every SPD stage later."""

    epochs: int = Field(4, gt=0, le=100_000, description="Passes over the training data.")
    max_steps: int | None = Field(
        None, gt=0, le=1_000_000_000, description="Stop after this many optimizer steps (overrides epochs).")
    learning_rate: float = Field(3e-5, gt=0, description="Peak learning rate of the linear warmup/decay schedule.")
    batch_size: int = Field(
        32, gt=0, le=65_536, description="Global batch of one optimizer step, whatever the number of processes and "
        "accumulation steps it is split into.")
    gradient_accumulation_steps: int = Field(
        1, gt=0, le=4_096, description="Micro-batches each process runs per optimizer step (gradients accumulated): "
        "the batch is split into processes x steps parts, so less memory, same result.")
    eval_batch_size: int = Field(64, gt=0, le=65_536, description="Evaluation batch size.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (not applied to biases and LayerNorm).")
    adam_epsilon: float = Field(1e-8, gt=0, description="AdamW epsilon.")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Fraction of steps with linearly rising learning rate.")
    max_grad_norm: float | None = Field(1.0, gt=0, description="Clip gradients to this global norm; null disables.")
    logging_steps: int = Field(
        10, gt=0, le=1_000_000_000, description="Write a train record to metrics.jsonl every N steps.")
    eval_every_steps: int | None = Field(
        None, gt=0, le=1_000_000_000,
        description="Evaluate (and checkpoint) every N steps, in addition to the end of every epoch."
    )
    train_eval_samples: int = Field(
        512, ge=0, le=1_000_000_000,
        description="Training rows scored in eval mode at each evaluation (the train metric); 0 disables."
    )


class TeacherConfig(StrictModel):
    """The model to fine-tune (and, in SPD, to distil from)."""

    model: str = Field("minilm", description="Hub id, local directory, or the alias `minilm` (offline MiniLM-L6).")
    trust_remote_code: bool = Field(False, description="Allow model code from the hub (off unless you trust it).")
    finetuned: bool = Field(
        True, description="compress: `model` is already fine-tuned on the task; false fine-tunes it first "
        "(with `finetune`) into <run dir>-teacher."
    )
    finetune: TrainingConfig = Field(
        default_factory=TrainingConfig, description="Schedule used by `spdc finetune`."
    )


class StudentConfig(StrictModel):
    """The student: a copy of the teacher's encoder layers; embeddings, pooler and classifier shared and frozen."""

    num_layers: int | None = Field(None, gt=0, le=1_000, description="Student depth; null copies every teacher layer.")
    train_embeddings: bool = Field(False, description="Give the student its own trainable embeddings.")
    train_classifier: bool = Field(False, description="Give the student its own trainable pooler and classifier.")


class PruningConfig(StrictModel):
    """Which units are pruned, by which criterion, on which schedule (over all stages with `prune: true`)."""

    granularity: Literal["unstructured", "structured", "2:4"] = Field(
        "unstructured", description="unstructured: single weights (the paper); structured: heads and FFN neurons; "
        "2:4: two of every four consecutive weights of a row (GPU sparse tensor cores), always ending at 50%."
    )
    criterion: Literal["magnitude", "first_order"] = Field(
        "magnitude", description="magnitude: |w|; first_order: accumulated |w * grad| (Taylor importance)."
    )
    scope: Literal["local", "global"] = Field(
        "local", description="local: same sparsity per matrix (unstructured) or per layer (structured); "
        "global: ranked across all."
    )
    schedule: Literal["cubic", "oneshot"] = Field(
        "cubic", description="cubic: s_f + (s_i - s_f)(1 - t/T)^3 over the pruning stages; oneshot (structured): "
        "score once before training, cut to the final sparsities, fold, and train the smaller student."
    )
    initial_sparsity: float = Field(0.0, ge=0, lt=1, description="Unstructured sparsity at the start (s_i).")
    final_sparsity: float = Field(0.9, ge=0, lt=1, description="Unstructured target sparsity (s_f).")
    head_sparsity: float = Field(0.5, ge=0, lt=1, description="Structured: fraction of attention heads removed.")
    neuron_sparsity: float = Field(0.5, ge=0, lt=1, description="Structured: fraction of FFN neurons removed.")
    num_updates: int = Field(
        12, gt=0, le=1_000_000, description="Mask recomputations, evenly spaced over the pruning stages.")
    score_batches: int | None = Field(
        32, gt=0, le=1_000_000, description="oneshot with first_order: training batches the scores are summed "
        "over (null: one pass over every training row).")
    warm_start: bool = Field(
        False, description="cubic with first_order: score over score_batches before training and add those "
        "scores to the first mask update's (else it sees only the gradients of the steps before it).")
    tolerance: float = Field(
        0.02, ge=0, le=1, description="oneshot: how far (as a fraction) the cut may land from a requested "
        "sparsity before the recipe is refused; whole heads and neurons go, so not every sparsity is reachable.")

    @model_validator(mode="after")
    def _two_four_ends_at_half(self) -> PruningConfig:
        if self.granularity == "2:4" and "final_sparsity" in self.model_fields_set and self.final_sparsity != 0.5:
            raise ValueError("granularity 2:4 keeps two of every four weights: final_sparsity is 0.5 (leave it out)")
        return self


class GraftingConfig(StrictModel):
    """Probability p that a layer uses its student module at a training step (else the frozen teacher's)."""

    schedule: Literal["constant", "linear", "constant_then_linear"] = Field(
        "linear", description="constant: p0; linear: p0 to 1 over the stage; constant_then_linear: p0, then to 1."
    )
    p0: float = Field(0.5, ge=0, le=1, description="Starting (or constant) probability.")
    hold_fraction: float = Field(
        0.5, ge=0, lt=1, description="constant_then_linear: fraction of the stage spent at p0 before the ramp."
    )


class LossWeights(StrictModel):
    """Weights of the distillation loss parts."""

    hidden: float = Field(1.0, ge=0, description="MSE between hidden states (embedding output and every layer).")
    attention: float = Field(1.0, ge=0, description="MSE between attention probabilities.")
    logits: float = Field(1.0, ge=0, description="Soft cross-entropy at the temperature (MSE for regression).")
    hard_label: float = Field(0.0, ge=0, description="Cross-entropy (MSE for regression) against the labels.")


class DistillationConfig(StrictModel):
    """How the student learns from the teacher."""

    temperature: float = Field(1.0, gt=0, description="Softmax temperature of the logit loss.")
    weights: LossWeights = Field(default_factory=LossWeights, description="Default loss weights of every stage.")
    layer_map: list[int] | None = Field(
        None, description="Teacher layer matched by each student layer; null: uniform "
        "(student i -> teacher (i+1)*T/S-1)."
    )


class StageConfig(TrainingConfig):
    """One compression stage: its own schedule (the lr decay restarts per stage), pruning, grafting and losses."""

    name: str = Field(description="Stage name shown in progress and logs.")
    prune: bool = Field(False, description="Prune during this stage (the cubic schedule spans all pruning stages).")
    grafting: GraftingConfig | None = Field(None, description="Grafting schedule; null: every layer is the student's.")
    loss_weights: LossWeights | None = Field(None, description="Override distillation.weights for this stage.")


class ParityThresholds(StrictModel):
    """When an exported model counts as giving the same answers as its PyTorch source."""

    atol: float = Field(1e-4, gt=0, description="fp32: largest allowed absolute logit difference.")
    min_agreement: float = Field(1.0, ge=0, le=1, description="fp32: least fraction of equal top-1 predictions.")
    max_metric_drop: float = Field(
        0.005, ge=0, description="int8: largest allowed drop of the task's main metric (0.005 = 0.5 points)."
    )
    fp16_atol: float = Field(5e-3, gt=0, description="fp16: largest allowed absolute logit difference.")
    fp16_min_agreement: float = Field(
        0.99, ge=0, le=1, description="fp16: least fraction of equal top-1 predictions (near-ties may flip).")


class TrackingConfig(StrictModel):
    """Experiment tracking (`pip install 'spdc[tracking]'`). The run directory stays the record; trackers mirror it."""

    backends: list[Literal["tensorboard", "mlflow"]] = Field(
        default_factory=list, description="tensorboard: event files in <run>/tensorboard; mlflow: a run through "
        "MLflow's client (params = the resolved recipe, metrics per logging step and evaluation, summary and "
        "report as artifacts, tagged with the run directory).")
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow tracking URI; null: a local file store beside the run (<runs folder>/mlruns).")
    mlflow_experiment: str | None = Field(None, description="MLflow experiment; null: the recipe's name.")


class ExportConfig(StrictModel):
    """Folding, ONNX export, optimisation, quantisation and the parity check that follows every export."""

    @model_validator(mode="after")
    def _one_precision(self) -> ExportConfig:
        if self.precision == "fp16" and self.quantize != "none":
            raise ValueError("precision fp16 and int8 quantize exclude each other; export them separately")
        return self

    fold: bool = Field(False, description="Fold the student into a smaller dense model at the end of compress.")
    opset: int = Field(17, ge=14, le=23, description="ONNX opset.")
    dynamo: bool = Field(False, description="Use the torch.export-based exporter instead of the TorchScript one.")
    optimize: Literal["O0", "O1", "O2", "O3"] = Field(
        "O2", description="O0 none; O1 onnxruntime basic graph rewrites; O2 + transformer fusions; "
        "O3 + GELU approximation (changes numerics slightly).",
    )
    onnx: bool = Field(False, description="compress: export the (folded) student to ONNX with the parity check at the "
                       "end of the run, into <run dir>/onnx (or onnx-int8).")
    precision: Literal["fp32", "fp16"] = Field(
        "fp32", description="Float precision of the exported graph: fp16 halves the file and suits GPUs (inputs and "
        "logits stay fp32); checked with the fp16 parity thresholds. Not combined with quantize.")
    quantize: Literal["none", "dynamic-int8", "static-int8"] = Field(
        "none", description="int8 with onnxruntime's quantizer: dynamic (weights ahead of time, activations at run "
        "time) or static (activations calibrated on training rows of the task, QDQ).")
    int8_per_channel: bool = Field(True, description="int8: one weight scale per output channel (else per tensor).")
    int8_after_fusion: bool = Field(
        True, description="int8: quantise the graph after onnxruntime's transformer fusions (fused attention becomes "
        "QAttention); false quantises the plain export.")
    int8_embeddings: bool = Field(False, description="int8: quantise the embedding table too.")
    int8_fallback: bool = Field(
        True, description="int8: when the metric drop exceeds parity.max_metric_drop, keep the fewest most sensitive "
        "operators in fp32 until parity passes (listed in the manifest).")
    calibration_samples: int = Field(
        128, gt=0, le=100_000, description="Training rows for static int8 calibration and the fallback's "
        "sensitivity ranking.")
    sparse: Literal["auto", "never"] = Field(
        "auto", description="auto: store matrices with at least 50% exact zeros as sparse initializers when that "
        "shrinks the file (onnxruntime densifies them when loading).")
    samples: int | None = Field(
        None, gt=0, le=1_000_000_000, description="Parity on the first N dev rows; null: the whole split.")
    parity: ParityThresholds = Field(default_factory=ParityThresholds, description="Parity thresholds.")


class Recipe(StrictModel):
    """A whole recipe."""

    version: Literal[1] = Field(1, description="Schema version.")
    name: str = Field(pattern=SAFE_NAME, max_length=128,
                      description="Run name (letters, digits, '.', '_', '-'); the default output directory is "
                      "runs/<name>.")
    seed: int = Field(42, ge=0, le=2**32 - 1,
                      description="Seed for weights, data order and dropout: same seed, same metrics on CPU.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto uses CUDA when present, else CPU.")
    threads: int | None = Field(None, gt=0, le=1_024, description="CPU threads for torch; null keeps torch's default.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="Training precision: bf16 (or, on CUDA, fp16 with a gradient scaler) autocast with fp32 "
        "master weights and optimizer state, or fp32. auto picks bf16 on CUDA GPUs that support it (fp16 on those "
        "that do not) and on CPUs with AMX-BF16 or AVX512-BF16, else fp32. Evaluation and reported metrics are "
        "always fp32.")
    output_dir: Path | None = Field(None, description="Run directory; default runs/<name>.")
    task: TaskConfig = Field(description="The task and where its data comes from.")
    teacher: TeacherConfig = Field(
        default_factory=TeacherConfig, description="The model to fine-tune (and, in SPD, to distil from)."
    )
    method: Literal["spd", "kd", "magnitude"] = Field(
        "spd", description="spd: pruning + grafting + distillation; kd: no grafting; "
        "magnitude: labels only, no teacher."
    )
    student: StudentConfig = Field(default_factory=StudentConfig, description="The student built from the teacher.")
    pruning: PruningConfig | None = Field(None, description="Pruning; null compresses by distillation alone.")
    distillation: DistillationConfig = Field(default_factory=DistillationConfig, description="Distillation losses.")
    stages: list[StageConfig] = Field(default_factory=list, description="Compression stages, run in order.")
    export: ExportConfig = Field(default_factory=ExportConfig, description="Fold, export and parity settings.")
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="Experiment tracking backends.")

    def resolved_output_dir(self) -> Path:
        return self.output_dir or Path("runs") / self.name

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)

    def teacher_fingerprint(self) -> str:
        """Hash of what fine-tuning the teacher depends on (seed, task, teacher): a teacher run is reused only
        for a recipe with the same teacher fingerprint."""
        data = {"seed": self.seed, "task": self.task.model_dump(mode="json", exclude=self.task.implied_fields()),
                "teacher": self.teacher.model_dump(mode="json", exclude={"finetuned"})}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def fingerprint(self, *, ignore: tuple[str, ...] = ("output_dir", "export", "tracking")) -> str:
        """Hash of the resolved recipe, used to refuse resuming a run with a different recipe (export and
        tracking settings do not change training, so they are left out)."""
        data = self.model_dump(mode="json", exclude=set(ignore))
        if "task" in data:
            data["task"] = self.task.model_dump(mode="json", exclude=self.task.implied_fields())
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
