# The two commands a newcomer runs: `make demo` and `make test`. Both install what they need
# and are safe to run twice.
VENV      ?= .venv
PYTHON    ?= python3
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps system-deps venv test demo bench soak docs clean

deps: system-deps venv

# mariadbd and redis-server come from Debian; installed only when missing.
system-deps:
	@if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ] || ! command -v redis-server >/dev/null 2>&1; then \
		echo "installing mariadb-server redis-server"; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends mariadb-server redis-server; \
	fi

venv: $(STAMP)

$(STAMP): pyproject.toml
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

# Three workers, each with its own sandbox (most of a test is waiting on servers, so three beat two on
# 2 cores); a file's tests stay on one worker (they share setup).
# `make test PYTEST_WORKERS=0` runs serially.
PYTEST_WORKERS ?= 3
test: deps
	$(PY) -m pytest -q -ra -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# DEMO_ARGS: e.g. `make demo DEMO_ARGS="--keep --dir demo-sandbox"` (see `cdcsync demo --help`).
demo: deps
	$(VENV)/bin/cdcsync demo $(DEMO_ARGS)

# bench/e2e.py: the whole 3-region pipeline against a native replica (docs/performance.md).
bench: deps
	$(PY) bench/capture.py
	$(PY) bench/apply.py
	$(PY) bench/lookup.py
	$(PY) bench/big_transaction.py
	$(PY) bench/e2e.py

# The convergence checker over many seeds (docs/convergence-checker.md); ends with one JSON line.
# e.g. `make soak SEEDS=50`, `make soak SEEDS=5 TOPOLOGY=star SHAPES=odku,noop FIRST_SEED=7`.
# Under faults: `make soak SEEDS=5 NEMESIS=all SOAK_ARGS="--faults 8 --stop-s 5,60"`.
SEEDS      ?= 10
TOPOLOGY   ?= both
SHAPES     ?=
FIRST_SEED ?= 1
# Fault kinds to inject (docs/reliability.md): `NEMESIS=all`, `NEMESIS=kill-producer,stop-broker`.
NEMESIS    ?=
soak: deps
	@$(PY) -m tests.support.convergence.soak --seeds $(SEEDS) --topology $(TOPOLOGY) --first-seed $(FIRST_SEED) \
		$(if $(SHAPES),--shapes=$(SHAPES)) $(if $(NEMESIS),--nemesis=$(NEMESIS)) $(SOAK_ARGS)

# The docs site (mkdocs.yml) into ./site. Strict: a broken link or anchor, or a page left out of the nav,
# fails the build (tests/unit/test_docs_site.py builds it the same way in `make test`).
docs: deps
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info site
