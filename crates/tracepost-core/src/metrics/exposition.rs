//! The two exposition formats of `/metrics`, and how a scraper chooses one.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{text, DescriptorEncoder};
use prometheus_client::registry::Registry;

/// The format `/metrics` is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricsFormat {
    /// The Prometheus text format, version 0.0.4: what `curl`, `promtool check metrics` and
    /// scrapers that send no `Accept` header get.
    #[default]
    Prometheus,
    /// OpenMetrics 1.0 text (`application/openmetrics-text`): what Prometheus asks for first.
    OpenMetrics,
}

impl MetricsFormat {
    /// The format a request's `Accept` header asks for: OpenMetrics when it lists
    /// `application/openmetrics-text` with a quality at least as high as any other type it
    /// accepts, the Prometheus text format otherwise (no header, `*/*`, `text/plain`, …).
    pub fn from_accept(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return MetricsFormat::Prometheus;
        };
        let (mut openmetrics, mut other) = (0.0_f32, 0.0_f32);
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, v)| v.trim().parse::<f32>().ok())
                .unwrap_or(0.0);
            if media == "application/openmetrics-text" {
                openmetrics = openmetrics.max(q);
            } else if !media.is_empty() {
                other = other.max(q);
            }
        }
        if openmetrics > 0.0 && openmetrics >= other {
            MetricsFormat::OpenMetrics
        } else {
            MetricsFormat::Prometheus
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            MetricsFormat::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            MetricsFormat::OpenMetrics => {
                "application/openmetrics-text; version=1.0.0; charset=utf-8"
            }
        }
    }
}

/// Encodes `registries` one after the other as one exposition in `format` (what `/metrics`
/// serves is tracepost's registry, each sink's, then the application's).
///
/// A registry whose collector fails is left out whole (and logged) rather than cut mid-family.
pub fn encode_registries(registries: &[&Registry], format: MetricsFormat) -> String {
    let mut openmetrics = String::new();
    for registry in registries {
        let mut part = String::new();
        match text::encode_registry(&mut part, registry) {
            Ok(()) => openmetrics.push_str(&part),
            Err(_) => tracing::warn!(
                target: "tracepost::metrics",
                "a metrics collector failed; its families are left out of /metrics"
            ),
        }
    }
    openmetrics.push_str("# EOF\n");
    match format {
        MetricsFormat::OpenMetrics => openmetrics,
        MetricsFormat::Prometheus => openmetrics_to_prometheus_text(&openmetrics),
    }
}

/// Rewrites an OpenMetrics text exposition (as `prometheus-client` writes it) into the
/// Prometheus text format 0.0.4, leaving every sample line's name, labels and value as is.
///
/// Only the metadata differs between the two: a counter family is named without its `_total`
/// suffix in OpenMetrics and with it in 0.0.4, an info family gains `_info` and becomes a
/// gauge, `unknown` is `untyped`, and `# UNIT` / `# EOF` lines and exemplars have no 0.0.4
/// form. `prometheus-client`'s own 0.0.4 encoder is not used because it writes bucket bounds
/// the way Go does (`le="1"`, `le="6.7108864e+07"`), which would change the `le` values
/// tracepost has always exposed (`le="1.0"`, `le="67108864.0"`) and split each series in two
/// between scrapers that negotiate different formats.
pub fn openmetrics_to_prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len() + openmetrics.len() / 16);
    // The HELP line waits for its TYPE line, which tells the family's 0.0.4 name.
    let mut help: Option<(&str, &str)> = None;
    // The family whose samples follow, and whether it is a counter.
    let mut counter_family: Option<&str> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
            help = Some((name, text));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let (suffix, kind) = match kind {
                "counter" => ("_total", "counter"),
                "info" => ("_info", "gauge"),
                "unknown" => ("", "untyped"),
                other => ("", other),
            };
            counter_family = (kind == "counter").then_some(name);
            if let Some((help_name, text)) = help.take().filter(|(n, _)| *n == name) {
                push_line(&mut out, &["# HELP ", help_name, suffix, " ", text]);
            }
            push_line(&mut out, &["# TYPE ", name, suffix, " ", kind]);
            continue;
        }
        if line.starts_with('#') {
            // `# UNIT`, `# EOF`: no 0.0.4 form.
            continue;
        }
        if let Some(family) = counter_family {
            // A counter's creation time is an OpenMetrics-only sample.
            if line
                .strip_prefix(family)
                .is_some_and(|r| r.starts_with("_created"))
            {
                continue;
            }
        }
        push_line(&mut out, &[strip_exemplar(line)]);
    }
    out
}

fn push_line(out: &mut String, parts: &[&str]) {
    for p in parts {
        out.push_str(p);
    }
    out.push('\n');
}

/// A sample line without its OpenMetrics exemplar (` # {labels} value`): the part after the
/// label set (whose quoted values may hold anything) is `value [timestamp]`, no `#`.
fn strip_exemplar(line: &str) -> &str {
    let name_end = line.find(['{', ' ']).unwrap_or(line.len());
    let mut in_quotes = false;
    let mut escaped = false;
    let mut labels_end = name_end;
    if !line[name_end..].starts_with('{') {
        return match line[name_end..].find(" # ") {
            Some(i) => &line[..name_end + i],
            None => line,
        };
    }
    for (i, c) in line[name_end..].char_indices() {
        let i = name_end + i;
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '}' if !in_quotes => {
                labels_end = i;
                break;
            }
            _ => {}
        }
    }
    match line[labels_end..].find(" # ") {
        Some(i) => &line[..labels_end + i],
        None => line,
    }
}

/// A [`Collector`] from a closure that encodes families at each scrape.
pub(crate) struct FnCollector<F>(F);

impl<F> FnCollector<F>
where
    F: Fn(&mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> + Send + Sync + 'static,
{
    pub(crate) fn new(f: F) -> Self {
        FnCollector(f)
    }
}

impl<F> std::fmt::Debug for FnCollector<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnCollector")
    }
}

impl<F> Collector for FnCollector<F>
where
    F: Fn(&mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> + Send + Sync + 'static,
{
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        (self.0)(&mut encoder)
    }
}

/// Encodes the families a closure writes, as one exposition (for tests).
#[cfg(test)]
pub(crate) fn encode_fn<F>(f: F, format: MetricsFormat) -> String
where
    F: Fn(&mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> + Send + Sync + 'static,
{
    let mut registry = Registry::default();
    registry.register_collector(Box::new(FnCollector::new(f)));
    encode_registries(&[&registry], format)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::metrics::info::Info;

    #[test]
    fn negotiates_openmetrics_only_when_preferred() {
        use MetricsFormat::*;
        let prometheus_2 = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        for (accept, want) in [
            (None, Prometheus),
            (Some(""), Prometheus),
            (Some("*/*"), Prometheus),
            (Some("text/plain"), Prometheus),
            (Some(prometheus_2), OpenMetrics),
            (
                Some("Application/OpenMetrics-Text; version=1.0.0"),
                OpenMetrics,
            ),
            (
                Some("text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5"),
                Prometheus,
            ),
            (Some("application/openmetrics-text;q=0"), Prometheus),
            (Some("application/openmetrics-text;q=junk"), Prometheus),
            (Some("application/json"), Prometheus),
        ] {
            assert_eq!(MetricsFormat::from_accept(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn prometheus_text_keeps_every_sample_and_renames_counter_families() {
        let mut registry = Registry::default();
        let requests = Family::<Vec<(String, String)>, Counter>::default();
        requests
            .get_or_create(&vec![("path".into(), "a \"quoted\" # {x}".into())])
            .inc_by(3);
        registry.register("app_requests", "Requests served", requests);
        let g = Gauge::<i64>::default();
        g.set(-2);
        registry.register("app_temperature", "A gauge", g);
        let h = Histogram::new([0.5, 1.0]);
        h.observe(0.7);
        registry.register("app_latency_seconds", "A histogram", h);
        registry.register(
            "app_build",
            "Build info",
            Info::new(vec![("version".to_owned(), "1.2".to_owned())]),
        );

        let om = encode_registries(&[&registry], MetricsFormat::OpenMetrics);
        assert!(om.ends_with("# EOF\n"));
        assert!(om.contains("# TYPE app_requests counter\n"));
        let text = encode_registries(&[&registry], MetricsFormat::Prometheus);
        assert!(!text.contains("# EOF"));
        assert!(text.contains("# HELP app_requests_total Requests served.\n"));
        assert!(text.contains("# TYPE app_requests_total counter\n"));
        assert!(text.contains("# TYPE app_build_info gauge\n"));
        assert!(text.contains("app_requests_total{path=\"a \\\"quoted\\\" # {x}\"} 3\n"));
        // The same samples in both formats, byte for byte.
        let samples = |s: &str| {
            let mut v: Vec<String> = s
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(str::to_owned)
                .collect();
            v.sort();
            v
        };
        assert_eq!(samples(&om), samples(&text));
        assert!(text.contains("app_latency_seconds_bucket{le=\"1.0\"} 1\n"));
    }

    #[test]
    fn exemplars_and_created_samples_have_no_prometheus_text_form() {
        let om = "# HELP c A counter.\n# TYPE c counter\nc_total{a=\"}\"} 1 # {trace_id=\"x\"} 1.0\nc_created 1.7e9\n# TYPE g gauge\ng 1 # {t=\"y\"} 2.0\n# EOF\n";
        assert_eq!(
            openmetrics_to_prometheus_text(om),
            "# HELP c_total A counter.\n# TYPE c_total counter\nc_total{a=\"}\"} 1\n# TYPE g gauge\ng 1\n"
        );
    }
}
