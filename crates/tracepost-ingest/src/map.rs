//! Browser events → tracepost [`Event`]s.
//!
//! | browser `type` | `kind`      | `message`              | body and attributes |
//! |----------------|-------------|------------------------|---------------------|
//! | `error`        | `error`     | `TypeError: msg`       | `error` (type, message, backtrace of parsed frames, location), `exception.frames`, `exception.mechanism`, `exception.handled` |
//! | `pageview`     | `analytics` | `pageview /path`       | `analytics.event = "pageview"`, `url.full`, `page.title`, `page.referrer`, `navigation.type` |
//! | `track`        | `analytics` | `track signup`         | `analytics.event = "track"`, `event.name`, `analytics.props` |
//! | `identify`     | `analytics` | `identify`             | `analytics.event = "identify"`, `user_id`, `user.traits` |
//! | `vital`        | `metric`    | `LCP 1234.5 ms`        | `metric.name`, `metric.value`, `metric.unit`, `metric.rating` |
//!
//! Every event also gets `session_id` (and `user_id` when known) on the envelope, and the
//! batch context as attributes: `visitor.id` (`visitor.cookieless = true` when the server
//! derived it), `user_agent.original`, `user_agent.name`, `user_agent.version`, `os.name`,
//! `os.version`, `device.type`, `geo.country.iso_code`, `browser.language`,
//! `browser.screen`, `utm.*`, `ingest.batch_id`. Timestamps are corrected for the browser's
//! clock skew (`sent_at` against the server's clock), then believed only within
//! [`crate::time`]'s window around the receive time: outside it the event gets the receive
//! time and keeps the browser's `ts` in `client.timestamp`.

use serde_json::{Map, Value};
use tracepost_core::pipeline::stages::ANALYTICS_EVENT;
use tracepost_core::{ErrorDetail, Event, Kind, Level, Timestamp};

use crate::schema::{Batch, BrowserEvent, ErrorEvent};
use crate::sourcemaps::{BatchMaps, SourceMaps};
use crate::stack::{parse_stack, to_backtrace, Frame};
use crate::ua::UserAgent;

/// What the server knows about the sender, beyond the batch.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The parsed `User-Agent`.
    pub user_agent: Option<std::sync::Arc<UserAgent>>,
    /// The country from a trusted CDN header.
    pub country: Option<String>,
    /// The visitor id derived by the server when the batch has none (cookieless mode).
    pub derived_visitor: Option<String>,
    /// The server's clock when the batch arrived, ms since the epoch.
    pub received_ms: f64,
}

/// Turns a validated batch into events (not yet through the pipeline).
pub fn to_events(batch: &Batch, ctx: &Context, maps: Option<&SourceMaps>) -> Vec<Event> {
    // One budget of source-map loads for the whole batch.
    let maps = maps.map(SourceMaps::batch);
    let maps = maps.as_ref();
    let mut common = Map::new();
    match (&batch.visitor_id, &ctx.derived_visitor) {
        (Some(v), _) => {
            common.insert("visitor.id".into(), v.clone().into());
        }
        (None, Some(v)) => {
            common.insert("visitor.id".into(), v.clone().into());
            common.insert("visitor.cookieless".into(), true.into());
        }
        (None, None) => {}
    }
    if let Some(ua) = &ctx.user_agent {
        ua.write_attributes(&mut common);
    }
    if let Some(c) = &ctx.country {
        common.insert("geo.country.iso_code".into(), c.clone().into());
    }
    if let Some(l) = &batch.language {
        common.insert("browser.language".into(), l.clone().into());
    }
    if let Some(s) = &batch.screen {
        common.insert("browser.screen".into(), s.clone().into());
    }
    for (k, v) in &batch.utm {
        common.insert(format!("utm.{k}"), v.clone().into());
    }
    common.insert("ingest.batch_id".into(), batch.batch_id.clone().into());

    // The browser's clock may be off: shift its times by the difference at sending.
    let skew = ctx.received_ms - batch.sent_at;
    let mut user_id = batch.user_id.clone();
    let mut out = Vec::with_capacity(batch.events.len());
    for e in &batch.events {
        let mut event = match e {
            BrowserEvent::Error(err) => error_event(err, maps),
            BrowserEvent::PageView(p) => {
                let url = p.page.url.as_ref().or(batch.page.url.as_ref());
                let mut ev = Event::new(
                    Kind::Analytics,
                    Level::Info,
                    format!("pageview {}", url.map_or("", |u| url_path(u))),
                );
                ev.attributes
                    .insert(ANALYTICS_EVENT.into(), "pageview".into());
                insert_opt(&mut ev.attributes, "url.full", url);
                insert_opt(&mut ev.attributes, "page.title", p.page.title.as_ref());
                insert_opt(
                    &mut ev.attributes,
                    "page.referrer",
                    p.page.referrer.as_ref().or(batch.page.referrer.as_ref()),
                );
                insert_opt(&mut ev.attributes, "navigation.type", p.nav.as_ref());
                ev
            }
            BrowserEvent::Track(t) => {
                let mut ev = Event::new(Kind::Analytics, Level::Info, format!("track {}", t.name));
                ev.attributes.insert(ANALYTICS_EVENT.into(), "track".into());
                ev.attributes
                    .insert("event.name".into(), t.name.clone().into());
                insert_opt(
                    &mut ev.attributes,
                    "url.full",
                    t.url.as_ref().or(batch.page.url.as_ref()),
                );
                if let Some(p) = &t.props {
                    ev.attributes
                        .insert("analytics.props".into(), Value::Object(p.clone()));
                }
                ev
            }
            BrowserEvent::Identify(i) => {
                user_id = Some(i.user_id.clone());
                let mut ev = Event::new(Kind::Analytics, Level::Info, "identify");
                ev.attributes
                    .insert(ANALYTICS_EVENT.into(), "identify".into());
                if let Some(t) = &i.traits {
                    ev.attributes
                        .insert("user.traits".into(), Value::Object(t.clone()));
                }
                ev
            }
            BrowserEvent::Vital(v) => {
                let unit = if v.name == "CLS" { "1" } else { "ms" };
                let shown = if v.name == "CLS" {
                    String::new()
                } else {
                    " ms".into()
                };
                let mut ev = Event::new(
                    Kind::Metric,
                    Level::Info,
                    format!("{} {}{shown}", v.name, v.value),
                );
                ev.attributes
                    .insert("metric.name".into(), v.name.clone().into());
                ev.attributes.insert("metric.value".into(), v.value.into());
                ev.attributes.insert("metric.unit".into(), unit.into());
                insert_opt(&mut ev.attributes, "metric.rating", v.rating.as_ref());
                insert_opt(
                    &mut ev.attributes,
                    "url.full",
                    v.url.as_ref().or(batch.page.url.as_ref()),
                );
                ev
            }
        };
        // Then believed within a window around the receive time (a `ts` of 0, or far
        // ahead, gets the receive time and is kept in `client.timestamp`).
        let ms = (e.ts() + skew).clamp(0.0, u64::MAX as f64 / 1e6);
        let received = Timestamp::from_unix_nanos((ctx.received_ms.max(0.0) * 1e6) as u64);
        let ts = crate::time::settle(
            (ms * 1e6) as u64,
            received,
            serde_json::Number::from_f64(e.ts()).map_or(Value::Null, Value::Number),
            &mut event.attributes,
        );
        event = event.with_timestamp(ts);
        event.session_id = Some(batch.session_id.clone());
        event.user_id = user_id.clone();
        for (k, v) in &common {
            event
                .attributes
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
        out.push(event);
    }
    out
}

fn insert_opt(map: &mut Map<String, Value>, key: &str, value: Option<&String>) {
    if let Some(v) = value {
        map.insert(key.into(), v.clone().into());
    }
}

/// The path of a URL (for messages): `https://h/a/b?q` → `/a/b`.
fn url_path(url: &str) -> &str {
    let no_query = url.split(['?', '#']).next().unwrap_or(url);
    match no_query.find("://") {
        Some(i) => {
            let after = &no_query[i + 3..];
            after.find('/').map_or("/", |j| &after[j..])
        }
        None => no_query,
    }
}

/// A script URL as kept in frames: no user info, query or fragment (cache busters at best,
/// tokens at worst).
fn clean_script_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    match url.find("://") {
        Some(i) => {
            let after = &url[i + 3..];
            let host_end = after.find('/').unwrap_or(after.len());
            match after[..host_end].rfind('@') {
                Some(at) => format!("{}{}", &url[..i + 3], &after[at + 1..]),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

fn error_event(err: &ErrorEvent, maps: Option<&BatchMaps<'_>>) -> Event {
    let name = err.name.clone().unwrap_or_else(|| "Error".into());
    let mut frames = err.stack.as_deref().map(parse_stack).unwrap_or_default();
    if frames.is_empty() {
        // `onerror` without an error object: the position it reported.
        if let Some(source) = &err.source {
            frames.push(Frame {
                file: Some(source.clone()),
                line: err.line,
                col: err.col,
                in_app: true,
                ..Frame::default()
            });
        }
    }
    for f in &mut frames {
        if let Some(file) = &f.file {
            f.file = Some(clean_script_url(file));
        }
    }
    if let Some(maps) = maps {
        maps.resolve(&mut frames);
    }
    let location = frames.iter().find(|f| f.in_app).and_then(|f| {
        let file = f.file.as_ref()?;
        Some(match (f.line, f.col) {
            (Some(l), Some(c)) => format!("{file}:{l}:{c}"),
            (Some(l), None) => format!("{file}:{l}"),
            _ => file.clone(),
        })
    });
    let message = if err.message.is_empty() {
        name.clone()
    } else {
        format!("{name}: {}", err.message)
    };
    let mut event = Event::new(Kind::Error, Level::Error, message).with_error(ErrorDetail {
        error_type: name,
        message: err.message.clone(),
        backtrace: (!frames.is_empty()).then(|| to_backtrace(&frames)),
        location,
    });
    let a = &mut event.attributes;
    insert_opt(a, "url.full", err.url.as_ref());
    insert_opt(a, "exception.mechanism", err.mechanism.as_ref());
    a.insert("exception.handled".into(), err.handled.into());
    if !frames.is_empty() {
        a.insert(
            "exception.frames".into(),
            serde_json::to_value(&frames).unwrap_or(Value::Null),
        );
    }
    if let Some(extra) = &err.extra {
        a.insert("exception.extra".into(), Value::Object(extra.clone()));
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_urls_lose_credentials_and_queries() {
        assert_eq!(
            clean_script_url("https://u:p@h.example/a.js?token=x#y"),
            "https://h.example/a.js"
        );
        assert_eq!(clean_script_url("https://h/a.js"), "https://h/a.js");
        assert_eq!(url_path("https://h/a/b?q=1"), "/a/b");
        assert_eq!(url_path("https://h"), "/");
    }
}
