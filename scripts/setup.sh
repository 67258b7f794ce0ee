#!/usr/bin/env bash
# Installs and starts what the tests need: the prometheus server and promtool (Debian
# `prometheus`), PostgreSQL running on 127.0.0.1:5432, Node.js and npm (the LogQL syntax check),
# Chromium and playwright-core (the browser test),
# rustfmt/clippy, and mdbook. Idempotent: does nothing already done.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
# promtool for the config and rules; the server for examples/quickstart/tests/dashboards.rs.
{ command -v promtool && command -v prometheus; } >/dev/null || missing+=(prometheus)
command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
command -v npm >/dev/null || missing+=(nodejs npm)   # scripts/logql-check, the browser tests
[ -x /usr/bin/chromium ] || missing+=(chromium)   # the browser tests (quickstart, console, rrweb)
command -v pkg-config >/dev/null || missing+=(pkg-config)
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)   # the Postgres sink's `tls` feature
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# PostgreSQL: start the cluster if it is down, and wait until it accepts connections.
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  echo "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 60); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.5; done
fi
pg_isready -h 127.0.0.1 -p 5432

# npm packages of the browser tests, from their lockfiles (playwright-core drives
# /usr/bin/chromium and downloads no browser; rrweb 1.x/2.x for tracepost-rrweb's
# recordings; rrweb 2.x for the replay capture test of tracepost-ingest; rrweb-player for the
# console's replay viewer test; rrweb and rrweb-player for the quickstart's end-to-end replay
# test (examples/quickstart/tests/browser.rs); the OpenTelemetry JS logs SDK for
# examples/quickstart/tests/otel_node.rs); reinstalled only when a lockfile changed.
for dir in "$(dirname "$0")/../examples/quickstart/tests/browser" \
           "$(dirname "$0")/../crates/tracepost-rrweb/tests/browser" \
           "$(dirname "$0")/../crates/tracepost-ingest/tests/browser" \
           "$(dirname "$0")/../crates/tracepost-console/tests/browser" \
           "$(dirname "$0")/../clients/javascript/otel"; do
  if [ ! "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
    echo "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
done

rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
command -v mdbook >/dev/null || cargo install mdbook --locked --version '^0.4'

# The copy-paste log clients' tests (examples/quickstart/tests/clients.rs; otel.rs): Go,
# Python with venv, and the OpenTelemetry Python SDK from PyPI in a venv of its own.
otel_missing=()
command -v go >/dev/null || otel_missing+=(golang-go)
command -v python3 >/dev/null || otel_missing+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || otel_missing+=(python3-venv)
if [ ${#otel_missing[@]} -gt 0 ]; then
  echo "installing: ${otel_missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${otel_missing[@]}" >/dev/null
fi
otel_venv="${TRACEPOST_OTEL_VENV:-$HOME/.cache/tracepost-otel-venv}"
if ! "$otel_venv/bin/python" -c 'import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http' 2>/dev/null; then
  echo "installing the OpenTelemetry Python SDK into $otel_venv"
  # A link left pointing nowhere (a removed venv) makes `venv` fail with "File exists".
  if [ -L "$otel_venv" ] && [ ! -e "$otel_venv" ]; then rm -f "$otel_venv"; fi
  python3 -m venv --clear "$otel_venv"
  "$otel_venv/bin/pip" install -q opentelemetry-sdk opentelemetry-exporter-otlp-proto-http
fi
# The query API's schemathesis test (crates/tracepost-api/tests/schemathesis.rs): schemathesis
# from PyPI in a venv of its own.
st_venv="${TRACEPOST_SCHEMATHESIS_VENV:-$HOME/.cache/tracepost-schemathesis-venv}"
if ! "$st_venv/bin/schemathesis" --version >/dev/null 2>&1; then
  echo "installing schemathesis into $st_venv"
  if [ -L "$st_venv" ] && [ ! -e "$st_venv" ]; then rm -f "$st_venv"; fi
  python3 -m venv --clear "$st_venv"
  "$st_venv/bin/pip" install -q 'schemathesis>=4.32,<5'
fi
# The console's browser test drives Debian's Chromium with playwright-core (its pinned
# version from tests/browser/package-lock.json; no browser download).
if [ ! -d "$(dirname "$0")/../tests/browser/node_modules/playwright-core" ]; then
  (cd "$(dirname "$0")/../tests/browser" && npm ci --no-audit --no-fund --silent)
fi
