#!/usr/bin/env bash
# HTTP benchmark of GET /recommend against GET /healthz of the same server, in the same run:
# wrk, 16 connections, random users and vibes, k=10, `vibeset serve --workers 2`, over a synthetic
# index of 100k items x 64-d, 50 vibes, 10k users. ROUNDS rounds alternate /healthz and /recommend;
# the ratio of each round and their median are printed, with the load average.
# Then, once, a plain FastAPI handler (one BLAS thread) serving the same index, for reference.
# Usage: bench/http.sh [DURATION_SECONDS] [ROUNDS]   (default 20 s, 3 rounds; needs Debian's `wrk`)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-20}"
ROUNDS="${2:-3}"
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

run_wrk() {  # name port path-or-script -> one summary line; requests/s in $WORK/name.rps
  local script=()
  local url="http://127.0.0.1:$2$3"
  if [[ "$3" == *.lua ]]; then script=(-s "$3"); url="http://127.0.0.1:$2"; fi
  local out; out="$(wrk -t2 -c16 -d"${DURATION}s" --latency "${script[@]}" "$url")"
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
curl -sf "http://127.0.0.1:$PORT/recommend?user=u1&intent=a1&k=10" >/dev/null
# Warm both paths first: a fresh server's first /healthz round ran at ~60% of later ones, which
# inflated round 1's ratio (0.65-0.70 against 0.37-0.43 in the rounds after it).
wrk -t2 -c16 -d3s "http://127.0.0.1:$PORT/healthz" >/dev/null
wrk -t2 -c16 -d3s -s "$WORK/random.lua" "http://127.0.0.1:$PORT" >/dev/null
RATIOS=()
for round in $(seq 1 "$ROUNDS"); do
  run_wrk "healthz_$round" $PORT /healthz
  run_wrk "recommend_$round" $PORT "$WORK/random.lua"
  RATIOS+=("$(awk -v a="$(cat "$WORK/recommend_$round.rps")" -v b="$(cat "$WORK/healthz_$round.rps")" 'BEGIN {printf "%.3f", a/b}')")
  echo "round $round: /recommend / /healthz = ${RATIOS[-1]} (load average $(cut -d' ' -f1-3 /proc/loadavg))"
done
kill "${PIDS[0]}"; wait "${PIDS[0]}" 2>/dev/null || true

TPORT=18733
OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 VIBESET_SERVE_TARGET="$WORK/index" \
  .venv/bin/uvicorn --app-dir bench http_baseline:app --port $TPORT --workers 2 --log-level warning --no-access-log &
PIDS+=($!)
wait_up $TPORT "recommend?user=u1&intent=a1"
run_wrk baseline_1blas $TPORT "$WORK/random.lua"

MEDIAN="$(printf '%s\n' "${RATIOS[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}')"
echo "median over $ROUNDS rounds of /recommend / /healthz throughput: $MEDIAN (rounds: ${RATIOS[*]})"
echo "vibeset /recommend (last round) / plain FastAPI handler: $(awk -v a="$(cat "$WORK/recommend_$ROUNDS.rps")" -v b="$(cat "$WORK/baseline_1blas.rps")" 'BEGIN {printf "%.2f", a/b}')"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
