# The two set-up commands (README): `make demo` and `make test`. Both install everything first.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test test-slow demo bench clean

$(STAMP): pyproject.toml $(wildcard package-lock.json)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null
	$(PY) -m pip install -e '.[test]'
	if [ -f package-lock.json ]; then npm ci --ignore-scripts --no-audit --no-fund; fi
	touch $(STAMP)

install: $(STAMP)

## make test: install, then the default suite (everything not marked slow)
test: install
	$(PY) -m pytest -m "not slow" -q

## make test-slow: chaos tests and long end-to-end runs (second CI step, own time budget)
test-slow: install
	$(PY) -m pytest -m slow -q

## make demo: the whole flow on the local world (world/demo.py through the `indexmaker` console script)
demo: install
	$(VENV)/bin/indexmaker demo

bench: install
	$(PY) bench/core.py
	$(PY) bench/simulator.py
	$(PY) bench/chain.py
	$(PY) bench/execution.py
	$(PY) bench/order_call.py
	$(PY) bench/gateway.py
	$(PY) bench/flow.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
