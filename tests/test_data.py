"""Data sources, exact GLUE parsing, custom formats, every bad-row case, and dynamic padding."""

import json
import sys
import types
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from spdc.core.errors import DataError
from spdc.data.batching import encode
from spdc.data.sources import load_split
from spdc.heads import HEADS
from spdc.recipe import TaskConfig

from .conftest import real_glue_dir, requires_real_glue


def glue(tmp_path: Path, task: str, files: dict[str, str], encoding_prefix: bytes = b"") -> Path:
    directory = tmp_path / task
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_bytes(encoding_prefix + text.encode("utf-8"))
    return directory


def custom(tmp_path: Path, name: str, content: str | bytes, **task: object) -> TaskConfig:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    options = {"name": "custom", "train_file": path, "dev_file": path,
               "columns": {"text": "text", "label": "label"}, "labels": ["neg", "pos"], **task}
    return TaskConfig.model_validate(options)


# --- local GLUE TSVs --------------------------------------------------------------------------------------------

def test_mrpc_bom_header_and_quote_none(tmp_path: Path) -> None:
    text = ("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
            '1\t1\t2\t"Quoted start without end\tSecond "sentence".\n'
            "0\t3\t4\tThird one.\tFourth one.\n")
    directory = glue(tmp_path, "MRPC", {"dev.tsv": text}, encoding_prefix=b"\xef\xbb\xbf")
    split = load_split(TaskConfig(name="mrpc", data_dir=directory), "dev")
    assert [example.label for example in split.examples] == [1, 0]
    assert split.examples[0].text == '"Quoted start without end'  # a lone quote stays part of the text
    assert split.examples[0].text_pair == 'Second "sentence".'
    assert split.source == str(directory / "dev.tsv")


def test_cola_has_no_header(tmp_path: Path) -> None:
    directory = glue(tmp_path, "CoLA", {"dev.tsv": "gj04\t1\t\tGood sentence.\ngj04\t0\t*\tBad sentence sentence."})
    split = load_split(TaskConfig(name="cola", data_dir=directory), "dev")
    assert [(example.text, example.label) for example in split.examples] == [
        ("Good sentence.", 1), ("Bad sentence sentence.", 0)
    ]


def test_rte_string_labels_and_stsb_regression(tmp_path: Path) -> None:
    rte = glue(tmp_path, "RTE", {"dev.tsv": "index\tsentence1\tsentence2\tlabel\n0\tA.\tB.\tnot_entailment\n"
                                            "1\tC.\tD.\tentailment\n"})
    assert [e.label for e in load_split(TaskConfig(name="rte", data_dir=rte), "dev").examples] == [1, 0]
    stsb = glue(tmp_path, "STS-B", {"dev.tsv": "index\tgenre\tsentence1\tsentence2\tscore\n0\tg\tA.\tB.\t3.800\n"})
    assert load_split(TaskConfig(name="stsb", data_dir=stsb), "dev").examples[0].label == pytest.approx(3.8)


def test_limits_apply_per_split(tmp_path: Path, sst2_dir: Path) -> None:
    config = TaskConfig(name="sst2", data_dir=sst2_dir, max_train_samples=10, max_eval_samples=3)
    assert len(load_split(config, "train").examples) == 10
    assert len(load_split(config, "dev").examples) == 3


# --- resolution order -------------------------------------------------------------------------------------------

def test_spdc_data_dir_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sst2_dir: Path) -> None:
    monkeypatch.setenv("SPDC_DATA_DIR", str(tmp_path))  # sst2_dir is tmp_path/glue/SST-2
    assert load_split(TaskConfig(name="sst2"), "dev").source == str(sst2_dir / "dev.tsv")


def test_explicit_data_dir_wins_over_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sst2_dir: Path) -> None:
    other = glue(tmp_path / "other", "SST-2", {"dev.tsv": "sentence\tlabel\nonly row\t1\n"})
    monkeypatch.setenv("SPDC_DATA_DIR", str(tmp_path))
    split = load_split(TaskConfig(name="sst2", data_dir=other), "dev")
    assert len(split.examples) == 1 and split.source == str(other / "dev.tsv")


def test_missing_everywhere_lists_every_place_tried(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPDC_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(DataError) as excinfo:
        load_split(TaskConfig(name="rte", data_dir=tmp_path / "nowhere"), "train")
    message = str(excinfo.value)
    assert f"task.data_dir: {tmp_path / 'nowhere' / 'train.tsv'} does not exist" in message
    assert f"$SPDC_DATA_DIR: {tmp_path / 'empty' / 'glue' / 'RTE' / 'train.tsv'} does not exist" in message
    assert "hub nyu-mll/glue/rte: offline (HF_HUB_OFFLINE is set)" in message
    assert "Provide it by setting $SPDC_DATA_DIR" in message


def test_hub_is_used_when_reachable(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def load_dataset(name: str, config: str, split: str) -> list[dict]:
        calls.append((name, config, split))
        return [{"premise": "P.", "hypothesis": "H.", "label": 2, "idx": 0}]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    monkeypatch.setattr("spdc.data.sources.hub_reachable", lambda: (True, ""))
    split = load_split(TaskConfig(name="mnli"), "dev_mismatched")
    assert calls == [("nyu-mll/glue", "mnli", "validation_mismatched")]
    assert split.examples[0].label == 2 and split.examples[0].text_pair == "H."
    assert split.source == "hub nyu-mll/glue/mnli [validation_mismatched]"


def test_hub_failure_is_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    def load_dataset(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    monkeypatch.setattr("spdc.data.sources.hub_reachable", lambda: (True, ""))
    with pytest.raises(DataError, match="hub nyu-mll/glue/qqp: ConnectionError: Couldn't reach"):
        load_split(TaskConfig(name="qqp"), "train")


# --- custom formats -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("d.csv", 'text,label\n"a, quoted text",pos\nplain,neg\n'),
        ("d.tsv", "text\tlabel\na, quoted text\tpos\nplain\tneg\n"),
        ("d.json", json.dumps([{"text": "a, quoted text", "label": "pos"}, {"text": "plain", "label": "neg"}])),
        ("d.jsonl", '{"text": "a, quoted text", "label": "pos"}\n\n{"text": "plain", "label": 0}\n'),
    ],
)
def test_custom_formats(tmp_path: Path, name: str, content: str) -> None:
    split = load_split(custom(tmp_path, name, content), "train")
    assert [(e.text, e.label) for e in split.examples] == [("a, quoted text", 1), ("plain", 0)]


def test_custom_pairs_and_regression(tmp_path: Path) -> None:
    config = custom(tmp_path, "d.jsonl", '{"q": "A?", "a": "B.", "y": 0.5}\n',
                    columns={"text": "q", "text_pair": "a", "label": "y"}, labels=None, regression=True)
    example = load_split(config, "dev").examples[0]
    assert (example.text, example.text_pair, example.label) == ("A?", "B.", 0.5)


def test_unknown_extension_needs_format(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"set task\.format"):
        load_split(custom(tmp_path, "d.txt", "text,label\na,pos\n"), "train")
    split = load_split(custom(tmp_path, "d.txt", "text,label\na,pos\n", format="csv"), "train")
    assert split.examples[0].label == 1


# --- bad rows -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("d.tsv", "text\tlabel\nok\tpos\nshort row\n", "d.tsv, line 3: missing column 'label'"),
        ("d.csv", "text,label\nok,pos\n  ,neg\n", "d.csv, line 3: empty text in column 'text'"),
        ("d.csv", "text,label\nok,pos\nfine,maybe\n", "d.csv, line 3: unknown label 'maybe'; expected one of"),
        ("d.csv", "text,label\nok,pos\nfine,7\n", "d.csv, line 3: label 7 out of range 0..1"),
        ("d.jsonl", '{"text": "ok", "label": "pos"}\n{"label": "pos"}\n', "d.jsonl, line 2: missing column 'text'"),
        ("d.json", '[{"text": "ok", "label": "pos"}, {"text": "", "label": "neg"}]',
         "d.json, row 2: empty text in column 'text'"),
        ("d.jsonl", '{"text": "ok", "label": "pos"}\n{"text": oops}\n', "d.jsonl, line 2: invalid JSON"),
    ],
)
def test_bad_rows_name_file_and_row(tmp_path: Path, name: str, content: str, expected: str) -> None:
    with pytest.raises(DataError) as excinfo:
        load_split(custom(tmp_path, name, content), "train")
    assert expected in str(excinfo.value)
    assert str(tmp_path) in str(excinfo.value)


def test_undecodable_bytes_name_the_line(tmp_path: Path) -> None:
    content = b"text,label\nok,pos\nbad \xff\xfe byte,neg\n"
    with pytest.raises(DataError, match=r"d\.csv, line 3: undecodable bytes \(not UTF-8\)"):
        load_split(custom(tmp_path, "d.csv", content), "train")


def test_bad_glue_row_names_file_and_line(tmp_path: Path) -> None:
    directory = glue(tmp_path, "SST-2", {"dev.tsv": "sentence\tlabel\nfine\t1\nbroken\t2\n"})
    with pytest.raises(DataError, match=r"SST-2/dev\.tsv, line 3: label 2 out of range 0\.\.1"):
        load_split(TaskConfig(name="sst2", data_dir=directory), "dev")


def test_regression_label_must_be_a_number(tmp_path: Path) -> None:
    config = custom(tmp_path, "d.csv", "text,label\nok,high\n", labels=None, regression=True)
    with pytest.raises(DataError, match="line 2: label 'high' is not a number"):
        load_split(config, "train")


def test_drop_bad_rows_reports_the_count(tmp_path: Path) -> None:
    content = "text,label\nok,pos\n,neg\nfine,maybe\nalso fine,neg\n"
    split = load_split(custom(tmp_path, "d.csv", content, drop_bad_rows=True), "train")
    assert [e.text for e in split.examples] == ["ok", "also fine"]
    assert split.dropped == 2
    assert "line 3: empty text" in split.drop_reasons[0] and "line 4: unknown label" in split.drop_reasons[1]


def test_all_rows_bad_is_an_error_even_when_dropping(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no usable rows"):
        load_split(custom(tmp_path, "d.csv", "text,label\n,pos\n", drop_bad_rows=True), "train")


# --- tokenisation -----------------------------------------------------------------------------------------------

def test_dynamic_padding_pads_per_batch(tiny_model_dir: Path, sst2_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    split = load_split(TaskConfig(name="sst2", data_dir=sst2_dir), "dev")
    encoded = encode(split.examples, tokenizer, max_seq_length=4)
    assert max(len(features["input_ids"]) for features in encoded.features) == 4  # truncated
    collate = HEADS["sequence-classification"].collator(tokenizer)
    short = encode([split.examples[0]], tokenizer, 64)
    batch = collate([short[0]])
    assert batch["input_ids"].shape == (1, 7)  # [CLS] + 5 words + [SEP], no padding to 64
    mixed = collate([short[0], encoded[1]])
    assert mixed["input_ids"].shape == (2, 7) and mixed["attention_mask"][1].tolist() == [1, 1, 1, 1, 0, 0, 0]
    assert mixed["labels"].dtype.is_floating_point is False
    assert HEADS["sequence-regression"].collator(tokenizer)([short[0]])["labels"].dtype.is_floating_point


# --- the real GLUE files ----------------------------------------------------------------------------------------

@requires_real_glue
@pytest.mark.parametrize(
    ("task", "split", "rows"),
    [("mrpc", "train", 3668), ("mrpc", "dev", 408), ("rte", "train", 2490), ("rte", "dev", 277),
     ("sst2", "dev", 872), ("cola", "dev", 1043), ("stsb", "dev", 1500), ("qnli", "dev", 5463)],
)
def test_real_glue_row_counts(task: str, split: str, rows: int) -> None:
    glue_dir = real_glue_dir()
    assert glue_dir is not None
    from spdc.data.tasks import get_task

    folder = glue_dir / get_task(task).glue_dir
    data = load_split(TaskConfig(name=task, data_dir=folder), split)
    assert len(data.examples) == rows  # every row of the README's count parses; nothing dropped
    assert data.dropped == 0
