#!/usr/bin/env bash
# Instructions and heap allocations per request (callgrind, via instructions-per-request) for
# the same axum app bare, with tower-http's `TraceLayer` (the peer most axum apps use), with
# tracepost's default capture, and in access-log mode (every request an event), then —
# unless `--no-wrk` — the wrk req/s ratio of bare, tower-http, default and access-log in one run, rounds
# interleaved. Instruction counts are repeatable on a busy machine; req/s are not.
#
#   scripts/bench-instructions.sh [--no-wrk] [requests] [wrk-seconds-per-round] [wrk-rounds]
#
# BENCH_SERVER=path/to/bench-server measures that binary instead of building this checkout's
# (to compare with an older build, e.g. one of main).
#
# Needs valgrind (callgrind_control) and python3; wrk for the second part.
set -euo pipefail
cd "$(dirname "$0")/.."
wrk=1
if [ "${1:-}" = "--no-wrk" ]; then wrk=0; shift; fi
n=${1:-2000}; secs=${2:-10}; rounds=${3:-3}; path=/users/7
tool=scripts/instructions-per-request
if [ -n "${BENCH_SERVER:-}" ]; then
  bin=$BENCH_SERVER
else
  cargo build --release -q -p bench-server
  bin="${CARGO_TARGET_DIR:-target}/release/bench-server"
fi

echo "== instructions and allocations per request (callgrind, $n keep-alive GET $path after a warm-up)"
"$tool" -n "$n" -p "$path" \
  bare "$bin bare 127.0.0.1:{PORT}" \
  tower-http "$bin tower-http 127.0.0.1:{PORT}" \
  default "$bin tracepost 127.0.0.1:{PORT}" \
  access-log "$bin access-log 127.0.0.1:{PORT}"

[ "$wrk" = 1 ] || exit 0
command -v wrk >/dev/null || { echo "wrk is required for the req/s part: apt-get install wrk" >&2; exit 1; }
echo
echo "== req/s (wrk, ${rounds} interleaved rounds of ${secs}s, 64 connections)"
pin_server=(); pin_wrk=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then pin_server=(taskset -c 0); pin_wrk=(taskset -c 1); fi
declare -A results
port=$((22000 + RANDOM % 20000))
for round in $(seq 1 "$rounds"); do
  for mode in bare tower-http tracepost access-log; do
    port=$((port + 1))
    "${pin_server[@]}" "$bin" "$mode" "127.0.0.1:$port" &
    pid=$!
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/" >/dev/null 2>&1 && break; sleep 0.05; done
    "${pin_wrk[@]}" wrk -t1 -c64 -d2s "http://127.0.0.1:$port$path" >/dev/null
    rps=$("${pin_wrk[@]}" wrk -t1 -c64 -d"${secs}s" "http://127.0.0.1:$port$path" | awk '/Requests\/sec/ {print $2}')
    kill -INT "$pid"; wait "$pid" 2>/dev/null || true
    results[$mode]="${results[$mode]:-} $rps"
    printf 'round %d %-11s %10.0f req/s\n' "$round" "$mode" "$rps"
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
b=$(echo "${results[bare]}" | median); h=$(echo "${results[tower-http]}" | median)
t=$(echo "${results[tracepost]}" | median); a=$(echo "${results[access-log]}" | median)
awk -v b="$b" -v h="$h" -v t="$t" -v a="$a" 'BEGIN { printf "median req/s: bare %.0f | tower-http %.0f (%.3f of bare) | default %.0f (%.3f of bare) | access-log %.0f (%.3f of bare)\n", b, h, h/b, t, t/b, a, a/b }'
