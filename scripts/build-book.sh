#!/usr/bin/env bash
# Builds the mdBook; any warning or error (a missing include, a broken link) fails the build.
set -euo pipefail
cd "$(dirname "$0")/../book"
out=$(mdbook build 2>&1) || { echo "$out"; exit 1; }
echo "$out"
if echo "$out" | grep -E '\b(WARN|ERROR)\b' >/dev/null; then
  echo "mdbook printed warnings or errors" >&2
  exit 1
fi
