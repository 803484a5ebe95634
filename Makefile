# The two commands a newcomer runs: `make demo` and `make test`. Both install what they need
# and are safe to run twice.
VENV      ?= .venv
PYTHON    ?= python3
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
SUDO      := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps system-deps venv test demo bench clean

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

test: deps
	$(PY) -m pytest -q -ra $(PYTEST_ARGS)

# DEMO_ARGS: e.g. `make demo DEMO_ARGS="--keep --dir demo-sandbox"` (see `cdcsync demo --help`).
demo: deps
	$(VENV)/bin/cdcsync demo $(DEMO_ARGS)

bench: deps
	$(PY) bench/capture.py
	$(PY) bench/apply.py
	$(PY) bench/lookup.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
