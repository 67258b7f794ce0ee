#!/usr/bin/env bash
# Requests per second of the same axum app bare, with tracepost, and with tower-http's
# TraceLayer, measured in one run with wrk (Debian package `wrk`), rounds interleaved so
# that drift on the machine hits every mode alike. The server is pinned to CPU 0 and wrk to
# CPU 1 when the machine has two cores or more.
#
#   scripts/bench-wrk.sh [seconds-per-round] [rounds] [connections] [path]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}; rounds=${2:-3}; conns=${3:-64}; path=${4:-/users/7}
command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 1; }
cargo build --release -q -p bench-server
bin="${CARGO_TARGET_DIR:-target}/release/bench-server"
pin_server=(); pin_wrk=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then pin_server=(taskset -c 0); pin_wrk=(taskset -c 1); fi

declare -A results cpu
# A random base port: a fixed one collided with another run on a shared machine.
port=$((23000 + RANDOM % 20000))
for round in $(seq 1 "$rounds"); do
  for mode in bare tracepost tracepost-http-only tower-http; do
    port=$((port + 1))
    "${pin_server[@]}" "$bin" "$mode" "127.0.0.1:$port" &
    pid=$!
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/" >/dev/null 2>&1 && break; sleep 0.05; done
    "${pin_wrk[@]}" wrk -t1 -c"$conns" -d2s "http://127.0.0.1:$port$path" >/dev/null  # warm-up
    # The server's own CPU time per request (utime+stime from /proc), which other load on
    # the machine disturbs far less than req/s.
    cpu_before=$(awk '{print $14+$15}' "/proc/$pid/stat")
    out=$("${pin_wrk[@]}" wrk -t1 -c"$conns" -d"${secs}s" --latency "http://127.0.0.1:$port$path")
    cpu_after=$(awk '{print $14+$15}' "/proc/$pid/stat")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    total=$(echo "$out" | awk '/requests in/ {print $1}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    us=$(awk -v c=$((cpu_after - cpu_before)) -v n="$total" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", c / hz / n * 1e6 }')
    kill -INT "$pid"; wait "$pid" 2>/dev/null || true
    results[$mode]="${results[$mode]:-} $rps"
    cpu[$mode]="${cpu[$mode]:-} $us"
    printf 'round %d %-19s %10.0f req/s  p99 %8s  server CPU %6s us/request\n' "$round" "$mode" "$rps" "$p99" "$us"
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
bare=$(echo "${results[bare]}" | median)
tp=$(echo "${results[tracepost]}" | median)
peer=$(echo "${results[tower-http]}" | median)
http_only=$(echo "${results[tracepost-http-only]}" | median)
echo
printf 'median req/s: bare %.0f | tracepost %.0f | tracepost HTTP layer only %.0f | tower-http TraceLayer %.0f\n' "$bare" "$tp" "$http_only" "$peer"
awk -v b="$bare" -v h="$http_only" 'BEGIN { printf "ratio tracepost-http-only/bare = %.3f\n", h/b }'
awk -v b="$bare" -v t="$tp" -v p="$peer" 'BEGIN { printf "ratio tracepost/bare = %.3f   tower-http/bare = %.3f   tracepost/tower-http = %.3f\n", t/b, p/b, t/p }'
cb=$(echo "${cpu[bare]}" | median); ct=$(echo "${cpu[tracepost]}" | median); cp=$(echo "${cpu[tower-http]}" | median)
ch=$(echo "${cpu[tracepost-http-only]}" | median)
awk -v b="$cb" -v h="$ch" 'BEGIN { printf "median server CPU per request, HTTP layer only: %.2f us (+%.2f)\n", h, h-b }'
awk -v b="$cb" -v t="$ct" -v p="$cp" 'BEGIN { printf "median server CPU per request: bare %.2f us | tracepost %.2f us (+%.2f) | tower-http %.2f us (+%.2f); CPU-bound ratio bare/tracepost = %.3f\n", b, t, t-b, p, p-b, b/t }'
