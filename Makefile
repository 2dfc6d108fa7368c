# The two set-up commands of the README. Both install into .venv first (idempotent, fast when done).
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip
# The local CPU wheel; any other torch pin pulls a multi-GB CUDA build on a CPU-only machine.
TORCH  ?= torch==2.13.0

.PHONY: install demo test lint bench clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install "$(TORCH)"
	$(PIP) install -e ".[dev,dmc]"
	touch $@

install: $(VENV)/.installed

# Train the default preset (SAC on Pendulum-v1, a few minutes on 2 cores) and evaluate it.
demo: install
	MUJOCO_GL=osmesa PYOPENGL_PLATFORM=osmesa $(PY) train.py --run-dir runs/demo-$$(date +%Y%m%d-%H%M%S) train.threads=2
	@echo "Evaluate the newest demo run with: $(PY) evaluate.py $$(ls -d runs/demo-* | tail -1)"

# The default test suite (slow learning checks excluded; run them with `make test-slow`).
test: install
	$(PY) -m ruff check .
	$(PY) -m pytest

test-slow: install
	$(PY) -m pytest -m slow

clean:
	rm -rf $(VENV) runs
