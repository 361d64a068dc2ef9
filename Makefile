# Two entry points (see README): `make demo` and `make test`. Each builds .venv itself.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.spectra-installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned, so pip takes the CPU build and never pulls CUDA wheels
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[probe,dev,ray]"
	# MovieLens-100k ships inside recbole; only its data files are read, so skip its training stack
	$(PY) -m pip install -q --no-deps "recbole>=1.2"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/spectra demo --out reports/movielens-100k

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest -q -n 2 --dist loadgroup -p no:cacheprovider

bench: $(STAMP)
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
