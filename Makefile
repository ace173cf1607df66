# Two commands do all set-up on a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export HGPRUNE_SHARED ?= $(abspath ../shared)

.PHONY: install test lint demo bench docs clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned, so that no dependency can pull the multi-GB CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,deploy,tracking,cluster]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check hgprune tests benchmarks studies
	$(BIN)/ruff format --check hgprune tests benchmarks studies

# Tests run on one thread each (tests/conftest.py), so two pytest workers use both cores of the CI machine;
# loadfile keeps each file's module-scoped fixtures on one worker. `make test TEST_JOBS=0` runs in-process.
# --durations lists the slowest tests, so a file that starts to dominate the run shows.
# tests/test_docs.py is part of it: generated tables equal reports/, README commands parse and run, the strict site build.
TEST_JOBS ?= 2
test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_JOBS) --dist loadfile --durations=15

# Re-render every generated region of README.md and docs/ (results tables from reports/, the CLI and recipe-key
# references from the code), then build the site into site/. `make test` checks both (tests/test_docs.py).
docs: $(STAMP)
	$(BIN)/python -m hgprune.docsgen
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The quickstart prunes to a latency budget: first this machine's ORT latency model for its hg1, once (about two
# minutes; --force: a demo does not wait for an idle machine, real use should: docs/latency.md).
# --resume: a second `make demo` (or one after Ctrl-C) continues / re-reports instead of refusing the directory
DEMO_FAMILY = --arch hg1 --N 32 --M 64 --depth 4 --input-size 64
demo: $(STAMP)
	$(BIN)/hgprune latency calibrate --runtime ort --threads 2 --batch 1 $(DEMO_FAMILY) --if-missing --force
	$(BIN)/hgprune run recipes/quickstart.yaml --out runs/quickstart --resume

# every module of benchmarks/ (benchmarks/run_all.py discovers them); `make bench BENCH_ARGS="--device cuda"` adds the
# GPU-only ones. Single-question studies are in studies/, each with its README and command.
BENCH_ARGS ?=
bench: $(STAMP)
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python -m benchmarks.run_all $(BENCH_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache build site *.egg-info
