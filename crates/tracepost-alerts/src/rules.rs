//! The rules' state machine: events and clock ticks in, alerts out. No I/O and no clock of
//! its own (times are passed in), so every rule is tested with a virtual clock.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use tracepost_core::{Event, HealthReport, Kind, Level, SinkCounts, Timestamp};

use crate::alert::{Alert, AlertKind};
use crate::config::AlertRules;
use crate::known::KnownIssues;

/// The attribute marking a test alert event (`send_test_alert`): `alert.rule = "test"`.
pub const TEST_ATTRIBUTE: &str = "alert.rule";

/// Distinct users counted per issue (beyond this the count stays at the cap).
const MAX_USERS: usize = 1000;
/// Fingerprints tracked at once; the idle ones go first when full.
const MAX_TRACKED: usize = 10_000;
/// A tracked fingerprint idle (not suppressed) for this long is forgotten (it stays known).
const IDLE: Duration = Duration::from_secs(3600);
/// Application frames shown in a description.
const TOP_FRAMES: usize = 5;

struct IssueState {
    first_seen: Timestamp,
    last_seen: Timestamp,
    last_activity: Duration,
    /// Times of the latest occurrences, for the spike window (at most `threshold`).
    recent: VecDeque<Duration>,
    suppressed_until: Option<Duration>,
    suppressed: u64,
    users: HashSet<String>,
    /// The latest occurrence, for the text of follow-ups.
    latest: Alert,
}

#[derive(Default)]
struct SinkWatch {
    down_since: Option<Duration>,
    alerted_down: bool,
    last_dropped: u64,
    dropped_suppressed_until: Option<Duration>,
    dropped_pending: u64,
}

/// What the health rule reads: the pipeline's health, its sinks' counters, and the engine's
/// own sink name (not alerted on).
pub(crate) type HealthView<'a> = (&'a HealthReport, &'a [(String, SinkCounts)], &'a str);

pub(crate) struct RuleState {
    rules: AlertRules,
    known: KnownIssues,
    issues: HashMap<String, IssueState>,
    /// Metric windows: (arrival, requests, failed).
    requests: VecDeque<(Duration, u64, u64)>,
    error_rate_firing: bool,
    sinks: HashMap<String, SinkWatch>,
    /// Occurrences folded into follow-ups, for the metric.
    pub(crate) suppressed_total: u64,
}

impl RuleState {
    pub(crate) fn new(rules: AlertRules, known: KnownIssues) -> Self {
        RuleState {
            rules,
            known,
            issues: HashMap::new(),
            requests: VecDeque::new(),
            error_rate_firing: false,
            sinks: HashMap::new(),
            suppressed_total: 0,
        }
    }

    pub(crate) fn known_mut(&mut self) -> &mut KnownIssues {
        &mut self.known
    }

    /// The alerts one event raises now.
    pub(crate) fn on_event(&mut self, event: &Event, now: Duration) -> Vec<Alert> {
        let mut out = Vec::new();
        match event.kind {
            Kind::Alert
                if event
                    .attributes
                    .get(TEST_ATTRIBUTE)
                    .and_then(|v| v.as_str())
                    == Some("test") =>
            {
                let mut a = Alert::new(
                    AlertKind::Test,
                    Level::Info,
                    format!("Test alert from {}", event.resource.service),
                )
                .with_description(event.message.clone());
                resource_into(&mut a, event);
                out.push(a);
            }
            Kind::MetricWindow => {
                if let Some(m) = &event.metric {
                    if self.rules.error_rate.enabled
                        && self.error_rate_filter_matches(event)
                        && m.count > 0
                    {
                        self.requests.push_back((now, m.count, m.errors));
                        out.extend(self.evaluate_error_rate(now));
                    }
                }
            }
            Kind::Error => out.extend(self.on_error(event, now)),
            _ => {}
        }
        out
    }

    fn error_rate_filter_matches(&self, event: &Event) -> bool {
        let mut filter = self.rules.error_rate.filter.clone();
        filter.min_level = None;
        filter.matches(event)
    }

    fn on_error(&mut self, event: &Event, now: Duration) -> Option<Alert> {
        let new_rule = self.rules.new_issue.enabled && self.rules.new_issue.filter.matches(event);
        let spike_rule = self.rules.spike.enabled && self.rules.spike.filter.matches(event);
        if !new_rule && !spike_rule {
            return None;
        }
        let fingerprint = event.fingerprint.clone()?;
        if !self.issues.contains_key(&fingerprint) && self.issues.len() >= MAX_TRACKED {
            self.evict(now, true);
        }
        let latest = issue_alert(event);
        let state = self
            .issues
            .entry(fingerprint.clone())
            .or_insert_with(|| IssueState {
                first_seen: event.timestamp,
                last_seen: event.timestamp,
                last_activity: now,
                recent: VecDeque::new(),
                suppressed_until: None,
                suppressed: 0,
                users: HashSet::new(),
                latest: latest.clone(),
            });
        state.last_seen = state.last_seen.max(event.timestamp);
        state.first_seen = state.first_seen.min(event.timestamp);
        state.last_activity = now;
        state.latest = latest;
        if let Some(user) = &event.user_id {
            if state.users.len() < MAX_USERS {
                state.users.insert(user.clone());
            }
        }
        if state.suppressed_until.is_some_and(|until| now < until) {
            state.suppressed += 1;
            self.suppressed_total += 1;
            return None;
        }
        let suppress_for = self.rules.suppress_for;
        let is_new = self.known.insert(&fingerprint);
        if is_new && new_rule {
            state.suppressed_until = Some(now + suppress_for);
            state.suppressed = 0;
            state.recent.clear();
            let mut a = state.to_alert(AlertKind::NewIssue, &fingerprint, 1);
            a.title = format!("New issue: {}", a.title);
            return Some(a);
        }
        if !spike_rule {
            return None;
        }
        let window = self.rules.spike.window;
        let threshold = self.rules.spike.threshold as usize;
        state.recent.push_back(now);
        while state
            .recent
            .front()
            .is_some_and(|t| now.saturating_sub(*t) >= window)
        {
            state.recent.pop_front();
        }
        if state.recent.len() > threshold {
            state.recent.pop_front();
        }
        if state.recent.len() < threshold {
            return None;
        }
        let n = state.recent.len() as u64;
        state.recent.clear();
        state.suppressed_until = Some(now + suppress_for);
        state.suppressed = 0;
        let mut a = state.to_alert(AlertKind::Spike, &fingerprint, n);
        a.title = format!("Spike: {}", a.title);
        a.description = format!("{n} events within {}.\n{}", humanize(window), a.description);
        Some(a)
    }

    /// The alerts due at `now`: follow-ups, the error rate's change, the pipeline's health.
    pub(crate) fn on_tick(&mut self, now: Duration, health: Option<HealthView<'_>>) -> Vec<Alert> {
        let mut out = Vec::new();
        let suppress_for = self.rules.suppress_for;
        let mut keys: Vec<&String> = self
            .issues
            .iter()
            .filter(|(_, s)| s.suppressed_until.is_some_and(|u| now >= u))
            .map(|(k, _)| k)
            .collect();
        keys.sort();
        let keys: Vec<String> = keys.into_iter().cloned().collect();
        for fingerprint in keys {
            let Some(state) = self.issues.get_mut(&fingerprint) else {
                continue;
            };
            if state.suppressed == 0 {
                state.suppressed_until = None;
                continue;
            }
            let n = state.suppressed;
            let mut a = state.to_alert(AlertKind::FollowUp, &fingerprint, n);
            a.title = format!("Still happening: {}", a.title);
            a.description = format!(
                "{n} more occurrence{} in the last {}.\n{}",
                if n == 1 { "" } else { "s" },
                humanize(suppress_for),
                a.description
            );
            state.suppressed = 0;
            state.suppressed_until = Some(now + suppress_for);
            out.push(a);
        }
        if self.rules.error_rate.enabled {
            out.extend(self.evaluate_error_rate(now));
        }
        if let Some((report, counts, own)) = health {
            if self.rules.health.enabled {
                out.extend(self.evaluate_health(now, report, counts, own));
            }
        }
        self.evict(now, false);
        out
    }

    fn evict(&mut self, now: Duration, make_room: bool) {
        let idle = |s: &IssueState| {
            s.suppressed_until.is_none() && now.saturating_sub(s.last_activity) >= IDLE
        };
        self.issues.retain(|_, s| !idle(s));
        if make_room && self.issues.len() >= MAX_TRACKED {
            // Still full of active issues: forget the least recently active unsuppressed one.
            if let Some(k) = self
                .issues
                .iter()
                .filter(|(_, s)| s.suppressed_until.is_none())
                .min_by_key(|(_, s)| s.last_activity)
                .map(|(k, _)| k.clone())
            {
                self.issues.remove(&k);
            }
        }
    }

    fn evaluate_error_rate(&mut self, now: Duration) -> Option<Alert> {
        let rule = &self.rules.error_rate;
        while self
            .requests
            .front()
            .is_some_and(|(t, _, _)| now.saturating_sub(*t) >= rule.window)
        {
            self.requests.pop_front();
        }
        let total: u64 = self.requests.iter().map(|r| r.1).sum();
        let failed: u64 = self.requests.iter().map(|r| r.2).sum();
        let percent = if total == 0 {
            0.0
        } else {
            failed as f64 * 100.0 / total as f64
        };
        let numbers = format!(
            "{failed} of {total} requests failed ({percent:.1} %) in the last {}; threshold {} % of at least {} requests.",
            humanize(rule.window),
            rule.threshold_percent,
            rule.min_requests
        );
        if !self.error_rate_firing && total >= rule.min_requests && percent > rule.threshold_percent
        {
            self.error_rate_firing = true;
            let a = Alert::new(
                AlertKind::ErrorRate,
                Level::Error,
                format!(
                    "Error rate {percent:.1} % (above {} %)",
                    rule.threshold_percent
                ),
            )
            .with_description(numbers)
            .with_count(failed);
            return Some(a);
        }
        if self.error_rate_firing && (total == 0 || percent <= rule.threshold_percent) {
            self.error_rate_firing = false;
            let a = Alert::new(
                AlertKind::ErrorRateResolved,
                Level::Info,
                format!("Resolved: error rate {percent:.1} %"),
            )
            .with_description(numbers)
            .with_count(failed);
            return Some(a);
        }
        None
    }

    fn evaluate_health(
        &mut self,
        now: Duration,
        report: &HealthReport,
        counts: &[(String, SinkCounts)],
        own: &str,
    ) -> Vec<Alert> {
        let mut out = Vec::new();
        let rule = self.rules.health.clone();
        for sink in &report.sinks {
            if sink.name == own {
                continue;
            }
            let watch = self.sinks.entry(sink.name.clone()).or_default();
            if sink.state == tracepost_core::Health::Down {
                let since = *watch.down_since.get_or_insert(now);
                if !watch.alerted_down && now.saturating_sub(since) > rule.sink_down_after {
                    watch.alerted_down = true;
                    let mut a = Alert::new(
                        AlertKind::SinkDown,
                        Level::Error,
                        format!("Sink {} is down", sink.name),
                    )
                    .with_description(format!(
                        "Down for more than {}; {} events queued, {} bytes spooled.\nLast error: {}",
                        humanize(rule.sink_down_after),
                        sink.queued_events,
                        sink.spool_bytes,
                        sink.last_error.as_deref().unwrap_or("none reported")
                    ));
                    a.route = None;
                    out.push(a);
                }
            } else {
                if watch.alerted_down {
                    out.push(
                        Alert::new(
                            AlertKind::SinkRecovered,
                            Level::Info,
                            format!("Sink {} is up again", sink.name),
                        )
                        .with_description(format!("State: {}.", sink.state.as_str())),
                    );
                }
                watch.down_since = None;
                watch.alerted_down = false;
            }
        }
        if !rule.dropped_events {
            return out;
        }
        for (name, c) in counts {
            if name == own {
                continue;
            }
            let watch = self.sinks.entry(name.clone()).or_default();
            let total = c.dropped_total();
            let delta = total.saturating_sub(watch.last_dropped);
            watch.last_dropped = total;
            watch.dropped_pending += delta;
            let suppressed = watch.dropped_suppressed_until.is_some_and(|u| now < u);
            if suppressed || watch.dropped_pending == 0 {
                if !suppressed {
                    watch.dropped_suppressed_until = None;
                }
                continue;
            }
            let n = std::mem::take(&mut watch.dropped_pending);
            watch.dropped_suppressed_until = Some(now + self.rules.suppress_for);
            let reasons: Vec<String> = c
                .dropped
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(r, n)| format!("{r}: {n}"))
                .collect();
            out.push(
                Alert::new(
                    AlertKind::EventsDropped,
                    Level::Warn,
                    format!(
                        "Sink {name} dropped {n} event{}",
                        if n == 1 { "" } else { "s" }
                    ),
                )
                .with_description(format!(
                    "All time by reason: {}. See tracepost_events_dropped_total.",
                    reasons.join(", ")
                ))
                .with_count(n),
            );
        }
        out
    }
}

impl IssueState {
    fn to_alert(&self, kind: AlertKind, fingerprint: &str, count: u64) -> Alert {
        let mut a = self.latest.clone();
        a.kind = kind;
        a.count = count;
        a.fingerprint = Some(fingerprint.to_owned());
        a.first_seen = Some(self.first_seen);
        a.last_seen = Some(self.last_seen);
        a.users_affected = (!self.users.is_empty()).then_some(self.users.len() as u64);
        a.timestamp = Timestamp::now();
        a
    }
}

fn resource_into(a: &mut Alert, event: &Event) {
    a.service = event.resource.service.clone();
    a.environment = event.resource.environment.clone();
    a.release = event.resource.release.clone();
}

/// The text of an issue alert from one (redacted) error event. Every piece of event text
/// (input: a browser or a log client may have sent it) is put on its line with its control
/// characters escaped, so a message cannot forge the alert's other lines (`\n`,
/// `\r`, ANSI sequences become visible escapes).
fn issue_alert(event: &Event) -> Alert {
    use tracepost_core::escape_control as esc;
    let title = match &event.error {
        Some(e) if !e.error_type.is_empty() => format!("{}: {}", e.error_type, e.message),
        Some(e) if !e.message.is_empty() => e.message.clone(),
        _ => event.message.clone(),
    };
    let mut description = String::new();
    if let Some(r) = &event.request {
        description.push_str(&format!(
            "`{} {}` → {}\n",
            esc(&r.method),
            esc(&r.route),
            r.status
        ));
    }
    if let Some(location) = event.error.as_ref().and_then(|e| e.location.as_deref()) {
        description.push_str(&format!("at {}\n", esc(location)));
    }
    let frames = event
        .error
        .as_ref()
        .and_then(|e| e.backtrace.as_deref())
        .map(top_frames)
        .unwrap_or_default();
    if !frames.is_empty() {
        description.push_str("```\n");
        let frames: Vec<_> = frames.iter().map(|f| esc(f)).collect();
        description.push_str(&frames.join("\n"));
        description.push_str("\n```\n");
    }
    if title != event.message && !event.message.is_empty() {
        description.push_str(&esc(&event.message));
    }
    let title = esc(&title).into_owned();
    let mut a = Alert::new(AlertKind::NewIssue, event.level, title).with_description(description);
    resource_into(&mut a, event);
    a.route = event.request.as_ref().map(|r| r.route.clone());
    a
}

/// The first application frames of a backtrace: the runtime's, the standard library's and
/// the frameworks' are skipped.
fn top_frames(backtrace: &str) -> Vec<String> {
    const SKIP: [&str; 14] = [
        "std::",
        "core::",
        "alloc::",
        "tokio::",
        "tower::",
        "hyper::",
        "axum::",
        "actix_",
        "futures_",
        "tracepost",
        "rust_begin_unwind",
        "__rust",
        "<unknown>",
        "backtrace::",
    ];
    backtrace
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("at "))
        .filter(|l| !SKIP.iter().any(|s| l.contains(s)))
        .take(TOP_FRAMES)
        .map(str::to_owned)
        .collect()
}

pub(crate) fn humanize(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RuleFilter;

    fn error(fp: &str, env: &str) -> Event {
        let mut e = Event::new(Kind::Error, Level::Error, format!("boom {fp}"));
        e.fingerprint = Some(fp.into());
        e.resource.environment = Some(env.into());
        e
    }

    fn state() -> RuleState {
        let mut known = KnownIssues::in_memory();
        known.extend(["known".to_owned()]);
        RuleState::new(AlertRules::default(), known)
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn event_text_cannot_forge_lines_of_an_issue_alert() {
        let mut e = Event::new(
            Kind::Error,
            Level::Error,
            "x\n`GET /admin` → 200\n\x1b[2Jforged",
        );
        e.error = Some(tracepost_core::ErrorDetail {
            error_type: "TypeError".into(),
            message: "boom\nforged title line".into(),
            backtrace: None,
            location: Some("app.js:1:2\nat forged.js:9:9".into()),
        });
        let a = issue_alert(&e);
        assert!(!a.title.contains('\n'), "{:?}", a.title);
        assert_eq!(a.title, r"TypeError: boom\nforged title line");
        // Two lines: the location, then the message; none of the input's line breaks.
        assert_eq!(a.description.lines().count(), 2, "{:?}", a.description);
        assert!(!a.description.contains('\x1b'));
        assert!(a
            .description
            .ends_with(r"x\n`GET /admin` → 200\n\x1b[2Jforged"));
    }

    #[test]
    fn a_known_issue_spikes_at_five_within_sixty_seconds_once() {
        let mut r = state();
        for i in 0..4 {
            assert!(r.on_event(&error("known", "prod"), S * i * 10).is_empty());
        }
        let a = r.on_event(&error("known", "prod"), S * 50);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].kind, AlertKind::Spike);
        assert_eq!(a[0].count, 5);
        for i in 0..100 {
            assert!(r
                .on_event(&error("known", "prod"), S * 51 + S * i)
                .is_empty());
        }
        let follow = r.on_tick(S * 50 + Duration::from_secs(900), None);
        assert_eq!(follow.len(), 1);
        assert_eq!(
            (follow[0].kind, follow[0].count),
            (AlertKind::FollowUp, 100)
        );
    }

    #[test]
    fn occurrences_spread_wider_than_the_window_never_spike() {
        let mut r = state();
        for i in 0..50 {
            assert!(r.on_event(&error("known", "prod"), S * 16 * i).is_empty());
        }
    }

    #[test]
    fn filters_pick_environments_and_routes() {
        let mut rules = AlertRules::default();
        rules.new_issue.filter = RuleFilter::default().environments(["production"]);
        rules.spike.enabled = false;
        let mut r = RuleState::new(rules, KnownIssues::in_memory());
        assert!(r.on_event(&error("a", "staging"), S).is_empty());
        assert_eq!(r.on_event(&error("b", "production"), S).len(), 1);
        let routes = RuleFilter::default().routes(["/api/*", "/checkout"]);
        let mut e = error("c", "production");
        e.request = Some(tracepost_core::RequestSnapshot {
            route: "/api/orders/{id}".into(),
            ..Default::default()
        });
        assert!(routes.matches(&e));
        e.request.as_mut().unwrap().route = "/health".into();
        assert!(!routes.matches(&e));
    }

    #[test]
    fn top_frames_skip_the_runtime() {
        let bt = "0: std::panicking::begin_panic\n1: shop::orders::place\n   at src/orders.rs:42\n2: tokio::runtime::poll\n3: shop::main";
        assert_eq!(top_frames(bt), ["1: shop::orders::place", "3: shop::main"]);
    }
}
