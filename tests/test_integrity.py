"""Nothing lost, nothing silently wrong (issue 25): one test per class of fault plants it and checks the exit code,
the message, one JSON document, no traceback and every user file intact, byte for byte, at every depth.

1. ownership is read from the record of what spdc wrote, never guessed from names;
2. a model loads exactly as its files say, or not at all;
3. every fault ends in a typed error (checkpoints, metrics, disks, paths, graphs, lengths, usage);
4. the Python API checks its arguments with the CLI's bounds;
5. runs that go bad say so (divergence, SIGTERM, a lost torchrun rank, permissions).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import spdc
from spdc.core.errors import CheckpointError, DivergedError, OutputError, RecipeError, UsageError
from spdc.core.record import MARKER_FILE, recorded_files
from spdc.core.records import Result
from spdc.data.sources import load_split
from spdc.recipe import load_recipe
from spdc.runs.directory import RunDirectory
from spdc.runs.setup import RunOptions
from spdc.training import checkpoint as checkpoint_module
from spdc.training.checkpoint import latest_checkpoint, read_header
from spdc.training.finetune import finetune
from spdc.training.loop import Trainer

from .families_support import build_tiny_family
from .test_reliability import expect_error, invoke, one_json_document

ROOT = Path(__file__).resolve().parent.parent


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file below `folder`, at any depth (links by their target's name)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            found[str(path)] = f"link:{os.readlink(path)}"
        elif path.is_file():
            found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """A finished tiny fine-tuning run with an exported artifact inside it (onnx/), made once per module."""
    base = tmp_path_factory.mktemp("integrity")
    from .conftest import write_sst2_like

    data = write_sst2_like(base / "SST-2")
    recipe = base / "tiny.yaml"
    recipe.write_text(
        f"name: tiny\nseed: 7\ndevice: cpu\ntask: {{name: sst2, data_dir: {data}, max_seq_length: 16}}\n"
        f"teacher:\n  model: {tiny_model_dir}\n  finetune: {{epochs: 1, learning_rate: 2.0e-3, batch_size: 16, "
        "logging_steps: 2, train_eval_samples: 16}\n", encoding="utf-8")
    run = base / "run"
    finetune(load_recipe(recipe), RunOptions(output_dir=run, show_progress=False))
    assert invoke("export", str(run), "--json").exit_code == 0
    return run


def copy_run(run: Path, tmp_path: Path) -> Path:
    """A copy with its record intact (the record names relative paths)."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy, symlinks=True)
    return copy


# --- 1. ownership by record ----------------------------------------------------------------------------------------

def test_the_record_lists_every_file_spdc_wrote_with_its_size(finished_run: Path) -> None:
    record = recorded_files(finished_run)
    assert record is not None
    on_disk = {path.relative_to(finished_run).as_posix(): path.stat().st_size
               for path in finished_run.rglob("*") if path.is_file() and path.name != MARKER_FILE
               and not path.relative_to(finished_run).as_posix().startswith("onnx/")}
    assert record == on_disk  # the nested artifact keeps its own record
    artifact = recorded_files(finished_run / "onnx")
    assert artifact is not None and "model.onnx" in artifact and "tokenizer_config.json" in artifact


@pytest.mark.parametrize("planted", [".notes.tmp", ".thesis.old", "model/mine.txt", "checkpoints/mine.txt",
                                     "onnx/serve.py", "train_dev.png", "checkpoints/step-99999999/x.bin"])
def test_overwrite_refuses_any_file_spdc_did_not_record_at_any_depth(planted: str, finished_run: Path,
                                                                     tmp_path: Path) -> None:
    run = copy_run(finished_run, tmp_path)
    target = run / planted
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"the user's own bytes")
    before = snapshot(tmp_path)
    recipe = run / "recipe.yaml"
    result = invoke("finetune", str(recipe), "--out", str(run), "--overwrite", "--json")
    expect_error(result, 8, "OutputError", Path(planted).name)
    assert snapshot(tmp_path) == before


def test_a_recorded_file_changed_by_the_user_is_not_deleted(finished_run: Path, tmp_path: Path) -> None:
    run = copy_run(finished_run, tmp_path)
    with (run / "summary.json").open("a", encoding="utf-8") as handle:
        handle.write("\n")  # a hand edit
    before = snapshot(tmp_path)
    result = invoke("finetune", str(run / "recipe.yaml"), "--out", str(run), "--overwrite", "--json")
    expect_error(result, 8, "OutputError", "summary.json (changed)")
    assert snapshot(tmp_path) == before


def test_folders_that_only_look_like_spdc_outputs_are_refused(tiny_model_dir: Path, tmp_path: Path,
                                                              finished_run: Path) -> None:
    lookalike = tmp_path / "deploy"
    lookalike.mkdir()
    for name in ("model.onnx", "spdc_manifest.json", "serve.py", "Dockerfile"):
        (lookalike / name).write_text(f"user's {name}")
    run_like = tmp_path / "mine"
    run_like.mkdir()
    for name in ("recipe.yaml", "environment.json"):
        (run_like / name).write_text("user's")
    older = copy_run(finished_run, tmp_path / "older")
    (older / MARKER_FILE).write_text(json.dumps({"kind": "run", "spdc": "0.1.0"}))  # no record: an older spdc
    before = snapshot(tmp_path)
    expect_error(invoke("export", str(tiny_model_dir), "--no-validate", "--out", str(lookalike), "--json"), 8,
                 "OutputError", "was not created by spdc")
    expect_error(invoke("finetune", str(finished_run / "recipe.yaml"), "--out", str(run_like), "--overwrite",
                        "--json"), 8, "OutputError", "was not created by spdc")
    expect_error(invoke("finetune", str(finished_run / "recipe.yaml"), "--out", str(older), "--overwrite",
                        "--json"), 8, "OutputError", "kept no record")
    assert snapshot(tmp_path) == before


def hold_lock(path: Path) -> subprocess.Popen[str]:
    """Another process holding spdc's lock on `path` (as a running job does)."""
    code = ("import sys, time\nfrom pathlib import Path\nfrom spdc.core.outputs import output_lock\n"
            f"with output_lock(Path({str(path)!r})):\n    print('held', flush=True)\n    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_process_on_the_same_output_is_refused_with_the_holder_named(finished_run: Path,
                                                                              tmp_path: Path) -> None:
    run = copy_run(finished_run, tmp_path)
    holder = hold_lock(run)
    try:
        before = snapshot(tmp_path)
        for extra in (["--overwrite"], ["--resume"]):
            result = invoke("finetune", str(run / "recipe.yaml"), "--out", str(run), *extra, "--json")
            expect_error(result, 8, "OutputError", f"in use by another spdc process (pid {holder.pid})")
        artifact = holder_artifact = run / "onnx"
        second = hold_lock(holder_artifact)
        try:
            expect_error(invoke("export", str(run), "--out", str(artifact), "--json"), 8, "OutputError",
                         f"pid {second.pid}")
        finally:
            second.kill()
            second.wait()
        assert snapshot(tmp_path) == before
    finally:
        holder.kill()
        holder.wait()
    assert invoke("finetune", str(run / "recipe.yaml"), "--out", str(run), "--overwrite", "--json").exit_code == 0


def test_a_symlinked_output_is_followed_and_the_link_kept(finished_run: Path, tmp_path: Path) -> None:
    run = copy_run(finished_run, tmp_path)
    link = tmp_path / "link"
    link.symlink_to(run)
    result = invoke("finetune", str(run / "recipe.yaml"), "--out", str(link), "--overwrite", "--json")
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and link.resolve() == run.resolve()
    assert (run / "summary.json").is_file() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    expect_error(invoke("finetune", str(run / "recipe.yaml"), "--out", str(dangling), "--overwrite", "--json"),
                 8, "OutputError", "which does not exist")


# --- 2. models load exactly -----------------------------------------------------------------------------------------

def damaged_model(tiny_model_dir: Path, tmp_path: Path, damage: str) -> Path:
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    if damage == "no tokenizer":
        for path in model.iterdir():
            if path.name.startswith(("tokenizer", "vocab", "special_tokens")):
                path.unlink()
    elif damage == "more layers":
        config["num_hidden_layers"] += 1
    elif damage == "other ffn width":
        config["intermediate_size"] *= 2
    elif damage == "other model type":
        config["model_type"] = "roberta"
        config["architectures"] = ["RobertaForSequenceClassification"]
    elif damage == "vocabulary larger than embedding":
        config["vocab_size"] = 8
    elif damage == "truncated weights":
        weights = model / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
    (model / "config.json").write_text(json.dumps(config))
    return model


@pytest.mark.parametrize(("damage", "fragment"), [
    ("no tokenizer", "no vocabulary"),
    ("more layers", "missing from the weights"),
    ("other ffn width", "of another shape"),
    ("other model type", "config.json does not match"),
    ("vocabulary larger than embedding", "of another shape"),
    ("truncated weights", "cannot load model"),
])
def test_a_teacher_that_does_not_match_its_files_is_refused(damage: str, fragment: str, tiny_model_dir: Path,
                                                            tiny_recipe, tmp_path: Path) -> None:
    model = damaged_model(tiny_model_dir, tmp_path, damage)
    before = snapshot(tmp_path)
    result = invoke("finetune", str(tiny_recipe()), "--set", f"teacher.model={model}", "--out",
                    str(tmp_path / "out"), "--json")
    expect_error(result, 5, "ModelLoadError", fragment)
    assert not (tmp_path / "out").exists()
    before.pop(str(tmp_path / "tiny.yaml"), None)
    after = snapshot(tmp_path)
    after.pop(str(tmp_path / "tiny.yaml"), None)
    assert after == before


def test_a_tokenizer_with_more_ids_than_the_embedding_is_refused(tiny_model_dir: Path) -> None:
    from transformers import AutoTokenizer

    from spdc.core.errors import ModelLoadError
    from spdc.models.loading import check_tokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    check_tokenizer(tokenizer, "tiny", embedding_rows=len(tokenizer))
    with pytest.raises(ModelLoadError, match="the model's embedding only 5 rows"):
        check_tokenizer(tokenizer, "tiny", embedding_rows=5)


def test_an_artifact_without_its_tokenizer_is_refused_by_validate_and_bench(finished_run: Path,
                                                                           tmp_path: Path) -> None:
    artifact = tmp_path / "artifact"
    shutil.copytree(finished_run / "onnx", artifact)
    for path in artifact.iterdir():
        if path.name.startswith(("tokenizer", "vocab", "special_tokens")):
            path.unlink()
    before = snapshot(tmp_path)
    expect_error(invoke("validate", str(artifact), "--json"), 6, "ArtifactError", "tokenizer")
    expect_error(invoke("bench", str(artifact), "--batch-sizes", "1", "--seq-lens", "8", "--time-s", "0.01",
                        "--json"), 6, "ArtifactError", "tokenizer")
    assert snapshot(tmp_path) == before


def test_an_unterminated_quote_is_one_bad_row_not_the_rest_of_the_file(tmp_path: Path, tiny_recipe) -> None:
    rows = ["sentence,label"] + [f"the movie was good {i},1" for i in range(40)]
    rows[4] = '"the movie was, good,1'  # line 5 of the file: an unterminated quote
    data = tmp_path / "train.csv"
    data.write_text("\n".join(rows) + "\n")
    recipe = load_recipe(tiny_recipe(), [f"task.train_file={data}", f"task.dev_file={data}", "task.name=custom",
                                          "task.drop_bad_rows=true", "task.labels=['0', '1']",
                                          "task.columns={text: sentence, label: label}", "task.data_dir=null"])
    split = load_split(recipe.task, "train")
    assert len(split.examples) == 39 and split.dropped == 1
    assert "line 5" in split.drop_reasons[0] and "quoted field" in split.drop_reasons[0]
    assert split.warning is None  # 1 of 40 is not many
    many = ["sentence,label"] + [f'"row {i},1' if i % 3 == 0 else f"row {i},1" for i in range(30)]
    data.write_text("\n".join(many) + "\n")
    loud = load_split(recipe.task, "train")
    assert loud.warning is not None and "10 of 30 rows (33%)" in loud.warning


# --- 3. every fault is typed ----------------------------------------------------------------------------------------

def killed_run(finished_run: Path, tmp_path: Path) -> Path:
    """A copy of a run that looks killed after its checkpoint: no summary yet."""
    run = copy_run(finished_run, tmp_path)
    (run / "summary.json").unlink()
    return run


CHECKPOINT_DAMAGE = [
    ("header a list", lambda c: (c / "checkpoint.json").write_text("[1, 2]"), "not a checkpoint header"),
    ("header without progress", lambda c: (c / "checkpoint.json").write_text(json.dumps(
        {"format": 1, "fingerprint": "x", "stage": 0, "stage_step": 1, "sha256": {}})), "progress"),
    ("progress of the wrong shape", lambda c: (c / "checkpoint.json").write_text(json.dumps(
        {"format": 1, "fingerprint": "x", "progress": {"steps": 3}, "stage": 0, "stage_step": 1, "sha256": {}})),
     "not a checkpoint header"),
    ("binary latest", lambda c: (c.parent / "latest").write_bytes(b"\xff\xfe\x00\x01"), "unreadable"),
    ("latest outside", lambda c: (c.parent / "latest").write_text("../../etc\n"), "does not name a checkpoint"),
    ("garbage metrics line", lambda c: (c.parent.parent / "metrics.jsonl").write_text(
        "{not json\n" + (c.parent.parent / "metrics.jsonl").read_text()), "not a metrics record"),
]


@pytest.mark.parametrize(("name", "damage", "fragment"), CHECKPOINT_DAMAGE, ids=[d[0] for d in CHECKPOINT_DAMAGE])
def test_damaged_run_state_is_a_checkpoint_error_on_resume(name: str, damage, fragment: str, finished_run: Path,
                                                           tmp_path: Path) -> None:
    run = killed_run(finished_run, tmp_path)
    checkpoint = latest_checkpoint(run / "checkpoints")
    assert checkpoint is not None
    damage(checkpoint)
    before = snapshot(tmp_path)
    result = invoke("finetune", str(run / "recipe.yaml"), "--out", str(run), "--resume", "--json")
    expect_error(result, 4, "CheckpointError", fragment)
    assert snapshot(tmp_path) == before


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.one_of(st.binary(max_size=200), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
        ["format", "fingerprint", "progress", "stage", "stage_step", "world_size", "sha256", "step"]), inner,
        max_size=8), max_leaves=20).map(lambda value: json.dumps(value).encode())),
       latest=st.binary(max_size=40), metrics=st.lists(st.binary(max_size=60), max_size=4))
def test_fuzzed_checkpoint_and_metrics_files_only_ever_raise_checkpoint_errors(
        header: bytes, latest: bytes, metrics: list[bytes], tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    step = folder / "checkpoints" / "step-00000001"
    step.mkdir(parents=True)
    (step / "checkpoint.json").write_bytes(header)
    (folder / "checkpoints" / "latest").write_bytes(latest)
    (folder / "metrics.jsonl").write_bytes(b"\n".join([*metrics, b'{"kind": "train"}']))
    for read in (lambda: read_header(step), lambda: latest_checkpoint(folder / "checkpoints"),
                 lambda: RunDirectory(folder).read_metrics()):
        with contextlib.suppress(CheckpointError):
            read()


def test_sequence_lengths_beyond_the_model_are_usage_errors_everywhere(tmp_path: Path, finished_run: Path,
                                                                      tiny_recipe) -> None:
    roberta = build_tiny_family("roberta", tmp_path / "roberta", max_position_embeddings=18)  # pad 0: 17 usable
    config = json.loads((roberta / "config.json").read_text())
    usable = config["max_position_embeddings"] - config["pad_token_id"] - 1
    result = invoke("finetune", str(tiny_recipe()), "--set", f"teacher.model={roberta}", "--set",
                    f"task.max_seq_length={usable + 1}", "--out", str(tmp_path / "out"), "--json")
    expect_error(result, 2, "RecipeError", f"model's {usable} positions")
    expect_error(invoke("eval", str(finished_run), "--task", "sst2", "--data-dir", str(finished_run.parent / "SST-2"),
                        "--max-seq-length", "65", "--json"), 2,
                 "RecipeError", "--max-seq-length")
    expect_error(invoke("bench", str(finished_run / "onnx"), "--batch-sizes", "1", "--seq-lens", "8,65",
                        "--time-s", "0.01", "--json"), 2, "RecipeError", "--seq-lens")


def test_an_onnx_input_renamed_after_export_is_an_artifact_error(finished_run: Path, tmp_path: Path) -> None:
    import onnx

    artifact = tmp_path / "artifact"
    shutil.copytree(finished_run / "onnx", artifact)
    graph = onnx.load(str(artifact / "model.onnx"))
    for value in graph.graph.input:
        if value.name == "attention_mask":
            value.name = "mask"
    for node in graph.graph.node:
        node.input[:] = ["mask" if name == "attention_mask" else name for name in node.input]
    onnx.save(graph, str(artifact / "model.onnx"))
    expect_error(invoke("bench", str(artifact), "--batch-sizes", "1", "--seq-lens", "8", "--time-s", "0.01",
                        "--json"), 6, "ArtifactError", "takes inputs")
    expect_error(invoke("validate", str(artifact), "--json"), 6, "ArtifactError", "takes inputs")


def test_a_full_disk_while_a_checkpoint_is_written_is_an_output_error(tiny_recipe, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file")

    monkeypatch.setattr(checkpoint_module.torch, "save", full)
    monkeypatch.setattr(checkpoint_module.shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(10, 10, 0))
    result = invoke("finetune", str(tiny_recipe()), "--out", str(tmp_path / "run"), "--json")
    expect_error(result, 8, "OutputError", "no space left on the device")
    assert "checkpoint" in one_json_document(result)["error"]["message"]
    assert not list((tmp_path / "run" / "checkpoints").glob(".*"))  # no staging left behind


def test_an_out_path_longer_than_the_system_allows_is_an_output_error(tiny_recipe, tmp_path: Path) -> None:
    result = invoke("finetune", str(tiny_recipe()), "--out", str(tmp_path / ("x" * 300)), "--json")
    expect_error(result, 8, "OutputError", "longer than the system allows")


@pytest.mark.parametrize("args", [["eval", "--json"], ["bench", "--rounds", "0", "--json"],
                                  ["export", "--opset", "99", "--json"], ["finetune", "--json", "--no-such-flag"]])
def test_click_usage_errors_under_json_print_one_document(args: list[str]) -> None:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    document = one_json_document(result)
    assert document["ok"] is False and document["error"]["message"]


# --- 4. the Python API checks its arguments -----------------------------------------------------------------------

@pytest.mark.parametrize(("call", "error", "fragment"), [
    (lambda: spdc.export("nowhere", threads="two"), UsageError, "threads (--threads)"),
    (lambda: spdc.bench(["a"], batch_sizes=["a"]), UsageError, "batch_sizes"),
    (lambda: spdc.bench(["a"], rounds=0), UsageError, "rounds (--rounds)"),
    (lambda: spdc.bench(["a"], batch_sizes=[0]), UsageError, "below the smallest"),
    (lambda: spdc.bench("art/ok"), UsageError, "a list of paths"),
    (lambda: spdc.evaluate("m", task="sst2", batch_size=0), UsageError, "batch_size"),
    (lambda: spdc.evaluate("m", task="sst2", device="tpu"), UsageError, "device"),
    (lambda: spdc.validate("a", samples=-1), UsageError, "samples"),
])
def test_api_arguments_out_of_bounds_raise_before_any_work(call, error: type, fragment: str) -> None:
    with pytest.raises(error, match=None) as raised:
        call()
    assert fragment in str(raised.value) and raised.value.exit_code == 2


def test_api_recipes_are_validated_whatever_their_origin(tiny_recipe) -> None:
    path = tiny_recipe()
    with pytest.raises(RecipeError, match="overrides"):
        spdc.load_recipe(path, overrides=[123])  # type: ignore[list-item]
    recipe = spdc.load_recipe(path).model_copy(update={"seed": -1})
    with pytest.raises(RecipeError, match="seed"):
        spdc.finetune(recipe)


# --- 5. runs that go bad say so -----------------------------------------------------------------------------------

def test_a_diverged_run_stops_with_a_typed_error_and_resumes_from_the_last_good_checkpoint(
        tiny_recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = tiny_recipe(epochs=2, eval_every_steps=4)
    original = Trainer._train_step

    def diverging(self: Trainer, step: int) -> tuple[float, dict[str, float]]:
        loss, parts = original(self, step)
        return (math.nan, parts) if step == 6 else (loss, parts)

    monkeypatch.setattr(Trainer, "_train_step", diverging)
    result = invoke("finetune", str(recipe), "--out", str(tmp_path / "run"), "--json")
    document = expect_error(result, 9, "DivergedError", "loss is nan at step 7")
    assert "step-00000004" in document["error"]["message"] and "NaN" not in result.stdout
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert "NaN" not in metrics and "nan" not in metrics
    monkeypatch.setattr(Trainer, "_train_step", original)
    resumed = invoke("finetune", str(recipe), "--out", str(tmp_path / "run"), "--resume", "--json")
    assert resumed.exit_code == 0, resumed.output
    assert one_json_document(resumed)["steps"] == 2 * math.ceil(256 / 16)


def test_a_learning_rate_of_1e30_is_reported_as_divergence(tiny_recipe, tmp_path: Path) -> None:
    result = invoke("finetune", str(tiny_recipe(learning_rate=1e30)), "--out", str(tmp_path / "run"), "--json")
    expect_error(result, 9, "DivergedError", "training diverged")


def test_json_never_carries_non_finite_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    from spdc.core.console import print_json

    class Scores(Result):
        pearson: float
        values: list[float]

    document = Scores(pearson=math.nan, values=[1.0, math.inf]).to_json()
    assert document["pearson"] is None and document["values"] == [1.0, None]
    print_json({"a": math.nan})
    assert json.loads(capsys.readouterr().out) == {"a": None}
    with pytest.raises(DivergedError):
        raise DivergedError("x")


def wait_for_checkpoint(run: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while not (run / "checkpoints" / "latest").is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before the signal"


def test_sigterm_ends_like_sigint_with_the_resume_hint(tiny_recipe, tmp_path: Path) -> None:
    recipe = tiny_recipe(epochs=40, eval_every_steps=2)
    run = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "spdc", "finetune", str(recipe), "--out", str(run)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    wait_for_checkpoint(run, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "continue the run from its last checkpoint with --resume" in stderr and "Traceback" not in stderr


def test_a_torchrun_rank_that_dies_makes_the_others_exit_with_one_spdc_message(tiny_recipe, tmp_path: Path) -> None:
    import psutil

    from .test_distributed import launch

    recipe = tiny_recipe(epochs=60, eval_every_steps=2)
    run = tmp_path / "ddp"
    process = launch(recipe, run)
    wait_for_checkpoint(run, process)
    workers = [child for child in psutil.Process(process.pid).children(recursive=True)
               if "RANK=1" in " ".join(f"{k}={v}" for k, v in child.environ().items() if k == "RANK")]
    assert len(workers) == 1
    workers[0].kill()
    stdout, _stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    document = json.loads(stdout)  # rank 0 speaks, once, as one JSON document
    assert document["error"]["type"] == "PeerLostError"
    message = document["error"]["message"]
    assert "rank 1" in message and "step-" in message and "--resume" in message and "torchrun" in message
    assert "Traceback" not in stdout


def test_weights_are_readable_by_the_group_like_every_other_file(tiny_recipe, tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        run = Path(finetune(load_recipe(tiny_recipe(epochs=1)), RunOptions(output_dir=tmp_path / "run",
                                                                           show_progress=False)).run_dir)
    finally:
        os.umask(previous)
    for path in [run / "model" / "model.safetensors", *run.glob("checkpoints/step-*/*"), run / "summary.json"]:
        assert path.stat().st_mode & 0o777 == 0o644, f"{path} has mode {oct(path.stat().st_mode & 0o777)}"


def test_outputs_of_this_spdc_refuse_to_be_removed_with_user_files(tmp_path: Path) -> None:
    from spdc.core.outputs import mark_output, remove_output

    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"spdc's")
    mark_output(folder, "model")
    (folder / "deep").mkdir()
    (folder / "deep" / "user.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"deep/user\.txt"):
        remove_output(folder, "model")
    assert (folder / "deep" / "user.txt").read_text() == "mine"


def test_a_run_an_older_spdc_started_still_resumes(finished_run: Path, tmp_path: Path) -> None:
    run = killed_run(finished_run, tmp_path)
    (run / MARKER_FILE).write_text(json.dumps({"kind": "run", "spdc": "0.1.0"}))  # no record of its files
    shutil.rmtree(run / "onnx")
    checkpoint = latest_checkpoint(run / "checkpoints")
    assert checkpoint is not None
    header = json.loads((checkpoint / "checkpoint.json").read_text())
    header["stage_step"] = header["progress"]["step"] = 2  # killed early: steps remain, model/ is replaced again
    (checkpoint / "checkpoint.json").write_text(json.dumps(header))
    result = invoke("finetune", str(run / "recipe.yaml"), "--out", str(run), "--resume", "--json")
    assert result.exit_code == 0, result.output
    assert (run / "summary.json").is_file() and recorded_files(run) is None  # still an older run: not guessed


def test_every_dev_metric_is_shown_beside_its_majority_baseline(finished_run: Path, tmp_path: Path,
                                                               tiny_model_dir: Path, tiny_recipe) -> None:
    from .conftest import write_stsb_like

    summary = json.loads((finished_run / "summary.json").read_text())
    dev_labels = [int(line.split("\t")[1]) for line in
                  (finished_run.parent / "SST-2" / "dev.tsv").read_text().splitlines()[1:]]
    majority = max(dev_labels.count(0), dev_labels.count(1)) / len(dev_labels)
    assert summary["baseline"]["accuracy"] == pytest.approx(majority)
    evaluated = invoke("eval", str(finished_run), "--task", "sst2", "--data-dir", str(finished_run.parent / "SST-2"),
                       "--json")
    assert one_json_document(evaluated)["baseline"]["accuracy"] == pytest.approx(majority)
    table = invoke("eval", str(finished_run), "--task", "sst2", "--data-dir", str(finished_run.parent / "SST-2"))
    assert "majority baseline" in table.output
    stsb = write_stsb_like(tmp_path / "STS-B")
    regression = finetune(load_recipe(tiny_recipe(epochs=1), ["task.name=stsb", f"task.data_dir={stsb}"]),
                          RunOptions(output_dir=tmp_path / "stsb", show_progress=False))
    assert regression.baseline == {"pearson": 0.0, "spearman": 0.0}  # the mean predicted for every row
    report = spdc.report([finished_run], out=tmp_path / "report.md")
    assert "majority baseline" in Path(report.report).read_text()
