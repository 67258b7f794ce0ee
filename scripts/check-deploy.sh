#!/usr/bin/env bash
# Checks the deployment files that CI cannot run (no Docker engine): Prometheus's config with
# promtool, and that every YAML file parses.
set -euo pipefail
cd "$(dirname "$0")/.."
promtool check config deploy/prometheus/prometheus.yml
python3 -c 'import yaml' 2>/dev/null || pip install -q pyyaml
python3 - <<'PY'
import glob, yaml
files = ["docker-compose.yml"] + glob.glob("deploy/**/*.yml", recursive=True)
for f in files:
    yaml.safe_load(open(f))
compose = yaml.safe_load(open("docker-compose.yml"))
for svc in ("quickstart", "prometheus", "postgres", "loki", "grafana"):
    assert svc in compose["services"], f"docker-compose.yml lacks the {svc} service"
print(f"{len(files)} YAML files parse; compose services: {', '.join(compose['services'])}")
PY
