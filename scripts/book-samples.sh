#!/usr/bin/env bash
# Regenerates the book's sample outputs from a real run of the quickstart, so that they
# cannot drift from what it prints: starts it in a scratch directory, sends the request the
# quickstart page shows (`curl -H 'Authorization: Bearer secret' /panic`), and writes
#   book/src/generated/console-panic.txt   what the console sink printed for it
#   book/src/generated/event-panic.json    the same event from events-*.ndjson, pretty-printed
#                                          (its backtrace shortened to the first frames)
# which book/src/quickstart.md and book/src/schema.md include. Run it after changing what an
# event carries or how the console prints it, and commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out="$root/book/src/generated"
mkdir -p "$out"

cargo build -q -p quickstart
target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target/debug/quickstart"

tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

cd "$tmp"
env -u DATABASE_URL -u LOKI_URL QUICKSTART_ADDR="127.0.0.1:$port" TRACEPOST_DATA=./tracepost-data \
  RUST_LOG=info NO_COLOR=1 "$bin" >stdout 2>stderr &
pid=$!
for _ in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:$port/" && break
  sleep 0.1
done
curl -s -o /dev/null -H 'Authorization: Bearer secret' "http://127.0.0.1:$port/panic"
for _ in $(seq 1 100); do
  grep -qs '"kind":"error"' tracepost-data/events-*.ndjson && grep -q 'panic in GET /panic' stderr && break
  sleep 0.1
done
sleep 0.5
kill -INT "$pid"
wait "$pid" || true
pid=

python3 - "$out" <<'PY'
import glob, json, re, sys
out = sys.argv[1]
ansi = re.compile(r"\x1b\[[0-9;]*m")
lines = [ansi.sub("", l.rstrip("\n")) for l in open("stderr")]
start = next(i for i, l in enumerate(lines) if "panic in GET /panic" in l and " ERROR " in l)
block = [lines[start]]
for l in lines[start + 1:]:
    if not l.startswith(" "):
        break
    block.append(l)
open(f"{out}/console-panic.txt", "w").write("\n".join(block) + "\n")

events = [json.loads(l) for f in sorted(glob.glob("tracepost-data/events-*.ndjson")) for l in open(f)]
event = next(e for e in events if e["kind"] == "error" and e.get("request", {}).get("route") == "/panic")
bt = event.get("error", {}).get("backtrace")
if bt:
    # Keep the application's frame (and its `at file:line` line); elide the rest.
    frames = bt.splitlines()
    app = next((i for i, l in enumerate(frames) if "quickstart::" in l), 0)
    kept = frames[app:app + 2]
    event["error"]["backtrace"] = "\n".join([f"… ({app} lines)"] + kept + [f"… ({len(frames) - app - len(kept)} lines)"])
text = json.dumps(event, indent=2, ensure_ascii=False)
# Header pairs on one line each: ["name", "value"].
text = re.sub(r'\[\n\s+("(?:[^"\\]|\\.)*"),\n\s+("(?:[^"\\]|\\.)*")\n\s+\]', r'[\1, \2]', text)
open(f"{out}/event-panic.json", "w").write(text + "\n")
print(f"wrote {out}/console-panic.txt ({len(block)} lines) and {out}/event-panic.json")
PY
