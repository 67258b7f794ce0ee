//! The shipped Grafana dashboards and Prometheus alert rules, run against real data.
//!
//! Starts the quickstart binary with every sink (Postgres on the local server, Loki on
//! tracepost-loki's in-process receiver, which decodes pushes the way Loki does), and Debian's
//! real `prometheus` server scraping it every second with `deploy/prometheus/rules/` loaded.
//! Drives traffic with 4xx, 5xx, panics and slow requests; has the receiver refuse some lines
//! (400 "too old") and then answer 503, so that the Loki sink rejects, retries, goes down and
//! spools. Then:
//!
//! - every PromQL target and `label_values` variable of `deploy/grafana/dashboards/*.json` runs
//!   through Prometheus's HTTP API (as the range query a Grafana panel makes) and must return a
//!   series with a finite value;
//! - every rule of the rules file must be healthy, and every alert active (pending or firing);
//! - every SQL target runs against the Postgres database the quickstart filled (Grafana's macros
//!   expanded as Grafana expands them) and must return rows;
//! - every LogQL target is checked against what the Loki sink pushed: its stream labels,
//!   structured metadata and JSON fields must exist, and its selector and filters must match
//!   entries. (No Loki server runs here; this checks names and matching, not Loki's parser.)
//!
//! Needs `prometheus` and PostgreSQL (`scripts/setup.sh` installs both). Under `CI=true` a
//! missing one fails the test; elsewhere it is skipped with a loud message.

#[path = "../../../plugins/tracepost-loki/tests/receiver/mod.rs"]
mod receiver;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Kills the child on drop, so a failing assertion leaves no process behind.
struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn skip_or_fail(what: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} is required under CI=true (scripts/setup.sh installs it)");
    }
    eprintln!(
        "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
         !!! SKIPPING the dashboards test: {what} (run scripts/setup.sh)\n\
         !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
    );
    true
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// HTTP, by hand: HTTP/1.0 so that bodies end at EOF (no chunked encoding to undo).

fn http_raw(addr: &str, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let out = String::from_utf8_lossy(&out).into_owned();
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line from {addr}: {out:?}"));
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn get(addr: &str, path: &str) -> (u16, String) {
    http_raw(
        addr,
        &format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: dashboards-test\r\n\r\n"),
    )
}

fn post(addr: &str, path: &str, content_type: &str, body: &str) -> (u16, String) {
    http_raw(
        addr,
        &format!(
            "POST {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

// ---------------------------------------------------------------------------------------------
// Prometheus.

struct Prometheus {
    addr: String,
    _child: Killed,
}

impl Prometheus {
    /// A Prometheus API call; panics unless it answers `"status": "success"`.
    fn api(&self, path: &str, params: &[(&str, &str)], what: &str) -> Value {
        let (code, body) = get(&self.addr, &format!("{path}?{}", form(params)));
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{what}: HTTP {code}, not JSON ({e}): {body}"));
        assert_eq!(v["status"], "success", "{what}: HTTP {code}: {body}");
        v["data"].clone()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_prometheus(bin: &Path, dir: &Path, target: &str) -> Prometheus {
    let rules = Path::new(ROOT).join("deploy/prometheus/rules/tracepost.yml");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: quickstart\n    static_configs:\n      - targets: [\"{target}\"]\n",
            rules.canonicalize().unwrap().display()
        ),
    )
    .unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let child = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if TcpStream::connect(&addr).is_ok() && get(&addr, "/-/ready").0 == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus not ready in 20 s: {}",
            std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Prometheus {
        addr,
        _child: child,
    }
}

// ---------------------------------------------------------------------------------------------
// The quickstart.

struct Quickstart {
    addr: String,
    _child: Killed,
}

fn start_quickstart(data: &Path, database_url: &str, loki_url: &str) -> Quickstart {
    let mut child = Command::new(env!("CARGO_BIN_EXE_quickstart"))
        .env("QUICKSTART_ADDR", "127.0.0.1:0")
        .env("TRACEPOST_DATA", data)
        .env("DATABASE_URL", database_url)
        .env("LOKI_URL", loki_url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut stderr = child.stderr.take().unwrap();
    // The console sink prints every event: keep the pipe drained.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let mut addr = None;
    let mut line = String::new();
    while addr.is_none() && stdout.read_line(&mut line).unwrap() > 0 {
        addr = line
            .split("listening on http://")
            .nth(1)
            .map(|a| a.trim().to_owned());
        line.clear();
    }
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    Quickstart {
        addr: addr.expect("the banner names the address"),
        _child: Killed(child),
    }
}

/// One round of traffic: successes, 4xx, 5xx, a panic, a body, a stream; returns the statuses.
fn traffic_round(addr: &str) -> Vec<u16> {
    vec![
        get(addr, "/").0,
        get(addr, "/users/7").0,
        get(addr, "/users/0").0,      // 404
        get(addr, "/no/such/path").0, // 404, route _unmatched
        get(addr, "/fail").0,         // 500
        get(addr, "/panic").0,        // panic: 500
        post(
            addr,
            "/checkout",
            "application/json",
            r#"{"items":[{"sku":"a-1","qty":2},{"sku":"b-7","qty":1}]}"#,
        )
        .0, // 502
        get(addr, "/stream?chunks=4&size=2048").0,
    ]
}

/// Runs traffic rounds for `secs`, with `slow` concurrent 1.5 s requests in the background.
fn traffic(addr: &str, secs: u64, slow: usize) {
    let slow: Vec<_> = (0..slow)
        .map(|_| {
            let addr = addr.to_owned();
            std::thread::spawn(move || get(&addr, "/slow?ms=1500").0)
        })
        .collect();
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let statuses = traffic_round(addr);
        assert_eq!(statuses, [200, 200, 404, 404, 500, 500, 502, 200]);
        std::thread::sleep(Duration::from_millis(100));
    }
    for s in slow {
        assert_eq!(s.join().unwrap(), 200);
    }
}

// ---------------------------------------------------------------------------------------------
// Dashboards.

struct Target {
    dashboard: String,
    panel: String,
    kind: String,
    query: String,
    instant: bool,
}

fn dashboards() -> Vec<(String, Value)> {
    let dir = Path::new(ROOT).join("deploy/grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 3,
        "dashboards in {}: {files:?}",
        dir.display()
    );
    files
        .into_iter()
        .map(|f| {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            (f.file_name().unwrap().to_string_lossy().into_owned(), v)
        })
        .collect()
}

/// The data source type a `{"type", "uid": "${var}"}` reference resolves to.
fn datasource_kind(dash: &Value, ds: &Value) -> String {
    let uid = ds["uid"].as_str().unwrap_or_default();
    let var = uid.trim_start_matches("${").trim_end_matches('}');
    let declared = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["type"] == "datasource" && v["name"] == var)
        .unwrap_or_else(|| panic!("data source {uid} is not a datasource variable"));
    let kind = declared["query"].as_str().unwrap().to_owned();
    assert_eq!(ds["type"], kind.as_str(), "data source {uid}");
    kind
}

fn targets(name: &str, dash: &Value) -> Vec<Target> {
    fn walk(panels: &Value, out: &mut Vec<Value>) {
        for p in panels.as_array().into_iter().flatten() {
            out.push(p.clone());
            walk(&p["panels"], out);
        }
    }
    let mut panels = Vec::new();
    walk(&dash["panels"], &mut panels);
    let mut out = Vec::new();
    for p in panels.iter().filter(|p| p["type"] != "row") {
        let title = p["title"].as_str().unwrap().to_owned();
        let ts = p["targets"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        assert!(!ts.is_empty(), "{name}: panel {title:?} has no query");
        for t in ts {
            let ds = if t["datasource"].is_null() {
                &p["datasource"]
            } else {
                &t["datasource"]
            };
            let kind = datasource_kind(dash, ds);
            let query = t["expr"]
                .as_str()
                .or(t["rawSql"].as_str())
                .unwrap_or_else(|| panic!("{name}: {title:?}: target without a query"))
                .to_owned();
            let instant = t["instant"] == true || t["queryType"] == "instant";
            out.push(Target {
                dashboard: name.to_owned(),
                panel: title.clone(),
                kind,
                query,
                instant,
            });
        }
    }
    out
}

/// Replaces `$name` / `${name}` / `${name:fmt}` as Grafana would with every variable on "All"
/// and the given built-ins; panics on any variable left over.
fn interpolate(query: &str, vars: &[(&str, &str)]) -> String {
    let mut q = query.to_owned();
    // Longest names first, so that `$__range` is not taken for `$__rate_interval`'s prefix.
    let mut vars = vars.to_vec();
    vars.sort_by_key(|(n, _)| std::cmp::Reverse(n.len()));
    for (name, value) in &vars {
        q = q.replace(&format!("${{{name}:regex}}"), value);
        q = q.replace(&format!("${{{name}}}"), value);
        q = q.replace(&format!("${name}"), value);
    }
    let left = q.match_indices('$').any(|(i, _)| {
        q[i + 1..].starts_with(|c: char| c == '{' || c == '_' || c.is_ascii_alphabetic())
    });
    assert!(!left, "unknown variable left in {q}");
    q
}

fn finite_points(result: &Value) -> usize {
    let finite = |p: &Value| {
        p[1].as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .is_some_and(f64::is_finite)
    };
    result
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let vs = s["values"].as_array().cloned().unwrap_or_default();
            vs.iter().filter(|p| finite(p)).count() + usize::from(finite(&s["value"]))
        })
        .sum()
}

// ---------------------------------------------------------------------------------------------
// LogQL, checked against the entries the Loki sink pushed.

/// One entry as Loki would hold it: stream labels, structured metadata, the JSON line.
struct LokiEntry {
    labels: BTreeMap<String, String>,
    metadata: BTreeMap<String, String>,
    line: Value,
}

fn parse_stream_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s.trim().trim_start_matches('{').trim_end_matches('}');
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => value.push(chars.next().map(|(_, c)| c).unwrap_or('\\')),
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.insert(name.trim().trim_start_matches(',').trim().to_owned(), value);
        rest = &after[end..];
    }
    out
}

/// What Loki's `| json` without arguments extracts: nested objects flattened with `_`, scalars
/// as strings, arrays skipped.
fn flatten_json(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}_{k}")
                };
                let key: String = key
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                flatten_json(&key, v, out);
            }
        }
        Value::Array(_) => {}
        Value::String(s) => {
            out.insert(prefix.to_owned(), s.clone());
        }
        Value::Null => {}
        other => {
            out.insert(prefix.to_owned(), other.to_string());
        }
    }
}

fn matches(op: &str, have: Option<&String>, want: &str) -> bool {
    let have = have.map(String::as_str).unwrap_or("");
    match op {
        "=" => have == want,
        "!=" => have != want,
        "=~" | "!~" => {
            // The dashboards use `.+` / `.*` (a variable on All) and plain alternations only.
            let hit = match want {
                ".+" => !have.is_empty(),
                ".*" => true,
                w if w
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "|_-".contains(c)) =>
                {
                    w.split('|').any(|alt| alt == have)
                }
                w => panic!("regex {w:?}: not supported by this check"),
            };
            hit == (op == "=~")
        }
        op => panic!("operator {op}"),
    }
}

/// Splits `name op "value"`.
fn parse_matcher(m: &str) -> (String, String, String) {
    let m = m.trim();
    let i = m
        .find(['=', '!'])
        .unwrap_or_else(|| panic!("not a matcher: {m}"));
    let (name, rest) = m.split_at(i);
    let op_len = if rest.starts_with("=~") || rest.starts_with("!=") || rest.starts_with("!~") {
        2
    } else {
        1
    };
    let (op, value) = rest.split_at(op_len);
    let value = value.trim();
    assert!(
        value.starts_with('"') && value.ends_with('"'),
        "matcher value must be a string: {m}"
    );
    (
        name.trim().to_owned(),
        op.to_owned(),
        value[1..value.len() - 1].to_owned(),
    )
}

/// Splits on `sep` outside double quotes.
fn split_outside_quotes(s: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut escaped = false;
    for c in s.chars() {
        if c == sep && !quoted {
            out.push(String::new());
            continue;
        }
        if c == '"' && !escaped {
            quoted = !quoted;
        }
        escaped = c == '\\' && !escaped;
        out.last_mut().unwrap().push(c);
    }
    out
}

/// Checks one LogQL query against the received entries: the stream selector, label filters,
/// `json` extractions, `line_format` fields and `by (…)` groupings must all name things that
/// exist, and the selector and filters must match at least one entry. Returns how many
/// entries matched. Constructs outside this subset fail the check (so that a new panel cannot
/// slip through unchecked).
fn check_logql(query: &str, entries: &[LokiEntry]) -> usize {
    let open = query.find('{').expect("a stream selector");
    let close = open + query[open..].find('}').unwrap();
    let selector: Vec<_> = split_outside_quotes(&query[open + 1..close], ',')
        .iter()
        .map(|m| parse_matcher(m))
        .collect();
    // The pipeline runs to the range `[…]` of a metric query, or to the end of a log query.
    let after = &query[close + 1..];
    let pipeline_end = {
        let mut quoted = false;
        after
            .char_indices()
            .find(|&(_, c)| {
                if c == '"' {
                    quoted = !quoted;
                }
                !quoted && c == '['
            })
            .map_or(after.len(), |(i, _)| i)
    };
    let pipeline = &after[..pipeline_end];
    let grouping: Vec<String> = match query.find(" by (") {
        Some(i) => {
            let rest = &query[i + 5..];
            rest[..rest.find(')').unwrap()]
                .split(',')
                .map(|s| s.trim().to_owned())
                .collect()
        }
        None => Vec::new(),
    };

    let mut matched = 0;
    let mut needs: BTreeSet<String> = grouping.iter().cloned().collect();
    // The fields some matched entry has: a field the query needs must be on at least one.
    // (This was checked against the last matched entry alone, which made the check depend
    // on the order of the pushed entries: an error log after the last 5xx lacks `request`.)
    let mut have: BTreeSet<String> = BTreeSet::new();
    // Names that label filters test, and those of them some entry had when tested.
    let mut filtered = BTreeSet::new();
    let mut found = BTreeSet::new();
    'entry: for e in entries {
        for (name, op, value) in &selector {
            assert!(
                entries.iter().any(|e| e.labels.contains_key(name)),
                "{query}: no stream has the label {name:?}"
            );
            if !matches(op, e.labels.get(name), value) {
                continue 'entry;
            }
        }
        let mut fields: BTreeMap<String, String> = e.labels.clone();
        fields.extend(e.metadata.clone());
        for stage in split_outside_quotes(pipeline, '|')
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
        {
            if stage == "json" {
                let mut parsed = BTreeMap::new();
                flatten_json("", &e.line, &mut parsed);
                for (k, v) in parsed {
                    fields.entry(k).or_insert(v);
                }
            } else if let Some(args) = stage.strip_prefix("json ") {
                for arg in split_outside_quotes(args, ',') {
                    let (name, op, path) = parse_matcher(&arg);
                    assert_eq!(op, "=", "{query}: json argument {arg}");
                    let mut v = &e.line;
                    for part in path.split('.') {
                        v = &v[part];
                    }
                    if let Some(s) = v.as_str() {
                        fields.insert(name, s.to_owned());
                    } else if !v.is_null() {
                        fields.insert(name, v.to_string());
                    }
                }
            } else if let Some(template) = stage.strip_prefix("line_format ") {
                for part in template.split("{{").skip(1) {
                    let field = part.split("}}").next().unwrap().trim();
                    let field = field.strip_prefix('.').unwrap_or_else(|| {
                        panic!("{query}: line_format {{{{{field}}}}}: only fields are checked")
                    });
                    needs.insert(field.to_owned());
                }
            } else {
                let (name, op, value) = parse_matcher(stage);
                if fields.contains_key(&name) {
                    found.insert(name.clone());
                }
                let hit = matches(&op, fields.get(&name), &value);
                filtered.insert(name);
                if !hit {
                    continue 'entry;
                }
            }
        }
        have.extend(fields.into_keys());
        matched += 1;
    }
    needs.retain(|n| !have.contains(n));
    let unknown: Vec<_> = filtered.difference(&found).collect();
    assert!(
        unknown.is_empty(),
        "{query}: filters on {unknown:?}, which no pushed entry has"
    );
    assert!(matched > 0, "{query}: matches none of the pushed entries");
    assert!(
        needs.is_empty(),
        "{query}: {needs:?} found on none of the {matched} entries it matches"
    );
    matched
}

// ---------------------------------------------------------------------------------------------
// SQL: Grafana's Postgres macros.

/// Expands `$__timeFilter(col)` and `$__timeGroupAlias(col, $__interval)` as Grafana's
/// Postgres data source does (with epoch bounds instead of RFC 3339 literals).
fn expand_sql(sql: &str, from: f64, to: f64, interval_secs: u64) -> String {
    let mut out = sql.replace("$__interval", &format!("'{interval_secs}s'"));
    while let Some(i) = out.find("$__time") {
        let open = i + out[i..].find('(').unwrap();
        let close = open + out[open..].find(')').unwrap();
        let args: Vec<String> = out[open + 1..close]
            .split(',')
            .map(|a| a.trim().to_owned())
            .collect();
        let expansion = match &out[i..open] {
            "$__timeFilter" => format!(
                "{} BETWEEN to_timestamp({from}) AND to_timestamp({to})",
                args[0]
            ),
            "$__timeGroupAlias" => {
                assert_eq!(args[1], format!("'{interval_secs}s'"));
                format!(
                    "floor(extract(epoch from {0})/{interval_secs})*{interval_secs} AS \"time\"",
                    args[0]
                )
            }
            other => panic!("Grafana macro {other} not expanded by this test"),
        };
        out.replace_range(i..=close, &expansion);
    }
    interpolate(&out, &[("service", ".+")])
}

// ---------------------------------------------------------------------------------------------

#[test]
fn every_dashboard_query_and_alert_rule_returns_data_from_the_real_quickstart() {
    let prometheus_bin = std::env::var_os("PROMETHEUS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::split_paths(&std::env::var_os("PATH")?)
                .map(|d| d.join("prometheus"))
                .find(|p| p.is_file())
        });
    let Some(prometheus_bin) = prometheus_bin else {
        skip_or_fail("no `prometheus` on PATH");
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let admin = match rt.block_on(tokio_postgres::connect(ADMIN_URL, tokio_postgres::NoTls)) {
        Ok((client, conn)) => {
            rt.spawn(conn);
            client
        }
        Err(e) => {
            skip_or_fail(&format!("no PostgreSQL at {ADMIN_URL} ({e})"));
            return;
        }
    };
    let db = format!("tp_test_dashboards_{}", std::process::id());
    rt.block_on(admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")))
        .unwrap();
    rt.block_on(admin.batch_execute(&format!("CREATE DATABASE {db}")))
        .unwrap();
    let database_url = format!("postgres://postgres@127.0.0.1:5432/{db}");

    // Loki's stand-in: refuses every push holding a /checkout line as Loki refuses old entries.
    let t_setup = Instant::now();
    let loki = rt.block_on(receiver::Receiver::start());
    loki.reject_lines_containing(
        "/checkout",
        "entry for stream '{service=\"quickstart\"}' has timestamp too old: 2020-01-01T00:00:00Z",
    );

    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let started = unix_now();
    let app = start_quickstart(&data, &database_url, &loki.url());
    let prom = start_prometheus(&prometheus_bin, tmp.path(), &app.addr);
    // Counters must be scraped at zero first, or what happens before the first scrape is
    // invisible to increase() and rate().
    let deadline = Instant::now() + Duration::from_secs(15);
    while prom.api("/api/v1/query", &[("query", "up == 1")], "up")["result"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "prometheus never scraped the quickstart"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let t0 = unix_now();

    // Phase 1: Loki accepts (but the /checkout lines), so the sink sends and rejects.
    traffic(&app.addr, 6, 3);
    // Wait until phase 1's error events, request snapshots included, have reached Loki: the
    // sink batches and may still be sending when the traffic ends.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !loki
        .accepted()
        .iter()
        .any(|(labels, e)| labels.contains("kind=\"error\"") && e.line.contains("\"request\":"))
    {
        assert!(
            Instant::now() < deadline,
            "the Loki sink delivered no error with its request in phase 1 ({} entries)",
            loki.accepted_count()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Phase 2: Loki answers 503: the sink retries, goes down and spools.
    loki.script((0..100_000).map(|_| receiver::Reply::Status(503, None, "ingester unavailable")));
    traffic(&app.addr, 7, 3);
    // Let Prometheus scrape the end state and evaluate the rules on it.
    std::thread::sleep(Duration::from_secs(3));
    let t1 = unix_now();
    let range = format!("{}s", (t1 - t0).ceil() as u64 + 1);
    let vars = [
        ("job", ".*"),
        ("instance", ".*"),
        ("route", ".*"),
        ("method", ".*"),
        ("sink", ".*"),
        ("__rate_interval", "10s"),
        ("__interval", "2s"),
        ("__range", range.as_str()),
    ];

    let (start, end) = (format!("{t0}"), format!("{t1}"));
    let mut checked = BTreeMap::<&str, usize>::new();
    let dashboards = dashboards();
    for (name, dash) in &dashboards {
        // Variables: label_values() as Grafana's Prometheus data source runs it (the series
        // API), and Loki's label_values(label) against the pushed stream labels below.
        for v in dash["templating"]["list"].as_array().unwrap() {
            if v["type"] != "query" || v["datasource"]["type"] != "prometheus" {
                continue;
            }
            let def = v["query"].as_str().expect("a query variable as a string");
            let inner = def
                .strip_prefix("label_values(")
                .and_then(|s| s.strip_suffix(')'))
                .unwrap_or_else(|| panic!("{name}: variable {def}: only label_values(…)"));
            let (selector, label) = inner.rsplit_once(',').unwrap();
            let selector = interpolate(selector.trim(), &vars);
            let series = prom.api(
                "/api/v1/series",
                &[("match[]", &selector), ("start", &start), ("end", &end)],
                def,
            );
            let values: BTreeSet<_> = series
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|s| s[label.trim()].as_str())
                .collect();
            assert!(!values.is_empty(), "{name}: variable {def} has no values");
            *checked.entry("variables").or_default() += 1;
        }
        for t in targets(name, dash)
            .iter()
            .filter(|t| t.kind == "prometheus")
        {
            let q = interpolate(&t.query, &vars);
            let what = format!("{} / {}: {q}", t.dashboard, t.panel);
            let data = if t.instant {
                prom.api("/api/v1/query", &[("query", &q), ("time", &end)], &what)
            } else {
                prom.api(
                    "/api/v1/query_range",
                    &[
                        ("query", &q),
                        ("start", &start),
                        ("end", &end),
                        ("step", "1"),
                    ],
                    &what,
                )
            };
            assert!(
                finite_points(&data["result"]) > 0,
                "{what}\nreturned no finite value: {data}"
            );
            *checked.entry("PromQL").or_default() += 1;
        }
    }

    // Spot checks that panels mean what their titles say, over the whole run.
    let panel_query = |dashboard: &str, title: &str| -> String {
        let (name, dash) = dashboards.iter().find(|(n, _)| n == dashboard).unwrap();
        let t = targets(name, dash).into_iter().find(|t| t.panel == title);
        let vars: Vec<_> = vars
            .iter()
            .map(|&(n, v)| match n {
                "__rate_interval" => (n, range.as_str()),
                _ => (n, v),
            })
            .collect();
        interpolate(
            &t.unwrap_or_else(|| panic!("no panel {title:?}")).query,
            &vars,
        )
    };
    let now = |q: &str| -> Vec<(Value, f64)> {
        let data = prom.api("/api/v1/query", &[("query", q), ("time", &end)], q);
        data["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["metric"].clone(),
                    s["value"][1].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect()
    };
    // Three of each round's eight requests fail with 5xx (/fail, /panic, /checkout); the six
    // slow requests succeed.
    let ratio = now(&panel_query("tracepost-http-red.json", "5xx ratio"));
    assert!(
        ratio.len() == 1 && ratio[0].1 > 0.3 && ratio[0].1 <= 0.375,
        "5xx ratio over the run: {ratio:?}"
    );
    let p99 = now(&panel_query(
        "tracepost-http-red.json",
        "p99 latency by route and method",
    ));
    let slow = p99
        .iter()
        .find(|(m, _)| m["http_route"] == "/slow")
        .expect("a p99 for /slow");
    assert!(slow.1 > 1.0 && slow.1 <= 2.5, "p99 of /slow: {slow:?}");
    // Sink health: 0 up, 2 down; only the Loki sink is down at the end (the embedded
    // console, NDJSON and SQLite sinks, the console's live tail, and Postgres, are up).
    let health: BTreeMap<String, f64> = now(&panel_query("tracepost-pipeline.json", "Sink health"))
        .into_iter()
        .map(|(m, v)| (m["sink"].as_str().unwrap().to_owned(), v))
        .collect();
    assert_eq!(
        health,
        BTreeMap::from(
            [
                ("console", 0.0),
                ("jsonl", 0.0),
                ("live_tail", 0.0),
                ("loki", 2.0),
                ("postgres", 0.0),
                ("sqlite", 0.0)
            ]
            .map(|(s, v)| (s.to_owned(), v))
        )
    );

    // The rules Prometheus loaded from deploy/prometheus/rules: healthy, and every alert active.
    let groups = prom.api("/api/v1/rules", &[], "rules");
    let mut alerts = BTreeMap::new();
    for g in groups["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            let rule = r["name"].as_str().unwrap();
            assert_eq!(r["health"], "ok", "{rule}: {r}");
            let data = prom.api(
                "/api/v1/query",
                &[("query", r["query"].as_str().unwrap())],
                rule,
            );
            assert!(
                finite_points(&data["result"]) > 0,
                "{rule} returned nothing now: {data}"
            );
            // Which series the alert is active for, by its distinguishing labels.
            let active: BTreeSet<String> = r["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    ["sink", "reason", "http_route", "job"]
                        .iter()
                        .filter_map(|l| Some(format!("{l}={}", a["labels"][l].as_str()?)))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .collect();
            alerts.insert(
                rule.to_owned(),
                (r["state"].as_str().unwrap().to_owned(), active),
            );
        }
    }
    assert_eq!(
        alerts.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "TracepostEventsDropped",
            "TracepostHighErrorRatio",
            "TracepostHighLatencyP99",
            "TracepostSinkDown",
            "TracepostSpoolGrowing"
        ]
    );
    // Each alert is active for exactly what the traffic broke: the Loki sink, /slow, the job.
    let expected = [
        (
            "TracepostEventsDropped",
            "sink=loki,reason=rejected,job=quickstart",
        ),
        ("TracepostHighErrorRatio", "job=quickstart"),
        ("TracepostHighLatencyP99", "http_route=/slow,job=quickstart"),
        ("TracepostSinkDown", "sink=loki,job=quickstart"),
        ("TracepostSpoolGrowing", "sink=loki,job=quickstart"),
    ];
    for (alert, labels) in expected {
        let (state, active) = &alerts[alert];
        assert!(
            state == "pending" || state == "firing",
            "{alert} is {state}; all: {alerts:?}"
        );
        assert_eq!(
            active.iter().map(String::as_str).collect::<Vec<_>>(),
            [labels],
            "{alert} is active for other series than expected"
        );
    }
    checked.insert("alert rules", alerts.len());

    // SQL panels: against the database the quickstart's Postgres sink filled.
    let client = {
        let (c, conn) = rt
            .block_on(tokio_postgres::connect(
                &database_url,
                tokio_postgres::NoTls,
            ))
            .unwrap();
        rt.spawn(conn);
        c
    };
    let sql_to = unix_now() + 1.0;
    for (name, dash) in &dashboards {
        for t in targets(name, dash)
            .iter()
            .filter(|t| t.kind == "grafana-postgresql-datasource")
        {
            let sql = expand_sql(&t.query, started - 1.0, sql_to, 60);
            let rows = rt
                .block_on(client.simple_query(&sql))
                .unwrap_or_else(|e| panic!("{} / {}:\n{sql}\nfailed: {e:?}", t.dashboard, t.panel));
            let n = rows
                .iter()
                .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
                .count();
            assert!(n > 0, "{} / {}: no rows from\n{sql}", t.dashboard, t.panel);
            *checked.entry("SQL").or_default() += 1;
        }
    }

    // LogQL panels: against what the Loki sink pushed (and the receiver accepted).
    let entries: Vec<LokiEntry> = loki
        .accepted()
        .into_iter()
        .map(|(labels, e)| LokiEntry {
            labels: parse_stream_labels(&labels),
            metadata: e.metadata.into_iter().collect(),
            line: serde_json::from_str(&e.line)
                .unwrap_or_else(|err| panic!("line is not JSON ({err}): {}", e.line)),
        })
        .collect();
    for (name, dash) in &dashboards {
        for v in dash["templating"]["list"].as_array().unwrap() {
            if v["type"] == "query" && v["datasource"]["type"] == "loki" {
                let def = v["query"].as_str().expect("a query variable as a string");
                let label = def
                    .strip_prefix("label_values(")
                    .and_then(|s| s.strip_suffix(')'))
                    .filter(|l| !l.contains([',', '{']))
                    .unwrap_or_else(|| {
                        panic!("{name}: Loki variable {def}: only label_values(label)")
                    });
                assert!(
                    entries.iter().any(|e| e.labels.contains_key(label)),
                    "{name}: variable on the Loki label {label:?}, which no stream has"
                );
                *checked.entry("variables").or_default() += 1;
            }
        }
        for t in targets(name, dash).iter().filter(|t| t.kind == "loki") {
            let q = interpolate(
                &t.query,
                &[("service", ".+"), ("__interval", "1m"), ("__range", "1h")],
            );
            let n = check_logql(&q, &entries);
            eprintln!("LogQL {} / {}: {n} entries", t.dashboard, t.panel);
            *checked.entry("LogQL").or_default() += 1;
        }
    }

    eprintln!(
        "checked {checked:?} in {:.1} s (traffic and scraping: {:.1} s)",
        unix_now() - started,
        t1 - t0
    );
    assert!(checked["PromQL"] >= 30 && checked["SQL"] >= 4 && checked["LogQL"] >= 4);

    drop(app);
    drop(prom);
    drop(client);
    rt.block_on(admin.batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")))
        .unwrap();
    eprintln!("whole test: {:.1} s", t_setup.elapsed().as_secs_f64());
}
