#!/usr/bin/env bash
# HTTP benchmark of GET /recommend: wrk, 16 connections, random users and attributes, k=10,
# against `vibeset serve --workers 2` and against a plain FastAPI baseline, in the same run.
# Usage: bench/http.sh [DURATION_SECONDS]   (default 60; needs Debian's `wrk`)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-60}"
PY=.venv/bin/python
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 2; }
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

$PY bench/http_index.py "$WORK/index" >/dev/null
cat >"$WORK/random.lua" <<'LUA'
math.randomseed(12345)
request = function()
  return wrk.format("GET", string.format("/recommend?user=u%d&intent=a%d&k=10", math.random(0, 9999), math.random(0, 49)))
end
LUA

wait_up() { for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$1/$2" >/dev/null 2>&1 && return 0; sleep 0.2; done; echo "server on $1 did not start"; exit 1; }

run_wrk() {  # name port -> one summary line
  local out; out="$(wrk -t2 -c16 -d"${DURATION}s" --latency -s "$WORK/random.lua" "http://127.0.0.1:$2")"
  echo "$out" > "$WORK/$1.txt"
  local rps p50 p99 non2xx sock
  rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  p50="$(awk '$1=="50%" {print $2}' <<<"$out")"
  p99="$(awk '$1=="99%" {print $2}' <<<"$out")"
  non2xx="$(awk '/Non-2xx/ {print $5}' <<<"$out")"; non2xx="${non2xx:-0}"
  sock="$(awk -F'[ ,]+' '/Socket errors/ {print $4+$6+$8+$10}' <<<"$out")"; sock="${sock:-0}"
  echo "$1: ${rps} req/s, p50 ${p50}, p99 ${p99}, non-2xx ${non2xx}, socket errors ${sock}"
  echo "$rps" > "$WORK/$1.rps"
}

PORT=18731
$PY -c "from vibeset.cli import main; main()" serve --index "$WORK/index" --port $PORT --workers 2 &
PIDS+=($!)
wait_up $PORT healthz
VIBE="$(run_wrk vibeset $PORT)"
kill "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true

BPORT=18732
VIBESET_SERVE_TARGET="$WORK/index" .venv/bin/uvicorn --app-dir bench http_baseline:app --port $BPORT --workers 2 --log-level warning &
PIDS+=($!)
wait_up $BPORT "recommend?user=u1&intent=a1"
BASE="$(run_wrk baseline $BPORT)"
kill "${PIDS[1]}"; wait "${PIDS[1]}" 2>/dev/null || true

# the same plain handler with the one setting that matters most: one BLAS thread per worker
TPORT=18733
OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 VIBESET_SERVE_TARGET="$WORK/index" \
  .venv/bin/uvicorn --app-dir bench http_baseline:app --port $TPORT --workers 2 --log-level warning --no-access-log &
PIDS+=($!)
wait_up $TPORT "recommend?user=u1&intent=a1"
TUNED="$(run_wrk baseline_1blas $TPORT)"

echo "$VIBE"
echo "$BASE"
echo "$TUNED"
ratio() { awk -v a="$(cat "$WORK/vibeset.rps")" -v b="$(cat "$WORK/$1.rps")" 'BEGIN {printf "%.2f", a/b}'; }
echo "throughput ratio vibeset/baseline: $(ratio baseline); vibeset/baseline with one BLAS thread: $(ratio baseline_1blas)"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
