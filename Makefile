# Two commands on a fresh machine: `make repro` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv repro test test-slow bench ablation results kfp image clean-venv

venv: $(STAMP)

# Re-installs only when the pinned requirements or the package metadata change.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

repro: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/dvc repro

# The default run (under 10 minutes on 2 cores): every test not marked `slow`.
test: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -m "not slow"

# The tests marked `slow`, run on purpose: the real pipeline under DVC, torchrun process groups, the served model
# (about 10 minutes on 2 cores). CI runs them after `make test`.
test-slow: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -m slow

bench: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python bench/run_all.py

# The ablation experiments (dvc exp run, one per row and noise count; 8-10 min each on 2 cores), then the report.
ablation: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python scripts/ablation.py run

# docs/SEPARATORS.md from the saved separator experiments, then docs/RESULTS.md from the ablation's MLflow
# records with SEPARATORS.md appended (runs nothing).
results: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python scripts/compare_separators.py report
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python scripts/ablation.py report

# The Kubeflow pipeline of dvc.yaml's stages (README, Scale); IMAGE is what its steps run.
IMAGE ?= danet-music2vec:0.1.0
kfp: $(STAMP)
	$(BIN)/dm2v kfp compile -o pipeline.yaml --image $(IMAGE)

# That image, from requirements.lock (needs docker, or podman: make image ENGINE=podman).
ENGINE ?= docker
image:
	$(ENGINE) build -t $(IMAGE) .

clean-venv:
	rm -rf $(VENV)
