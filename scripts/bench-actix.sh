#!/usr/bin/env bash
# Issue 9's benchmark: the same actix-web app bare, with tracepost's middleware, with
# actix-web-prom and with sentry-actix (benches/actix-peers, built here in release; not a
# workspace member, so the peers never enter the workspace's build).
#
#   scripts/bench-actix.sh [seconds-per-round] [rounds] [connections] [path]
#
# 1. Requests per second with wrk (Debian package `wrk`), rounds interleaved so that drift on
#    the machine hits every mode alike; the server pinned to CPU 0, wrk to CPU 1. Wall-clock
#    figures on a shared 2-core machine swing ±20 %: read the ratios, not the absolute rates.
# 2. Instructions per request under callgrind (scripts/instructions-per-request), which repeat
#    within ~1 % whatever else the machine does. Skip with BENCH_NO_CALLGRIND=1.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}; rounds=${2:-3}; conns=${3:-64}; path=${4:-/users/7}
command -v wrk >/dev/null || { echo "wrk is required: apt-get install wrk" >&2; exit 1; }
export CARGO_TARGET_DIR="${BENCH_TARGET_DIR:-$HOME/.cache/tracepost/bench-actix}"
cargo build --release -q --manifest-path benches/actix-peers/Cargo.toml
bin="$CARGO_TARGET_DIR/release/actix-peers-bench"
modes=(bare tracepost actix-web-prom sentry-actix)
pin_server=(); pin_wrk=()
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then pin_server=(taskset -c 0); pin_wrk=(taskset -c 1); fi

declare -A results cpu
port=$((23000 + RANDOM % 20000))
for round in $(seq 1 "$rounds"); do
  for mode in "${modes[@]}"; do
    port=$((port + 1))
    "${pin_server[@]}" "$bin" "$mode" "127.0.0.1:$port" >/dev/null 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/" >/dev/null 2>&1 && break; sleep 0.05; done
    "${pin_wrk[@]}" wrk -t1 -c"$conns" -d2s "http://127.0.0.1:$port$path" >/dev/null  # warm-up
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
    printf 'round %d %-15s %10.0f req/s  p99 %8s  server CPU %6s us/request\n' "$round" "$mode" "$rps" "$p99" "$us"
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
bare=$(echo "${results[bare]}" | median)
echo
for mode in "${modes[@]}"; do
  m=$(echo "${results[$mode]}" | median); c=$(echo "${cpu[$mode]}" | median)
  printf 'median %-15s %10.0f req/s  ratio to bare %.3f  server CPU %6.2f us/request\n' "$mode" "$m" "$(awk -v a="$m" -v b="$bare" 'BEGIN{print a/b}')" "$c"
done

if [ "${BENCH_NO_CALLGRIND:-}" != 1 ]; then
  echo
  echo "instructions per request (callgrind, $path):"
  args=()
  for mode in "${modes[@]}"; do args+=("$mode" "$bin $mode 127.0.0.1:{PORT}"); done
  scripts/instructions-per-request -p "$path" "${args[@]}"
fi
