//! The page shell (navigation, styles, script) and small HTML helpers. Every page is built
//! with `maud`, which escapes every interpolated value: captured text is always text.

use maud::{html, Markup, DOCTYPE};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};

use crate::BASE;

/// The console's stylesheet (served at `BASE/static/console.css`).
pub const CSS: &str = include_str!("console.css");
/// The console's script (served at `BASE/static/console.js`): infinite scroll, JSON
/// toggles, copy buttons and the live tail. Plain JS, no dependencies.
pub const JS: &str = include_str!("console.js");
/// The replay viewer's script (served at `BASE/static/replay.js`): loads the segments in
/// order into rrweb-player, seeks from the side panel and the timeline.
pub const REPLAY_JS: &str = include_str!("replay.js");

/// The pages in the navigation bar: (path under [`BASE`], label).
const NAV: [(&str, &str); 8] = [
    ("/issues", "Issues"),
    ("/events", "Events"),
    ("/live", "Live tail"),
    ("/traces", "Traces"),
    ("/routes", "Routes"),
    ("/sessions", "Sessions"),
    ("/analytics", "Analytics"),
    ("/health", "Health"),
];

/// Percent-encodes a URL path segment or query value.
pub fn url_component(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// The page shell: `active` is the navigation entry to highlight; `csrf` is the token for
/// forms (also in a `<meta>` for the script), or `None` on the login page.
pub fn page(title: &str, active: &str, csrf: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(t) = csrf { meta name="csrf-token" content=(t); }
                title { (title) " · tracepost" }
                link rel="icon" href="data:,";
                link rel="stylesheet" href={ (BASE) "/static/console.css" };
                script src={ (BASE) "/static/console.js" } defer {}
            }
            body {
                header.top {
                    a.brand href={ (BASE) "/issues" } { "tracepost" }
                    @if csrf.is_some() {
                        nav {
                            @for (path, label) in NAV {
                                a class=[(active == path).then_some("on")] href={ (BASE) (path) } { (label) }
                            }
                        }
                        form.logout method="post" action={ (BASE) "/logout" } {
                            @if let Some(t) = csrf { input type="hidden" name="csrf" value=(t); }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A level badge.
pub fn level(l: tracepost_core::Level) -> Markup {
    html! { span class={ "lvl lvl-" (l.as_str()) } { (l.as_str()) } }
}

/// A value that may hold redactions: each `[REDACTED]` shown as a badge, the rest as text.
pub fn redacted_text(s: &str) -> Markup {
    let marker = tracepost_core::redact::REDACTED;
    let parts: Vec<&str> = s.split(marker).collect();
    html! {
        @for (i, part) in parts.iter().enumerate() {
            @if i > 0 { span.redacted title="removed by redaction before storage" { "redacted" } }
            (part)
        }
    }
}

/// An inline SVG sparkline of `counts` (oldest first), `w`×`h` pixels.
pub fn sparkline(counts: &[u64], w: u32, h: u32) -> Markup {
    let max = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let n = counts.len().max(1) as f64;
    let bw = f64::from(w) / n;
    html! {
        svg.spark width=(w) height=(h) viewBox={ "0 0 " (w) " " (h) } role="img"
            aria-label={ (counts.iter().sum::<u64>()) " events" } {
            line.base x1="0" y1=(h) x2=(w) y2=(h) {}
            @for (i, c) in counts.iter().enumerate() {
                @let bh = if *c == 0 { 0.0 } else { (*c as f64 / max * f64::from(h - 1)).max(1.0) };
                rect x=(format!("{:.1}", i as f64 * bw)) y=(format!("{:.1}", f64::from(h) - bh))
                    width=(format!("{:.1}", (bw - 1.0).max(1.0))) height=(format!("{:.1}", bh)) {}
            }
        }
    }
}

/// Pretty-printed JSON inside a collapsed `<details>`.
pub fn json_details(summary: &str, value: &serde_json::Value) -> Markup {
    html! {
        details.json {
            summary { (summary) }
            pre { (serde_json::to_string_pretty(value).unwrap_or_default()) }
        }
    }
}

/// A body for display: JSON pretty-printed when it parses, else as captured; redactions
/// marked.
pub fn body_text(text: &str) -> Markup {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) if v.is_object() || v.is_array() => {
            let pretty = serde_json::to_string_pretty(&v).unwrap_or_default();
            html! { pre.body { (redacted_text(&pretty)) } }
        }
        _ => html! { pre.body { (redacted_text(text)) } },
    }
}

/// An empty-state or note paragraph.
pub fn note(text: &str) -> Markup {
    html! { p.note { (text) } }
}
