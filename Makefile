# medvlm: `make demo` and `make test` work from a fresh clone; both start with `make install`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTHON ?= python3
export WANDB_MODE ?= offline
export TOKENIZERS_PARALLELISM ?= false
# cells and tests that read the real samples run when the data folder exists ($$MEDVLM_DATA or ../shared/data)
DATA_FLAG := $(if $(or $(MEDVLM_DATA),$(wildcard ../shared/data)),data,)

.PHONY: install demo test sync nbtest pytest readme gpu-check lock clean

install: $(STAMP)

# pyproject.toml gives ranges; constraints.txt pins every package of the tree, so each install resolves the same
$(STAMP): pyproject.toml setup.py constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	@git rev-parse --git-dir >/dev/null 2>&1 && $(VENV)/bin/nbdev-install-hooks >/dev/null || true
	@touch $@

demo: install
	$(VENV)/bin/medvlm_audit synthetic --out runs/demo/audit-synthetic
	@if [ -n "$(DATA_FLAG)" ]; then $(VENV)/bin/medvlm_audit roco-ccby-1000 --out runs/demo/audit-roco --tokenizer minilm; fi
	$(VENV)/bin/medvlm_train_clip --data synthetic:1024 --out runs/demo/clip

sync: install
	$(VENV)/bin/nbdev-clean
	$(VENV)/bin/nbdev-export
	@if [ -n "$$(git status --porcelain -- nbs medvlm)" ]; then git status --short -- nbs medvlm; \
	  echo "nbdev-clean/nbdev-export changed files: notebooks and library are out of sync"; exit 1; fi
	$(PY) .ci/readme.py --check
	$(VENV)/bin/nbdev-proc-nbs > /dev/null  # the docs' pre-processing (quarto itself cannot be installed here)

nbtest: install
	@n=$$(ls nbs/[0-9]*.ipynb nbs/index.ipynb | wc -l); \
	if HF_HUB_OFFLINE=1 $(VENV)/bin/nbdev-test --n-workers 2 --flags "$(DATA_FLAG)" --timing; \
	then echo "notebooks: $$n passed, 0 failed"; else echo "notebooks: failures above (of $$n)"; exit 1; fi

pytest: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q tests/

test: sync nbtest pytest

readme: install
	$(PY) .ci/readme.py

# on a machine with CUDA GPUs: training in bf16 and fp16, evaluation, and dist_checks.py under NCCL; elsewhere it says it skipped
gpu-check: install
	HF_HUB_OFFLINE=1 $(PY) tests/gpu_check.py

# re-resolve the newest releases within pyproject.toml's ranges in a scratch venv, and pin them all in constraints.txt
LOCK_VENV ?= /tmp/medvlm-lock-venv
lock:
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install -q -e ".[dev]"
	{ sed -n '/^#/p' constraints.txt; $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf $(LOCK_VENV)

clean:
	rm -rf runs _proc _docs
