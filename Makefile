# One command per job; each builds its own virtualenv (.venv) on first use.
#   make demo    train a tiny GPT in NumPy and generate text
#   make test    the parity and gradient-check suite
#   make bench   NumPy vs PyTorch benchmarks
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# torch is pinned: 2.13.0 is a CPU wheel on this machine's disk; anything looser may pull CUDA.
TORCH  := torch==2.13.0

.PHONY: demo test test-thorough bench bench-quick clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[torch,test,extras]"
	touch $@

demo: $(VENV)/.installed
	$(PY) -m numpy_gpt demo

test: $(VENV)/.installed
	$(PY) -m pytest -q

test-thorough: $(VENV)/.installed
	HYPOTHESIS_PROFILE=thorough $(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) -m benchmarks.run

bench-quick: $(VENV)/.installed
	$(PY) -m benchmarks.run --quick

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .hypothesis
