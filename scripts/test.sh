#!/usr/bin/env bash
# The README's second command: installs and starts what the tests need (scripts/setup.sh),
# then runs every test — the workspace's, and those behind optional features. CI (.ci/run)
# runs this same script. Extra arguments go to the first `cargo test` (e.g. `--release`).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

locked=()
[ "${CI:-}" = true ] && locked=(--locked)

echo "=== cargo test --workspace"
cargo test --workspace "${locked[@]}" "$@"

echo "=== the quickstart's tests with its external sinks (features postgres, loki)"
cargo test -p quickstart --features postgres,loki "${locked[@]}" --test postgres_down --test dashboards

echo "=== the optional features of the Postgres sink (TLS, HTTP query router)"
cargo test -p tracepost-postgres --all-features "${locked[@]}" --test tls --test http

echo "=== object storage through OpenDAL's S3 service, against an in-process S3 server (s3s-fs)"
cargo test -p tracepost-opendal --features s3 "${locked[@]}" --test s3

echo "=== the quickstart's replay segments in S3 (feature s3, against an in-process s3s-fs)"
cargo test -p quickstart --features s3 "${locked[@]}" --test s3

echo "=== session replay through the facade (feature replay: tp-replay.js and /v1/replay into {data_dir}/objects)"
cargo test -p tracepost --features replay "${locked[@]}" --test replay

echo "=== project API keys in Postgres behind the log routes, and the tracepost keys command"
cargo test -p tracepost-postgres --features cli,admin "${locked[@]}" --test log_keys --test admin

echo "=== the console in Chromium (tests/browser/console.mjs; screenshots into book/src/console/)"
cargo build -p quickstart "${locked[@]}"
node tests/browser/console.mjs
