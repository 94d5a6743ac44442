# Two commands on a fresh machine with Python 3.11 and pip:
#   make run    install into .venv if needed, then the main job (CPU-scale memorization)
#   make test   install into .venv if needed, then the test suite without the slow tests (< 5 min)
#   make test-all  the whole suite (CI): the slow tests too (CLI runs, sweeps, DDP, resume)
#   make reproduce every CPU experiment of the course at its published settings, one results page
#                  (reproduction/index.html); run it again after Ctrl-C to go on
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The exact versions: constraints.txt (pyproject.toml has the ranges).
TORCH_PINS := $(shell grep -E '^torch(vision)?==' constraints.txt)

.PHONY: setup run test test-all lint bench reproduce reproduce-quick memorize clean-logs

setup: $(STAMP)

# Re-runs only when pyproject.toml or constraints.txt changes; torch (about 6 GB with its CUDA
# libraries) is installed only when .venv does not already hold the pinned versions.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import importlib.metadata as m, sys; sys.exit(any(m.version(p.split('==')[0]) != p.split('==')[1] for p in sys.argv[1:]))" $(TORCH_PINS) 2>/dev/null \
		&& echo "torch pins already satisfied in $(VENV)" \
		|| $(PY) -m pip install --quiet --upgrade pip $(TORCH_PINS)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

run: $(STAMP)
	$(PY) src/train.py experiment=memorize_cpu

test: $(STAMP)
	$(PY) -m pytest -m "not slow and not slurm"

test-all: $(STAMP)
	$(PY) -m pytest

# Lint, format check and type check (configured in pyproject.toml).
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

# Speed benchmarks (ratios against baselines measured in the same process): benchmarks/RESULTS.md
bench: $(STAMP)
	$(PY) -m benchmarks

# The course in one command (python -m dlfoundations.reproduce --help): reproduction/index.html, REPORT.md.
reproduce: $(STAMP)
	$(PY) -m dlfoundations.reproduce

# The same pipeline on tiny epochs and grids (a complete page in about 2 minutes, not the results).
reproduce-quick: $(STAMP)
	$(PY) -m dlfoundations.reproduce --quick

# The seed's full experiment (needs MNIST in data/MNIST/raw or a network; a GPU is advised).
memorize: $(STAMP)
	$(PY) src/train.py experiment=memorize

clean-logs:
	rm -rf logs
