#!/usr/bin/env bash
# Installs and starts what the tests need: the prometheus server and promtool (Debian
# `prometheus`), PostgreSQL running on 127.0.0.1:5432, Node.js and npm (the LogQL syntax check),
# rustfmt/clippy, and mdbook. Idempotent: does nothing already done.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
# promtool for the config and rules; the server for examples/quickstart/tests/dashboards.rs.
{ command -v promtool && command -v prometheus; } >/dev/null || missing+=(prometheus)
command -v pg_ctlcluster >/dev/null || missing+=(postgresql)
command -v npm >/dev/null || missing+=(nodejs npm)   # scripts/logql-check, tests/browser
command -v chromium >/dev/null || missing+=(chromium)  # tests/browser/console.mjs (playwright-core)
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

rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
command -v mdbook >/dev/null || cargo install mdbook --locked --version '^0.4'

# The console's browser test drives Debian's Chromium with playwright-core (its pinned
# version from tests/browser/package-lock.json; no browser download).
if [ ! -d "$(dirname "$0")/../tests/browser/node_modules/playwright-core" ]; then
  (cd "$(dirname "$0")/../tests/browser" && npm ci --no-audit --no-fund --silent)
fi
