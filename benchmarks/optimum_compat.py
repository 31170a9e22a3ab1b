"""Check that optimum's ORTModelForSequenceClassification loads spdc export folders and gives the logits of the
PyTorch models they came from (logits recorded by spdc in `--reference` mode, compared in `--check` mode).

optimum-onnx pins transformers<4.58 while spdc runs on transformers 5, so this runs in two environments:
  .venv/bin/python benchmarks/optimum_compat.py --reference MODEL_DIR:ARTIFACT ... > /tmp/reference.json
  /tmp/optvenv/bin/python benchmarks/optimum_compat.py --check /tmp/reference.json
where /tmp/optvenv has `pip install torch==2.13.0 "optimum-onnx[onnxruntime]" "transformers<4.58"`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

TEXTS = ["The company said profits rose 5% in the quarter.", "Shares fell sharply on Monday after the report.",
         "He was not available for comment."]
PAIRS = ["Profits went up 5% in the quarter, the company said.", "The stock rose on Monday.",
         "He could not be reached for comment."]


def reference(pairs: list[str]) -> None:
    import torch

    from spdc.models.loading import load_model

    records = []
    for pair in pairs:
        model_dir, _, artifact = pair.partition(":")
        loaded = load_model(model_dir, None)
        batch = loaded.tokenizer(TEXTS, PAIRS, padding=True, return_tensors="pt")
        with torch.no_grad():
            logits = loaded.model(**batch).logits.tolist()
        records.append({"model_dir": model_dir, "artifact": artifact, "logits": logits})
    json.dump(records, sys.stdout, indent=2)


def check(path: str) -> None:
    import numpy as np
    import optimum.onnxruntime
    import transformers
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer

    print(f"optimum-onnx ORTModelForSequenceClassification, transformers {transformers.__version__}, "
          f"optimum.onnxruntime from {optimum.onnxruntime.__file__}")
    for record in json.loads(Path(path).read_text(encoding="utf-8")):
        model = ORTModelForSequenceClassification.from_pretrained(record["artifact"])
        tokenizer = AutoTokenizer.from_pretrained(record["artifact"])
        batch = tokenizer(TEXTS, PAIRS, padding=True, return_tensors="pt")
        logits = model(**batch).logits.detach().numpy()
        difference = float(np.abs(logits - np.asarray(record["logits"])).max())
        print(f"{record['artifact']}: loaded, {logits.shape[0]} rows, max |logit - PyTorch ({record['model_dir']})| "
              f"= {difference:.2e}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--reference", nargs="+", metavar="MODEL_DIR:ARTIFACT")
    group.add_argument("--check", metavar="REFERENCE_JSON")
    args = parser.parse_args()
    reference(args.reference) if args.reference else check(args.check)
