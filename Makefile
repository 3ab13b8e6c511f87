# Two commands on a fresh machine: `make repro` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv browser repro test test-slow bench ablation results kfp image clean-venv

venv: $(STAMP)

# Re-installs only when the pinned requirements or the package metadata change.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

# The real browser the page tests drive (headless chromium + chromedriver, Debian's): installed when missing and
# apt can (root, or sudo without a password); otherwise those tests skip, saying why.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && exit 0; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	else echo "make browser: chromium is not installed and apt needs root; the browser tests will skip"; exit 0; fi; \
	$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver \
		>/dev/null || echo "make browser: apt-get could not install chromium; the browser tests will skip"

repro: $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/dvc repro

# The default run (under 10 minutes on 2 cores): every test not marked `slow`.
test: $(STAMP) browser
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m pytest -m "not slow"

# The tests marked `slow`, run on purpose: the real pipeline under DVC, torchrun process groups, the served model
# (about 10 minutes on 2 cores). CI runs them after `make test`.
test-slow: $(STAMP) browser
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
