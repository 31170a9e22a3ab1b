"""Nothing lost, ever: every bad input is a typed error with its documented exit code (and exactly one JSON
document under --json) before work starts; outputs never replace what spdc did not create; writes are atomic
and staged beside their destination; killed runs leave nothing that breaks the next one."""

from __future__ import annotations

import errno
import json
import os
import random
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from click.testing import CliRunner, Result

from spdc.cli.main import cli
from spdc.compression.grafting import Grafting
from spdc.compression.methods import METHODS
from spdc.compression.objective import CompressionPlugin
from spdc.compression.recorder import OutputRecorder
from spdc.compression.student import build_student
from spdc.core.atomic import atomic_directory, atomic_write_text, recover
from spdc.core.errors import OutputError
from spdc.core.record import MARKER_FILE
from spdc.data.batching import encode
from spdc.data.examples import Example
from spdc.data.tasks import get_task
from spdc.heads import HEADS
from spdc.models.families import encoder_layers, family_of
from spdc.models.loading import load_model
from spdc.recipe import DistillationConfig, GraftingConfig, StageConfig, StudentConfig, load_recipe
from spdc.runs.directory import RunDirectory
from spdc.runs.setup import RunOptions, TrainingInputs
from spdc.training.finetune import finetune
from spdc.training.loop import Trainer, TrainingPlugin

from .conftest import killed_at_step, write_sst2_like

ROOT = Path(__file__).resolve().parent.parent
ONE_RUN = {"epochs": 1}


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def one_json_document(result: Result) -> dict:
    """stdout holds exactly one JSON document and no traceback appears anywhere."""
    assert "Traceback" not in result.output
    document = json.loads(result.stdout)  # raises if there is anything but one document
    assert isinstance(document, dict) and "ok" in document
    return document


def expect_error(result: Result, code: int, error_type: str, fragment: str) -> dict:
    assert result.exit_code == code, result.output
    document = one_json_document(result)
    assert document["ok"] is False and document["error"]["type"] == error_type
    assert fragment in document["error"]["message"], document["error"]["message"]
    return document


# --- recipes: any bytes, any numbers ---------------------------------------------------------------------------

BASE = "name: r\ntask: {name: mrpc}\n"
BAD_RECIPES = [
    (b"\xff\xfe\x00name: r", "not UTF-8"),
    (b"- just\n- a list\n", "must be a YAML mapping"),
    (b"name: [unclosed\n", "invalid YAML"),
    (BASE.encode() + b"teacher: {finetune: {learning_rate: .inf}}\n", "learning_rate: must be a finite"),
    (BASE.encode() + b"teacher: {finetune: {learning_rate: .nan}}\n", "learning_rate: must be a finite"),
    (BASE.encode() + b"seed: -1\n", "seed: must be >= 0"),
    (BASE.encode() + b"seed: 100000000000000000000\n", "seed: must be <= 4294967295"),
    (BASE.encode() + b"teacher: {finetune: {batch_size: 1000000000}}\n", "teacher.finetune.batch_size: must be <="),
    (BASE.encode() + b"threads: 100000\n", "threads: must be <= 1024"),
    (b"name: ..\ntask: {name: mrpc}\n", "name: must be one folder name"),
    (b"name: a/b\ntask: {name: mrpc}\n", "name: must be one folder name"),
    (b"name: .hidden\ntask: {name: mrpc}\n", "name: must be one folder name"),
    (b"a: &a [x, x, x, x, x, x, x, x, x, x]\n" + b"".join(
        f"{name}: &{name} [{', '.join(['*' + previous] * 10)}]\n".encode()
        for previous, name in zip("abcde", "bcdef", strict=True)), "expands to more than"),
    (b"name: r\n" + b"#" * (1 << 20) + b"\n", "larger than"),
]


@pytest.mark.parametrize(("content", "fragment"), BAD_RECIPES, ids=range(len(BAD_RECIPES)))
def test_bad_recipes_are_recipe_errors(content: bytes, fragment: str, tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_bytes(content)
    expect_error(invoke("recipe", "validate", str(path), "--json"), 2, "RecipeError", fragment)


@pytest.mark.parametrize(("override", "fragment"), [
    ("stages.5.epochs=3", "stages is a list of 2"),
    ("stages.first.epochs=3", "address an item by its index"),
    ("teacher.finetune.epochs.x=1", "teacher.finetune.epochs is not a section"),
])
def test_bad_list_overrides_say_how(override: str, fragment: str) -> None:
    recipe = ROOT / "recipes" / "demo-minilm-mrpc.yaml"
    expect_error(invoke("recipe", "validate", str(recipe), "--set", override, "--json"), 2, "RecipeError", fragment)


def test_set_reaches_stage_values() -> None:
    recipe = load_recipe(ROOT / "recipes" / "demo-minilm-mrpc.yaml", ["stages.0.epochs=3", "stages.1.name=tune"])
    assert recipe.stages[0].epochs == 3 and recipe.stages[1].name == "tune"


def test_relative_paths_are_taken_from_the_recipe_folder(tmp_path: Path, tiny_model_dir: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "project" / "recipes"
    folder.mkdir(parents=True)
    write_sst2_like(tmp_path / "project" / "data" / "SST-2")
    (tmp_path / "project" / "models").mkdir()
    (tmp_path / "project" / "models" / "tiny").symlink_to(tiny_model_dir)
    path = folder / "r.yaml"
    path.write_text("name: r\noutput_dir: ../out\ntask: {name: sst2, data_dir: ../data/SST-2}\n"
                    "teacher: {model: ../models/tiny}\n")
    monkeypatch.chdir(tmp_path)  # somewhere else entirely
    recipe = load_recipe(path, ["task.max_train_samples=8"])
    assert recipe.output_dir == tmp_path / "project" / "recipes" / ".." / "out"
    assert recipe.task.data_dir == folder / ".." / "data" / "SST-2"
    assert Path(recipe.teacher.model).resolve() == (tmp_path / "project" / "models" / "tiny").resolve()
    overridden = load_recipe(path, ["task.data_dir=elsewhere"])  # a --set path is the user's, from the cwd
    assert overridden.task.data_dir == Path("elsewhere")
    assert load_recipe(path, ["teacher.model=org/model"]).teacher.model == "org/model"  # a hub id stays


def test_sequence_longer_than_the_model_is_refused_before_training(tiny_recipe, tmp_path: Path) -> None:
    result = invoke("finetune", str(tiny_recipe()), "--set", "task.max_seq_length=65", "--out",
                    str(tmp_path / "run"), "--json")
    expect_error(result, 2, "RecipeError", "task.max_seq_length: 65 is longer than the model's 64 positions")
    assert not (tmp_path / "run").exists()


# --- data files: any size of field, any header, any encoding ---------------------------------------------------

def custom_recipe(tmp_path: Path, tiny_model_dir: Path, filename: str, content: bytes) -> Path:
    data = tmp_path / filename
    data.write_bytes(content)
    path = tmp_path / "custom.yaml"
    path.write_text(
        f"name: c\noutput_dir: {tmp_path / 'run'}\nteacher: {{model: {tiny_model_dir}}}\n"
        f"task: {{name: custom, train_file: {data}, dev_file: {data}, labels: [neg, pos], "
        "columns: {text: text, label: label}}\n")
    return path


BAD_DATA = [
    ("d.csv", b"text,label\n" + b"x" * (17 << 20) + b",pos\n", "line 2: unreadable CSV"),
    ("d.csv", b"text,text,label\na,b,pos\n", "column 'text' appears 2 times in the header"),
    ("d.csv", b"sentence,label\na,pos\n", "column 'text' is missing from the header"),
    ("d.csv", "text,label\nbon,pos\n".encode("utf-16"), "undecodable bytes"),
    ("d.jsonl", b'{"text": "a", "text": "b", "label": "pos"}\n', "line 1: invalid JSON (key 'text' appears"),
    ("d.json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("d.jsonl", b'{"text": {"nested": 1}, "label": "pos"}\n', "holds a dict, not text"),
    ("d.jsonl", b'{"text": "a", "label": [1]}\n', "is a list, not a label"),
    ("d.csv", b"", "no usable rows"),
    ("d.csv", b"text,label\n", "no usable rows"),
    ("d.tsv", b"text\tlabel\na\t99999999999999999999999\n", "label 99999999999999999999999 out of range"),
]


@pytest.mark.parametrize(("filename", "content", "fragment"), BAD_DATA, ids=range(len(BAD_DATA)))
def test_bad_data_files_are_data_errors(filename: str, content: bytes, fragment: str, tmp_path: Path,
                                        tiny_model_dir: Path) -> None:
    recipe = custom_recipe(tmp_path, tiny_model_dir, filename, content)
    document = expect_error(invoke("finetune", str(recipe), "--json"), 3, "DataError", fragment)
    assert filename in document["error"]["message"]  # the file is named
    assert not (tmp_path / "run").exists()


# --- models -----------------------------------------------------------------------------------------------------

def test_models_that_cannot_serve_are_model_load_errors(tiny_recipe, tiny_model_dir: Path, tmp_path: Path) -> None:
    no_config = tmp_path / "no-config"
    no_config.mkdir()
    expect_error(invoke("finetune", str(tiny_recipe()), "--set", f"teacher.model={no_config}", "--json"),
                 5, "ModelLoadError", "has no config.json")
    stsb = tmp_path / "glue" / "STS-B"
    stsb.mkdir(parents=True)
    rows = "sentence1\tsentence2\tscore\n" + "".join(f"good movie {i}\tbad plot\t{i % 5}.0\n" for i in range(8))
    (stsb / "dev.tsv").write_text(rows)
    result = invoke("eval", str(tiny_model_dir), "--task", "stsb", "--data-dir", str(stsb), "--json")
    expect_error(result, 5, "ModelLoadError", "classifier with 2 label(s), but task stsb has 1")


def test_unsupported_family_is_refused_before_writing(tiny_recipe, tmp_path: Path) -> None:
    from transformers import GPT2Config, GPT2ForSequenceClassification

    gpt = tmp_path / "gpt"
    GPT2ForSequenceClassification(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=64)
                                  ).save_pretrained(gpt)
    load_model(str(Path(tiny_recipe().read_text().split("model: ")[1].split("\n")[0])), None).tokenizer \
        .save_pretrained(gpt)
    recipe = tiny_recipe()
    out = tmp_path / "student"
    result = invoke("compress", str(recipe), "--set", f"teacher.model={gpt}", "--set", "stages=[{name: s}]",
                    "--out", str(out), "--json")
    expect_error(result, 5, "ModelLoadError", "model type 'gpt2' is not supported")
    assert not out.exists()


# --- artifacts ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("artifact") / "a"
    assert invoke("export", str(tiny_model_dir), "--no-validate", "--out", str(out)).exit_code == 0
    return out


def broken_copy(artifact: Path, tmp_path: Path, damage: Callable[[Path], None]) -> Path:
    import shutil

    copy = tmp_path / "broken"
    shutil.copytree(artifact, copy)
    damage(copy)
    return copy


ARTIFACT_DAMAGE: list[tuple[str, Callable[[Path], None], str]] = [
    ("truncated onnx", lambda a: (a / "model.onnx").write_bytes((a / "model.onnx").read_bytes()[:500]),
     "onnxruntime cannot load"),
    ("no config", lambda a: (a / "config.json").unlink(), "lacks a readable config.json"),
    ("manifest of the wrong shape", lambda a: (a / "spdc_manifest.json").write_text(
        json.dumps({"format": "spdc-onnx-artifact", "source": 3})), "not a valid spdc manifest"),
    ("manifest not JSON", lambda a: (a / "spdc_manifest.json").write_bytes(b"\x00\xff{"), "cannot read"),
]


@pytest.mark.parametrize(("name", "damage", "fragment"), ARTIFACT_DAMAGE, ids=[d[0] for d in ARTIFACT_DAMAGE])
def test_broken_artifacts_are_artifact_errors(name: str, damage: Callable[[Path], None], fragment: str,
                                              artifact: Path, tmp_path: Path) -> None:
    broken = broken_copy(artifact, tmp_path, damage)
    bench = invoke("bench", str(broken), "--batch-sizes", "1", "--seq-lens", "8", "--time-s", "0.01", "--json")
    expect_error(bench, 6, "ArtifactError", fragment)
    validate = invoke("validate", str(broken), "--task", "sst2", "--json")  # what a deployment cannot load
    assert validate.exit_code == 6, validate.output
    one_json_document(validate)


# --- outputs: never replace what spdc did not create -----------------------------------------------------------

def plant(folder: Path, name: str = "mine.txt") -> dict[Path, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    content = f"user data {random.random()}".encode()
    path.write_bytes(content)
    return {path: content}


def untouched(planted: dict[Path, bytes]) -> bool:
    return all(path.is_file() and path.read_bytes() == content for path, content in planted.items())


def test_overwrite_never_deletes_a_folder_spdc_did_not_create(tiny_recipe, tmp_path: Path) -> None:
    planted = plant(tmp_path / "user-dir")
    for extra in ([], ["--overwrite"]):
        result = invoke("finetune", str(tiny_recipe()), "--out", str(tmp_path / "user-dir"), *extra, "--json")
        expect_error(result, 8, "OutputError", "was not created by spdc" if extra else "already exists")
    assert untouched(planted)


@pytest.mark.parametrize("where", ["cwd", "parent of cwd", "a plain file", "the teacher", "the data's parent"])
def test_outputs_may_not_be_inputs_or_the_working_directory(where: str, tiny_recipe, tiny_model_dir: Path,
                                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work" / "here"
    planted = plant(work)
    monkeypatch.chdir(work)
    target = {"cwd": work, "parent of cwd": work.parent, "a plain file": work / "mine.txt",
              "the teacher": tiny_model_dir, "the data's parent": tmp_path / "glue"}[where]
    recipe = tiny_recipe()
    result = invoke("finetune", str(recipe), "--out", str(target), "--overwrite", "--json")
    expect_error(result, 8, "OutputError", str(target))
    assert untouched(planted) and (tiny_model_dir / "config.json").is_file()


def test_recipe_name_dotdot_cannot_delete_the_cwd(tiny_recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                  ) -> None:
    work = tmp_path / "runs"  # runs/.. would be tmp_path
    planted = plant(tmp_path)
    monkeypatch.chdir(tmp_path)
    text = tiny_recipe().read_text().replace("name: tiny\n", "name: ..\n")
    text = "\n".join(line for line in text.splitlines() if not line.startswith("output_dir"))
    (tmp_path / "dots.yaml").write_text(text)
    expect_error(invoke("finetune", str(tmp_path / "dots.yaml"), "--overwrite", "--json"), 2, "RecipeError",
                 "name: must be one folder name")
    assert untouched(planted) and not work.exists()


def test_export_and_fold_refuse_their_source_and_foreign_folders(compress_recipe, tmp_path: Path) -> None:
    recipe = compress_recipe("spd", "{granularity: structured, head_sparsity: 0.5, neuron_sparsity: 0.5, "
                                    "num_updates: 2}")
    run = tmp_path / "run"
    assert invoke("compress", str(recipe), "--out", str(run)).exit_code == 0
    before = {path: path.read_bytes() for path in run.rglob("*") if path.is_file()}
    expect_error(invoke("export", str(run), "--out", str(run), "--no-validate", "--json"), 8, "OutputError",
                 "is an input")
    expect_error(invoke("fold", str(run), "--out", str(run / "model"), "--json"), 8, "OutputError", "is an input")
    foreign = plant(tmp_path / "theirs")
    expect_error(invoke("export", str(run), "--out", str(tmp_path / "theirs"), "--no-validate", "--json"), 8,
                 "OutputError", "was not created by spdc")
    expect_error(invoke("fold", str(run), "--out", str(tmp_path / "theirs"), "--json"), 8, "OutputError",
                 "was not created by spdc")
    assert all(path.read_bytes() == content for path, content in before.items()) and untouched(foreign)
    # spdc's own outputs are replaced, as re-exporting expects
    for _ in range(2):
        assert invoke("export", str(run), "--no-validate").exit_code == 0
        assert invoke("fold", str(run)).exit_code == 0
    assert json.loads((run / "onnx" / MARKER_FILE).read_text())["kind"] == "artifact"


def test_report_and_plots_do_not_replace_user_files(compress_recipe, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert invoke("compress", str(compress_recipe("kd")), "--out", str(run)).exit_code == 0
    planted = plant(tmp_path, "notes.md") | plant(tmp_path / "notes-plots", "figure.png")
    expect_error(invoke("report", str(run), "--out", str(tmp_path / "notes.md"), "--json"), 8, "OutputError",
                 "notes.md already exists and was not written by spdc")
    assert invoke("report", str(run), "--out", str(tmp_path / "fresh.md")).exit_code == 0
    assert invoke("report", str(run), "--out", str(tmp_path / "fresh.md")).exit_code == 0  # its own: replaced
    planted |= plant(tmp_path / "pictures", "latency.png")
    result = invoke("bench", str(run), "--batch-sizes", "1", "--seq-lens", "8", "--time-s", "0.01", "--warmup-s",
                    "0", "--plot", str(tmp_path / "pictures" / "latency.png"), "--json")
    expect_error(result, 8, "OutputError", "latency.png already exists")
    assert untouched(planted)


def test_teacher_run_is_reused_only_for_the_same_teacher_recipe(compress_recipe, tmp_path: Path) -> None:
    recipe = compress_recipe("kd")
    base = ["teacher.finetuned=false", "teacher.finetune.epochs=1"]
    settings = [arg for override in base for arg in ("--set", override)]
    first = invoke("compress", str(recipe), *settings, "--out", str(tmp_path / "run"), "--json")
    assert first.exit_code == 0, first.output
    teacher_model = (tmp_path / "run-teacher" / "model" / "model.safetensors").read_bytes()
    again = invoke("compress", str(recipe), *settings, "--out", str(tmp_path / "run"), "--overwrite", "--json")
    assert again.exit_code == 0  # same teacher recipe: the teacher run is reused as it is
    assert (tmp_path / "run-teacher" / "model" / "model.safetensors").read_bytes() == teacher_model
    other = [*settings, "--set", "teacher.finetune.learning_rate=1e-3"]
    import shutil

    shutil.rmtree(tmp_path / "run")  # the student run is gone; its teacher run stays
    changed = invoke("compress", str(recipe), *other, "--out", str(tmp_path / "run"), "--json")
    expect_error(changed, 4, "CheckpointError", "different teacher recipe")
    retrained = invoke("compress", str(recipe), *other, "--out", str(tmp_path / "run"), "--overwrite", "--json")
    assert retrained.exit_code == 0, retrained.output
    assert (tmp_path / "run-teacher" / "model" / "model.safetensors").read_bytes() != teacher_model


def test_derived_teacher_folder_with_user_files_is_refused(compress_recipe, tmp_path: Path) -> None:
    planted = plant(tmp_path / "run-teacher")
    recipe = compress_recipe("kd")
    for extra in ([], ["--overwrite"]):
        result = invoke("compress", str(recipe), "--set", "teacher.finetuned=false", "--out", str(tmp_path / "run"),
                        *extra, "--json")
        expect_error(result, 8, "OutputError", "run-teacher already exists and was not created by spdc")
    assert untouched(planted)


# --- atomic writes ----------------------------------------------------------------------------------------------

def test_export_stages_beside_its_destination_across_file_systems(tiny_model_dir: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on another file system than the test's temp folder")
    scratch = Path(tempfile.mkdtemp(dir=shm))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # $TMPDIR on another file system
    result = invoke("export", str(tiny_model_dir), "--no-validate", "--out", str(tmp_path / "a"), "--json")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a" / "model.onnx").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".a.")]  # no staging left behind


def test_unwritable_destination_is_an_output_error_and_leaves_nothing(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError, match=r"cannot write .*out\.txt: no space left"):
        atomic_write_text(tmp_path / "out.txt", "x")
    with pytest.raises(OutputError, match=r"cannot write .*folder: no space left"), \
            atomic_directory(tmp_path / "folder") as staging:
        atomic_write_text(staging / "inner.txt", "x")
    assert list(tmp_path.iterdir()) == []


def test_quantising_on_a_full_disk_is_an_output_error_and_leaves_nothing(tiny_model_dir: Path, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """ONNX truncates onnxruntime's shape-inferred copy silently on a full disk (the quantizer then fails on an
    empty model with "Failed to find proper ai.onnx domain"): spdc checks the room first."""
    import spdc.deploy.quantize as quantize

    monkeypatch.setattr(quantize.shutil, "disk_usage", lambda folder: SimpleNamespace(free=0))
    result = invoke("export", str(tiny_model_dir), "--quantize", "dynamic-int8", "--no-validate",
                    "--out", str(tmp_path / "int8"), "--json")
    expect_error(result, 8, "OutputError", "no space left on the device: int8 quantisation needs about")
    assert list(tmp_path.iterdir()) == []


def test_a_failing_quantizer_is_an_artifact_error_with_its_message(tiny_model_dir: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime.quantization

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("Failed to find proper ai.onnx domain")

    monkeypatch.setattr(onnxruntime.quantization, "quantize_dynamic", broken)
    result = invoke("export", str(tiny_model_dir), "--quantize", "dynamic-int8", "--no-validate",
                    "--out", str(tmp_path / "int8"), "--json")
    expect_error(result, 6, "ArtifactError", "quantizer failed on the exported fp32 graph (dynamic int8, "
                 "per-channel weights): ValueError: Failed to find proper ai.onnx domain")
    assert list(tmp_path.iterdir()) == []


def test_leftovers_of_a_killed_writer_are_cleaned_and_swaps_undone(tmp_path: Path) -> None:
    dead = 2**22 + 12345  # above pid_max on Linux: no such process
    stale = tmp_path / f".model.{dead}.k3x9_q2a.tmp"  # mkstemp: 8 random characters
    stale.mkdir()
    (stale / "half.bin").write_bytes(b"half")
    swapped = tmp_path / f".checkpoint.{dead}.old"  # killed between the two renames of a swap
    swapped.mkdir()
    (swapped / "weights.bin").write_bytes(b"old weights")
    with atomic_directory(tmp_path / "model") as staging:
        (staging / "new.bin").write_bytes(b"new")
    assert not stale.exists() and (tmp_path / "model" / "new.bin").is_file()
    recover(tmp_path / "checkpoint")
    assert (tmp_path / "checkpoint" / "weights.bin").read_bytes() == b"old weights" and not swapped.exists()


def test_written_files_honour_the_umask(tiny_recipe, tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        run = Path(finetune(load_recipe(tiny_recipe(**ONE_RUN)), RunOptions(output_dir=tmp_path / "run",
                                                                             show_progress=False)).run_dir)
    finally:
        os.umask(previous)
    for path in [run, run / "model", run / "checkpoints", *run.rglob("*")]:
        mode = path.stat().st_mode & 0o777
        assert mode & 0o027 == 0, f"{path} has mode {oct(mode)}"
    assert (run / "summary.json").stat().st_mode & 0o777 == 0o640


def test_resume_recovers_from_a_torn_metrics_line(tiny_recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                  ) -> None:
    recipe = load_recipe(tiny_recipe(epochs=2, eval_every_steps=4))
    reference = finetune(recipe, RunOptions(output_dir=tmp_path / "a", show_progress=False))
    killed_at_step(monkeypatch, 11,
                   lambda: finetune(recipe, RunOptions(output_dir=tmp_path / "b", show_progress=False)))
    with (tmp_path / "b" / "metrics.jsonl").open("a") as handle:
        handle.write('{"kind": "train", "stage": "train", "st')  # killed mid-append by another writer
    resumed = finetune(recipe, RunOptions(output_dir=tmp_path / "b", resume=True, show_progress=False))
    assert resumed.dev == reference.dev and resumed.best_step == reference.best_step
    records = RunDirectory(tmp_path / "b").read_metrics()
    assert [r.step for r in records] == [r.step for r in RunDirectory(tmp_path / "a").read_metrics()]


# --- grafting that draws no student layer ---------------------------------------------------------------------

def test_a_step_that_grafts_only_teacher_layers_learns_nothing_and_advances(tiny_model_dir: Path,
                                                                           sst2_dir: Path, tmp_path: Path) -> None:
    teacher = load_model(str(tiny_model_dir), None).model
    teacher.set_attn_implementation("eager")
    family = family_of(teacher)
    student, layer_map = build_student(teacher, family, StudentConfig(), None)
    stage = StageConfig(name="s", grafting=GraftingConfig(schedule="constant", p0=0.0), batch_size=4,
                        learning_rate=1e-2, warmup_ratio=0.0, max_steps=3, train_eval_samples=0)
    grafting = Grafting(stage.grafting, stage_steps=3, seed=0, stage_index=0,
                        student_layers=encoder_layers(student, family), teacher_layers=encoder_layers(teacher, family),
                        layers_path=family.layers)
    assert grafting.draw(0) == [False, False]  # the forced all-teacher draw
    tokenizer = load_model(str(tiny_model_dir), None).tokenizer
    rows = encode([Example("good movie", None, 1), Example("bad plot", None, 0)] * 4, tokenizer, 16)
    before = {name: value.clone() for name, value in student.state_dict().items()}
    run = RunDirectory.prepare(tmp_path / "run", load_recipe(
        ROOT / "recipes" / "demo-minilm-mrpc.yaml"), resume=False, overwrite=False)
    with OutputRecorder(family, [teacher, student], [grafting.teacher_layers, grafting.student_layers]) as recorder:
        plugin: TrainingPlugin = CompressionPlugin(
            method=METHODS["spd"], stage=stage, grafting=grafting, distillation=DistillationConfig(),
            teacher=teacher, layer_map=layer_map, recorder=recorder, head=HEADS["sequence-classification"],
            pruner=None, pruning_offset=0)
        inputs = TrainingInputs(spec=get_task("sst2"), tokenizer=tokenizer, train_data=rows, dev_data=rows,
                                validation_data=None, collate=HEADS["sequence-classification"].collator(tokenizer),
                                run=run, device=torch.device("cpu"))
        trainer = Trainer(model=student, inputs=inputs, config=stage, seed=0, fingerprint="f", plugin=plugin,
                          show_progress=False)
        trainer.fit()
    assert trainer.skipped_steps == 3 and trainer.scheduler.last_epoch == 3
    assert all(torch.equal(before[name], value) for name, value in student.state_dict().items())


def test_compress_with_all_teacher_draws_completes(compress_recipe, tmp_path: Path) -> None:
    recipe = compress_recipe("spd").read_text().replace("grafting: {schedule: linear, p0: 0.5}",
                                                        "grafting: {schedule: constant, p0: 0.0}")
    path = tmp_path / "p0.yaml"
    path.write_text(recipe)
    result = invoke("compress", str(path), "--out", str(tmp_path / "run"), "--json")
    assert result.exit_code == 0, result.output
    train = [r for r in RunDirectory(tmp_path / "run").read_metrics() if r.kind == "train" and r.stage == "prune"]
    assert all(record.p == 0.0 for record in train)


def test_interrupted_export_does_not_suggest_resume(tiny_model_dir: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import spdc.deploy.build as build

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(build, "export_to_onnx", interrupted)
    result = invoke("export", str(tiny_model_dir), "--no-validate", "--out", str(tmp_path / "a"))
    assert result.exit_code == 130 and "--resume" not in result.output and "run the command again" in result.output
    assert not (tmp_path / "a").exists() and not list(tmp_path.glob(".a.*"))


def test_every_command_leaves_user_files_byte_for_byte(compress_recipe, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """User files planted where outputs land: the cwd, the outputs' parent, inside the source run, inside the
    default artifact and plot locations, and in the sibling `-teacher` folder a compress would derive."""
    work = tmp_path / "work"
    monkeypatch.chdir(tmp_path)
    planted = plant(work) | plant(tmp_path) | plant(tmp_path / "runs") | plant(tmp_path / "runs" / "kd-teacher")
    recipe = compress_recipe("kd", "{granularity: structured, head_sparsity: 0.5, neuron_sparsity: 0.5, "
                                   "num_updates: 2}", extra="export: {fold: true}\n")
    monkeypatch.chdir(work)
    runs = tmp_path / "runs"
    codes: dict[str, list[int]] = {}

    def run(name: str, *args: str) -> None:
        for extra in ([], ["--overwrite"]) if name in ("finetune", "compress") else ([],):
            result = invoke(*args, *extra, "--json")
            assert "Traceback" not in result.output
            codes.setdefault(name, []).append(result.exit_code)

    # the derived teacher folder holds user files: refused, with and without --overwrite
    run("compress-teacher", "compress", str(recipe), "--set", "teacher.finetuned=false", "--out", str(runs / "kd"))
    run("compress-teacher-overwrite", "compress", str(recipe), "--set", "teacher.finetuned=false", "--out",
        str(runs / "kd"), "--overwrite")
    run("compress", "compress", str(recipe), "--out", str(runs / "kd"))
    planted |= plant(runs / "kd")  # inside the source run from now on
    run("compress-over-user-file", "compress", str(recipe), "--out", str(runs / "kd"), "--overwrite")
    run("finetune", "finetune", str(recipe), "--out", str(runs))  # the parent of every run
    run("export", "export", str(runs / "kd"), "--no-validate")
    planted |= plant(runs / "kd" / "onnx-int8")
    run("export-int8", "export", str(runs / "kd"), "--no-validate", "--quantize", "dynamic-int8")
    run("fold", "fold", str(runs / "kd"))
    run("fold-to-cwd", "fold", str(runs / "kd"), "--out", str(work))
    run("report", "report", str(runs / "kd"))
    run("report-to-user-file", "report", str(runs / "kd"), "--out", str(work / "mine.txt"))
    run("bench-plot-on-user-file", "bench", str(runs / "kd" / "onnx"), "--batch-sizes", "1", "--seq-lens", "8",
        "--time-s", "0.01", "--warmup-s", "0", "--plot", str(tmp_path / "mine.txt"))
    run("validate", "validate", str(runs / "kd" / "onnx"), "--data-dir", str(tmp_path / "glue" / "SST-2"))
    assert untouched(planted)
    assert codes["compress-teacher"] == [8] and codes["compress-teacher-overwrite"] == [8]
    assert codes["compress"][0] == 0 and codes["compress"][1] == 0  # an spdc run is replaced with --overwrite
    assert codes["compress-over-user-file"] == [8] and codes["finetune"] == [8, 8]
    assert codes["export"] == [0] and codes["export-int8"] == [8] and codes["fold"] == [0]
    assert codes["fold-to-cwd"] == [8] and codes["report"] == [0] and codes["report-to-user-file"] == [8]
    assert codes["bench-plot-on-user-file"] == [8] and codes["validate"] == [0]
