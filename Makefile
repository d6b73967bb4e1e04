# tlrecipes: two commands on a fresh clone (see README "Quick start").
#   make study   set everything up, then run the main job on the offline data
#   make test    set everything up, then run the whole test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
FMNIST := /usr/share/datasets/fashion-mnist

.PHONY: setup data study demo test test-core test-backends test-notebooks lint clean

setup: $(VENV)/.installed data

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

# Debian's dataset-fashion-mnist gives the offline default data (30 MB).
data:
	@if [ ! -f $(FMNIST)/train-images-idx3-ubyte.gz ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	    (apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null); \
	  else \
	    echo "Fashion-MNIST not found in $(FMNIST). Install it with"; \
	    echo "  sudo apt-get install dataset-fashion-mnist"; \
	    echo "or set TLRECIPES_DATA_DIR to a folder with the IDX files."; \
	  fi; \
	fi

study: setup
	$(BIN)/tlrecipes study

demo: setup
	$(BIN)/tlrecipes demo

test: setup
	$(MAKE) --no-print-directory lint test-core test-backends test-notebooks

lint:
	$(BIN)/ruff check tlrecipes tests benchmarks recipes notebooks scripts

# Whole suite and the docstring examples on the tensorflow backend, in two
# pytest-xdist workers (the CI machine has 2 cores; one worker left a core idle
# through the many small models' Python overhead).
test-core:
	KERAS_BACKEND=tensorflow $(BIN)/python -m pytest -q -p no:cacheprovider -n 2 \
	  -m "not notebooks" --doctest-modules --durations=15 tlrecipes tests

# The helper tests again on jax and torch.
test-backends:
	KERAS_BACKEND=jax $(BIN)/python -m pytest -q -p no:cacheprovider -m multibackend tests
	KERAS_BACKEND=torch $(BIN)/python -m pytest -q -p no:cacheprovider -m multibackend tests

# Every notebook, top to bottom, in quick mode (TLRECIPES_QUICK=1) on a copy,
# and every solution script; two at a time, a notebook and its solutions in
# one worker (tests/notebook_groups.py).
test-notebooks:
	KERAS_BACKEND=tensorflow TLRECIPES_OFFLINE=1 $(BIN)/python -m pytest -q \
	  -p no:cacheprovider -n 2 --dist loadgroup --durations=10 -m notebooks \
	  tests/test_notebooks.py tests/test_solutions.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
