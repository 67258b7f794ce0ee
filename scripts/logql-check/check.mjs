// Parses every LogQL query of deploy/grafana/dashboards/*.json (Loki targets and variables)
// and every ```logql block of book/src with Grafana's own LogQL grammar (@grafana/lezer-logql,
// the parser of Grafana's Loki query editor), and fails on any syntax error. Grafana's
// variables are replaced by sample values first, as Grafana does before it sends a query.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { parser } from "@grafana/lezer-logql";

const root = join(import.meta.dirname, "..", "..");
const vars = { "${service:regex}": ".+", "$__interval": "1m", "$__range": "1h", "$__auto": "1m" };

function interpolate(q) {
  for (const [k, v] of Object.entries(vars)) q = q.split(k).join(v);
  const left = q.match(/\$[{\w]/);
  if (left) throw new Error(`unknown variable ${left[0]} in ${q}`);
  return q;
}

// Returns the error positions of `q`'s parse, or [] when it parses cleanly.
function errors(q) {
  const out = [];
  parser.parse(q).iterate({
    enter(node) {
      if (node.type.isError) out.push(node.from);
    },
  });
  return out;
}

const queries = [];
const dashDir = join(root, "deploy/grafana/dashboards");
for (const f of readdirSync(dashDir).filter((f) => f.endsWith(".json")).sort()) {
  const d = JSON.parse(readFileSync(join(dashDir, f), "utf8"));
  const lokiVars = new Set(
    d.templating.list.filter((v) => v.type === "datasource" && v.query === "loki").map((v) => `\${${v.name}}`),
  );
  const walk = (panels) =>
    panels.flatMap((p) => [p, ...walk(p.panels ?? [])]);
  for (const p of walk(d.panels)) {
    for (const t of p.targets ?? []) {
      const ds = t.datasource ?? p.datasource;
      if (ds && lokiVars.has(ds.uid)) queries.push([`${f}: ${p.title}`, interpolate(t.expr)]);
    }
  }
}
const bookDir = join(root, "book/src");
for (const f of readdirSync(bookDir).filter((f) => f.endsWith(".md")).sort()) {
  const blocks = readFileSync(join(bookDir, f), "utf8").matchAll(/```logql\n([\s\S]*?)```/g);
  for (const [, q] of blocks) queries.push([`book/src/${f}`, q.trim()]);
}

let failed = 0;
for (const [where, q] of queries) {
  const at = errors(q);
  if (at.length) {
    failed++;
    console.error(`${where}: LogQL syntax error at ${at.join(", ")}:\n  ${q}\n  ${" ".repeat(at[0])}^`);
  }
}
if (queries.length < 4) {
  console.error(`only ${queries.length} LogQL queries found`);
  process.exit(1);
}
if (failed) process.exit(1);
console.log(`${queries.length} LogQL queries parse (dashboards and book)`);
