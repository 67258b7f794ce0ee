#!/usr/bin/env bash
# Checks the deployment files that CI cannot run (no Docker engine, no Grafana): Prometheus's
# config and alert rules with promtool (including the rules' unit tests), that every YAML file
# parses, that the compose file wires the rules and dashboards in, the dashboards' JSON
# structure, and the syntax of every LogQL query (dashboards and book) with Grafana's LogQL
# grammar (scripts/logql-check, from the npm registry).
#
# The queries themselves are run by examples/quickstart/tests/dashboards.rs (part of
# scripts/test.sh, with the quickstart's postgres and loki features): a real Prometheus scraping
# the real quickstart, the real Postgres.
# `scripts/check-deploy.sh --live` runs that test too.
set -euo pipefail
cd "$(dirname "$0")/.."
promtool check config deploy/prometheus/prometheus.yml
promtool check rules deploy/prometheus/rules/*.yml
promtool test rules deploy/prometheus/tests/*.test.yml
python3 -c 'import yaml' 2>/dev/null || pip install -q pyyaml
python3 - <<'PY'
import glob, json, re, yaml

files = ["docker-compose.yml"] + glob.glob("deploy/**/*.yml", recursive=True)
for f in files:
    yaml.safe_load(open(f))
compose = yaml.safe_load(open("docker-compose.yml"))
services = compose["services"]
for svc in ("quickstart", "prometheus", "postgres", "loki", "grafana"):
    assert svc in services, f"docker-compose.yml lacks the {svc} service"

# The quickstart stores its replays in MinIO: built with the s3 feature, with MinIO's keys and
# the bucket minio-init creates, started after it.
qs = services["quickstart"]
env = qs["environment"]
assert "s3" in qs["command"][-1].split(","), "the quickstart is not built with --features s3"
minio_env = services["minio"]["environment"]
assert env["AWS_ACCESS_KEY_ID"] == minio_env["MINIO_ROOT_USER"], "quickstart: not MinIO's key id"
assert env["AWS_SECRET_ACCESS_KEY"] == minio_env["MINIO_ROOT_PASSWORD"], "quickstart: not MinIO's secret"
assert env["TRACEPOST_REPLAY_S3_ENDPOINT"] == "http://minio:9000"
bucket = env["TRACEPOST_REPLAY_S3_BUCKET"]
assert any(f"local/{bucket}" in c for c in services["minio-init"]["command"]), \
    f"minio-init does not create the bucket {bucket}"
assert "minio-init" in qs["depends_on"], "the quickstart starts before the bucket exists"

# Prometheus loads the rules: the whole deploy/prometheus directory is mounted where the
# config's relative rule_files resolve.
prom = yaml.safe_load(open("deploy/prometheus/prometheus.yml"))
assert "rules/*.yml" in prom.get("rule_files", []), "prometheus.yml does not load rules/*.yml"
assert "./deploy/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"], \
    "compose does not mount deploy/prometheus at /etc/prometheus"

# Grafana provisions the dashboards from the path the provider names.
provider = yaml.safe_load(open("deploy/grafana/provisioning/dashboards/tracepost.yml"))
path = provider["providers"][0]["options"]["path"]
assert f"./deploy/grafana/dashboards:{path}:ro" in services["grafana"]["volumes"], \
    f"compose does not mount deploy/grafana/dashboards at {path}"

# The dashboards: data sources only through variables, unique uids and panel ids, a sane grid.
book = open("book/src/dashboards.md").read()
uids = set()
boards = sorted(glob.glob("deploy/grafana/dashboards/*.json"))
assert boards, "no dashboards"
npanels = 0
for f in boards:
    d = json.load(open(f))
    assert d["uid"] not in uids, f"{f}: duplicate uid {d['uid']}"
    uids.add(d["uid"])
    assert d["title"] in book, f"book/src/dashboards.md does not list the dashboard {d['title']!r}"
    dsvars = {v["name"]: v["query"] for v in d["templating"]["list"] if v["type"] == "datasource"}
    assert dsvars, f"{f}: no data source variable"
    def check_ds(ds, where):
        m = re.fullmatch(r"\$\{(\w+)\}", ds.get("uid", ""))
        assert m and m.group(1) in dsvars, f"{f}: {where}: data source {ds} is not one of the variables {sorted(dsvars)}"
        assert ds["type"] == dsvars[m.group(1)], f"{f}: {where}: type {ds['type']} for a {dsvars[m.group(1)]} variable"
    for v in d["templating"]["list"]:
        if v["type"] == "query":
            check_ds(v["datasource"], f"variable {v['name']}")
    ids = set()
    def walk(panels):
        for p in panels:
            yield p
            yield from walk(p.get("panels", []))
    for p in walk(d["panels"]):
        assert p["id"] not in ids, f"{f}: duplicate panel id {p['id']}"
        ids.add(p["id"])
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, f"{f}: {p['title']}: gridPos {g}"
        if p["type"] == "row":
            continue
        npanels += 1
        assert p["title"] in book, f"book/src/dashboards.md does not list the panel {p['title']!r} of {f}"
        check_ds(p["datasource"], p["title"])
        assert p["targets"], f"{f}: {p['title']}: no query"
        for t in p["targets"]:
            check_ds(t.get("datasource", p["datasource"]), f"{p['title']} / {t['refId']}")
            assert t.get("expr") or t.get("rawSql"), f"{f}: {p['title']} / {t['refId']}: empty query"

rules = yaml.safe_load(open("deploy/prometheus/rules/tracepost.yml"))
alerts = [r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r]
for a in alerts:
    assert a in book, f"book/src/dashboards.md does not list the alert {a}"
print(f"{len(files)} YAML files parse; compose services: {', '.join(services)}")
print(f"{len(boards)} dashboards, {npanels} panels; {len(alerts)} alerts; all listed in the book")
PY
(cd scripts/logql-check && npm ci --no-audit --no-fund --loglevel=error)
node scripts/logql-check/check.mjs
if [ "${1:-}" = "--live" ]; then
  cargo test -p quickstart --features postgres,loki --test dashboards --locked
fi
