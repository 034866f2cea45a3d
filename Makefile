# Two commands do everything on a fresh machine with Python >= 3.10 and pip:
#   make train   -> create .venv, install, run the default experiment for BUDGET minutes of training on d2l's short
#                   sentences (SHORT); ARGS="..." adds Hydra overrides; `make train BUDGET= SHORT=` is the full recipe
#   make test    -> same set-up, then the whole test suite (PYTEST_ARGS="..." to narrow it)
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BUDGET ?= 5
SHORT ?= data.max_len=10 data.length_policy=filter  # d2l's sentence length (pairs of <= 10 tokens); SHORT= keeps all
BIN := $(VENV)/bin
STAMP := $(VENV)/.attnlab-installed

.PHONY: setup train test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first: a bare "torch" requirement would otherwise pull a multi-GB CUDA build
	$(BIN)/python -m pip install -q --disable-pip-version-check "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

train: setup
	$(BIN)/attnlab-train $(if $(BUDGET),budget=$(BUDGET)) $(SHORT) $(ARGS)

test: setup
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

bench: setup
	$(BIN)/python bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) outputs/*/ .pytest_cache
