//! The Analytics page: page views and unique visitors over time, top pages, referrers and a
//! funnel, from the store's analytics queries
//! ([`tracepost_core::store::analytics`]), drawn as server-rendered SVG.
//!
//! Query parameters: `range` = `24h` (default, hourly buckets), `7d` (6-hour buckets) or
//! `30d` (daily buckets); `funnel` = comma-separated steps, paths (`/pricing`) or `track`
//! event names (`signup`), at most
//! [`MAX_FUNNEL_STEPS`](tracepost_core::store::analytics::MAX_FUNNEL_STEPS). A bad `range`
//! is a 400 page; a bad `funnel` is a 400 with the rest of the page and the reason in the
//! funnel panel.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;
use tracepost_core::store::analytics::{
    AnalyticsBucket, AnalyticsQuery, FunnelQuery, FunnelStep, TopRow, MAX_FUNNEL_STEPS,
};
use tracepost_core::store::{bucket_start, micros_to_ts, ts_to_micros, StoreError};
use tracepost_core::Timestamp;

use crate::auth::Session;
use crate::filter::BadField;
use crate::html::{self as h, page};
use crate::pages::{fmt_time, PageResult};
use crate::{ConsoleState, BASE};

/// The ranges offered: (parameter, label, length, bucket width).
const RANGES: [(&str, &str, u64, u64); 3] = [
    ("24h", "24 hours", 86_400, 3_600),
    ("7d", "7 days", 7 * 86_400, 6 * 3_600),
    ("30d", "30 days", 30 * 86_400, 86_400),
];

/// Top pages and referrers shown.
const TOP: usize = 25;

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct AnalyticsParams {
    /// `24h`, `7d` or `30d`.
    range: String,
    /// Funnel steps, comma-separated.
    funnel: Option<String>,
}

pub(crate) async fn analytics(
    State(state): State<Arc<ConsoleState>>,
    Extension(session): Extension<Session>,
    Query(q): Query<AnalyticsParams>,
) -> PageResult {
    let range = if q.range.trim().is_empty() {
        "24h"
    } else {
        q.range.trim()
    };
    let Some(&(range, range_label, secs, bucket)) = RANGES.iter().find(|r| r.0 == range) else {
        return Err(BadField {
            field: "range",
            message: format!("{range:?} is not one of 24h, 7d, 30d"),
        }
        .into());
    };
    // Whole buckets, the current one last: the last 24 hours are 24 hourly bars.
    let w = (bucket * 1_000_000) as i64;
    let until_us = bucket_start(ts_to_micros(Timestamp::from(SystemTime::now())), w) + w;
    let (since, until) = (
        micros_to_ts(until_us - (secs * 1_000_000) as i64),
        micros_to_ts(until_us),
    );
    let funnel_text = q.funnel.as_deref().unwrap_or("").trim().to_owned();
    let steps = q.funnel.as_deref().map(|text| {
        FunnelStep::parse_list(text).map_err(|e| match e {
            StoreError::InvalidQuery(m) => m,
            other => other.to_string(),
        })
    });
    let funnel_query = match &steps {
        Some(Ok(steps)) => Some(FunnelQuery::new(since, until, steps.clone())),
        _ => None,
    };
    let summary_query = AnalyticsQuery::new(since, until)
        .bucket(Duration::from_secs(bucket))
        .limit(TOP);
    // The summary and the funnel side by side.
    let (summary, counts) =
        futures_util::future::join(state.store.analytics(&summary_query), async {
            match &funnel_query {
                Some(fq) => Some(state.store.funnel(fq).await),
                None => None,
            }
        })
        .await;
    let summary = summary?;
    let funnel = match (steps, counts) {
        (None, _) => None,
        (Some(Err(why)), _) => Some(Err(why)),
        (Some(Ok(steps)), Some(Ok(counts))) => Some(Ok((steps, counts))),
        (Some(Ok(_)), Some(Err(StoreError::InvalidQuery(m)))) => Some(Err(m)),
        (Some(Ok(_)), Some(Err(e))) => return Err(e.into()),
        (Some(Ok(_)), None) => None,
    };
    let status = match funnel {
        Some(Err(_)) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    let s = &summary;
    let per_visitor = if s.visitors == 0 {
        0.0
    } else {
        s.pageviews as f64 / s.visitors as f64
    };
    let body = html! {
        h1 { "Analytics" }
        div.actions.range-tabs {
            @for (r, label, _, _) in RANGES {
                a.badge.on[r == range]
                    href={ (BASE) "/analytics?range=" (r) @if !funnel_text.is_empty() { "&funnel=" (h::url_component(&funnel_text)) } } { (label) }
            }
            span.dim { "last " (range_label) " in whole " (if bucket >= 86_400 { "days" } else { "hours" }) ": " (minute(since)) " to " (minute(until)) " UTC" }
        }
        div.tiles {
            div.tile { span.dim { "Page views" } b #pageviews { (s.pageviews) } }
            div.tile { span.dim { "Unique visitors" } b #visitors { (s.visitors) } }
            div.tile { span.dim { "Views per visitor" } b { (format!("{per_visitor:.1}")) } }
            div.tile { span.dim { "Track events" } b #tracks { (s.tracks) } }
        }
        div.panel {
            (series_chart(&s.series, bucket))
            p.note { "Bars: page views per " (if bucket >= 86_400 { "day".to_owned() } else { format!("{} h", bucket / 3600) })
                "; line: unique visitors in each bucket. Visitors are the browser's visitor.id (cookieless ids change daily), else the session." }
        }
        @if s.pageviews == 0 && s.tracks == 0 {
            (h::note("No page views in this range. Browser capture (tracepost.js) sends them: see the book's browser chapter."))
        }
        div.grid2 {
            div {
                h2 { "Top pages" }
                (top_table(&s.top_pages, "Page", s.pageviews, "top-pages"))
                p.note { "By path: query strings and fragments are cut off (they may carry secrets)." }
            }
            div {
                h2 { "Referrers" }
                (top_table(&s.referrers, "Referrer host", s.pageviews, "referrers"))
                p.note #referral-classes {
                    "Direct (no referrer): " b { (s.direct_views) } " · internal (from the same host, not listed): " b { (s.internal_views) } " page views."
                }
            }
        }
        h2 { "Funnel" }
        div.panel #funnel {
            form.filters method="get" action={ (BASE) "/analytics" } {
                input type="hidden" name="range" value=(range);
                label { "Steps (paths like /pricing or track event names, comma-separated, up to " (MAX_FUNNEL_STEPS) ")"
                    input name="funnel" value=(funnel_text) size="60" placeholder="/,/pricing,/signup"; }
                button.primary type="submit" { "Count" }
            }
            @match &funnel {
                None => { (h::note("Give steps to count the visitors who reached each one in order, within the range.")) }
                Some(Err(why)) => { div.error-box role="alert" { b { "Funnel refused: " } (why) } }
                Some(Ok((steps, counts))) => { (funnel_table(steps, counts)) }
            }
        }
    };
    Ok((
        status,
        page("Analytics", "/analytics", Some(&session.csrf), body),
    )
        .into_response())
}

/// `2026-11-29 18:00`
fn minute(t: Timestamp) -> String {
    fmt_time(t).chars().take(16).collect()
}

/// Page views as bars, visitors as a line, per bucket.
fn series_chart(series: &[AnalyticsBucket], bucket_secs: u64) -> Markup {
    let (w, hgt, top, bottom) = (900.0_f64, 130.0_f64, 14.0_f64, 16.0_f64);
    let n = series.len().max(1) as f64;
    let bw = w / n;
    let max = series.iter().map(|b| b.pageviews).max().unwrap_or(0).max(1) as f64;
    let y = |v: u64| hgt - bottom - v as f64 / max * (hgt - top - bottom);
    let line: Vec<String> = series
        .iter()
        .enumerate()
        .map(|(i, b)| format!("{:.1},{:.1}", (i as f64 + 0.5) * bw, y(b.visitors)))
        .collect();
    let label = |t: Timestamp| {
        let s = fmt_time(t);
        if bucket_secs >= 86_400 {
            s.chars().take(10).collect::<String>()
        } else {
            s.chars().take(16).collect::<String>()
        }
    };
    html! {
        svg.chart.analytics width="100%" viewBox={ "0 0 " (w) " " (hgt) } role="img" aria-label="page views and visitors over time" {
            line.grid x1="0" y1=(hgt - bottom) x2=(w) y2=(hgt - bottom) {}
            text x="4" y="11" { "max " (max as u64) " views" }
            @for (i, b) in series.iter().enumerate() {
                @let top_y = y(b.pageviews);
                rect.bar x=(format!("{:.1}", i as f64 * bw + 1.0)) y=(format!("{top_y:.1}"))
                    width=(format!("{:.1}", (bw - 2.0).max(1.0))) height=(format!("{:.1}", hgt - bottom - top_y)) {
                    title { (label(b.start)) " · " (b.pageviews) " views · " (b.visitors) " visitors" }
                }
            }
            @if series.len() > 1 {
                polyline.line-visitors fill="none" stroke-width="1.5" points=(line.join(" ")) { title { "unique visitors" } }
            }
            @if let (Some(first), Some(last)) = (series.first(), series.last()) {
                text x="4" y=(hgt - 3.0) { (label(first.start)) }
                text x=(w - 4.0) y=(hgt - 3.0) text-anchor="end" { (label(last.start)) }
            }
        }
    }
}

/// A top-N table with a bar of each row's share of all page views.
fn top_table(rows: &[TopRow], what: &str, total: u64, id: &str) -> Markup {
    html! {
        @if rows.is_empty() { (h::note("None in this range.")) } @else {
            table.top id=(id) {
                thead { tr { th { (what) } th.num { "Views" } th.num { "Visitors" } th.share { "Share" } } }
                tbody { @for r in rows {
                    @let pct = if total == 0 { 0.0 } else { r.views as f64 * 100.0 / total as f64 };
                    tr {
                        td.mono.msg { (r.key) }
                        td.num { (r.views) }
                        td.num { (r.visitors) }
                        td.share { (share_bar(pct)) " " span.dim { (format!("{pct:.1} %")) } }
                    }
                } }
            }
        }
    }
}

/// A bar of `pct` % (SVG attributes: the console's CSP allows no inline styles).
fn share_bar(pct: f64) -> Markup {
    let w = 120.0_f64;
    html! {
        svg.share width=(w) height="8" viewBox={ "0 0 " (w) " 8" } role="img" aria-label={ (format!("{pct:.1}")) " %" } {
            rect.track x="0" y="0" width=(w) height="8" {}
            rect.fill x="0" y="0" width=(format!("{:.1}", pct.clamp(0.0, 100.0) / 100.0 * w)) height="8" {}
        }
    }
}

fn funnel_table(steps: &[FunnelStep], counts: &[u64]) -> Markup {
    let first = counts.first().copied().unwrap_or(0);
    html! {
        table.funnel {
            thead { tr { th.num { "#" } th { "Step" } th.num { "Visitors" } th.num { "From previous" } th.num { "From first" } th.share { "" } } }
            tbody { @for (i, (step, n)) in steps.iter().zip(counts).enumerate() {
                @let prev = if i == 0 { *n } else { counts[i - 1] };
                @let pct = |a: u64, b: u64| if b == 0 { "—".to_owned() } else { format!("{:.1} %", a as f64 * 100.0 / b as f64) };
                @let share = if first == 0 { 0.0 } else { *n as f64 * 100.0 / first as f64 };
                tr {
                    td.num { (i + 1) }
                    td { span.badge { (if step.is_page() { "page" } else { "event" }) } " " span.mono { (step.value()) } }
                    td.num.funnel-count { (n) }
                    td.num { @if i == 0 { span.dim { "—" } } @else { (pct(*n, prev)) } }
                    td.num { (pct(*n, first)) }
                    td.share { (share_bar(share)) }
                }
            } }
        }
        p.note { "Step 1 counts visitors with a matching event in the range; each next step, visitors with a matching event at or after their first time at the step before." }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn funnel_percentages_and_empty_steps() {
        let steps = FunnelStep::parse_list("/,/pricing,signup").unwrap();
        let out = funnel_table(&steps, &[200, 50, 0]).into_string();
        assert!(out.contains("25.0 %"), "{out}");
        assert!(out.contains("0.0 %"), "{out}");
        let none = funnel_table(&steps, &[0, 0, 0]).into_string();
        assert!(none.contains('—'));
    }
}
