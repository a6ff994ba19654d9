# clipit developer entry points. `make demo` and `make test` install what they need themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DISTRIBUTED_STAMP := $(VENV)/.installed-distributed
export NO_ALBUMENTATIONS_UPDATE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install test test-fast lint browser java demo docs clean

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

# Ray and PySpark (the `distributed` extra) for the tests of the distributed paths; the demo does not need them.
$(DISTRIBUTED_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,distributed]'
	touch $(DISTRIBUTED_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check clipit tests benchmarks
	$(BIN)/ruff format --check clipit tests benchmarks

# Debian's Chromium for the `clipit serve` page test (Playwright drives the system browser; it never
# downloads one). Installed when missing and this is root; otherwise the browser test says why it skips.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium is not installed: the browser test of clipit serve will skip"; }

# Debian's Java for PySpark (the tests of img2dataset's pyspark distributor, in local mode). Installed when
# missing and this is root; otherwise those tests fail saying Java is missing.
java:
	@command -v java >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless >/dev/null; } \
		|| echo "java is not installed: apt-get install default-jre-headless for the pyspark tests"; }

# The tests check data parallelism on 8 virtual CPU devices; the demo runs as a user's `clipit demo` does.
test: export XLA_FLAGS ?= --xla_force_host_platform_device_count=8
# Two worker processes, tests grouped by module (module fixtures are built once): much of the suite is
# single-threaded compilation and process start-up, so a 2-core machine runs it about 1.3x faster.
test: $(STAMP) $(DISTRIBUTED_STAMP) lint browser java
	$(BIN)/pytest -q -n 2 --dist loadscope

# Unit and CLI tests only (no training, no multi-process runs, no server): a couple of minutes.
test-fast: export XLA_FLAGS ?= --xla_force_host_platform_device_count=8
test-fast: $(STAMP) $(DISTRIBUTED_STAMP) lint
	$(BIN)/pytest -q -n 2 --dist loadscope -m "not slow and not model"

docs: $(STAMP)
	$(BIN)/python -m clipit.config.docs_update

demo: $(STAMP)
	$(BIN)/clipit demo

clean:
	rm -rf $(VENV) .pytest_cache
