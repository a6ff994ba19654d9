# clipit developer entry points. `make demo` and `make test` install what they need themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export NO_ALBUMENTATIONS_UPDATE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install test lint demo docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	# clip_benchmark's own data files and reader code for the eval tests; --no-deps: its requirements
	# (torchvision, open_clip) would replace the pinned CPU torch with a CUDA build
	$(BIN)/pip install --quiet --no-deps 'clip-benchmark==1.6.2'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check clipit tests benchmarks

# The tests check data parallelism on 8 virtual CPU devices; the demo runs as a user's `clipit demo` does.
test: export XLA_FLAGS ?= --xla_force_host_platform_device_count=8
test: $(STAMP) lint
	$(BIN)/pytest -q

docs: $(STAMP)
	$(BIN)/python -m clipit.config.docs_update

demo: $(STAMP)
	$(BIN)/clipit demo

clean:
	rm -rf $(VENV) .pytest_cache
