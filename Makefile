# Two commands do all the set-up on a fresh machine:
#   make demo   fit on a built-in real data set, export ONNX, serve it with onnxruntime
#   make test   the whole test suite
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint bench

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	# The bundled external plugin, installed the way a user would: CI then runs it
	# through seqpipe's shared suite (via its entry point) and through its own tests.
	$(PY) -m pip install -q -c constraints.txt -e plugins/seqpipe-tcn
	touch $@

demo: $(VENV)/.installed
	$(PY) -m seqpipe.demo

# pytest exits 5 when it collects no test; that must fail CI, never pass silently.
# SEQPIPE_EXPECT_PLUGINS makes the suite fail if the bundled plugin did not load.
PYTEST_STRICT = rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests were collected" >&2; exit 1; fi; [ $$rc -eq 0 ] || exit $$rc

test: $(VENV)/.installed
	SEQPIPE_EXPECT_PLUGINS=tcn $(PY) -m pytest; $(PYTEST_STRICT)
	cd plugins/seqpipe-tcn && ../../$(PY) -m pytest -q; $(PYTEST_STRICT)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

bench: $(VENV)/.installed
	$(PY) bench/train_overhead.py
	$(PY) bench/cells.py
	$(PY) bench/inference.py
	$(PY) bench/seed_problems.py
	$(PY) bench/recursive_vs_direct.py
	$(PY) bench/m1.py
