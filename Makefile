# Two commands: `make run` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The browser tests drive Debian's Chromium through its matching chromedriver; nothing is
# downloaded from a browser vendor.
CHROMIUM     := /usr/bin/chromium
CHROMEDRIVER := /usr/bin/chromedriver

.PHONY: run test bench browser leaderboard reproduce clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/taskmem-bench run --task mini --policy blind,oracle,oracle-priority,taskmem

# Installs Chromium and chromedriver from Debian's packages when missing and this is a root
# machine with apt-get; otherwise says why the browser tests will skip (they fail under CI=true).
browser:
	@if [ -x $(CHROMIUM) ] && [ -x $(CHROMEDRIVER) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium and chromium-driver from Debian's packages ..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null; \
	else \
		echo "note: $(CHROMIUM) or $(CHROMEDRIVER) missing and not installable here (needs root and apt-get); browser tests will skip"; \
	fi

test: $(STAMP) browser
	$(BIN)/python -m pytest

# The leaderboard site from the result bundles in results/, as CI publishes it.
leaderboard: $(STAMP)
	$(BIN)/taskmem-bench leaderboard build results -o build/site

# TaskMem's table on the mini environments: Phase One against Phase Two, with the controls
# (about 15 minutes on 2 cores once the mini media are generated, 20 the first time); bundles
# go to results/.
reproduce: $(STAMP)
	$(BIN)/taskmem-bench reproduce taskmem

bench: $(STAMP)
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/batching.py
	$(BIN)/python benchmarks/pipeline.py --latency 6
	$(BIN)/python benchmarks/pipeline.py --latency balanced
	$(BIN)/python benchmarks/ray_scaling.py

clean:
	rm -rf $(VENV) runs build .pytest_cache
