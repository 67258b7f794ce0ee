//! `GET /analytics` and `GET /analytics/funnel`: the store's web analytics
//! ([`tracepost_core::store::analytics`]) as JSON.

use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::Json;
use serde::Serialize;
use tracepost_core::store::analytics::{
    AnalyticsBucket, AnalyticsQuery, FunnelQuery, FunnelStep, TopRow, MAX_TOP_ROWS,
};
use tracepost_core::store::StoreError;
use tracepost_core::Timestamp;
use utoipa::{IntoParams, ToSchema};

use crate::{ApiError, ErrorBody, Params, St, MAX_BUCKET_SECS};

/// The range both routes read: `since` (default `until` − 24 h) and `until` (default now).
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // read by hand (see `Params`); the struct documents them
pub struct RangeQuery {
    /// At or after this time (RFC 3339, any UTC offset); default 24 hours before `until`.
    #[param(format = DateTime)]
    since: Option<String>,
    /// Before this time (RFC 3339, any UTC offset); default now.
    #[param(format = DateTime)]
    until: Option<String>,
}

/// `GET /analytics`'s other parameters.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AnalyticsParams {
    /// The series' bucket width in seconds (default 3600, at least 60); at most 100 000
    /// buckets in the range.
    #[param(minimum = 60, maximum = 3153600000.0)]
    bucket_secs: Option<f64>,
    /// Top pages and referrers to return (default 20).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// `GET /analytics/funnel`'s steps.
#[derive(Debug, Default, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct FunnelParams {
    /// Comma-separated steps, 1 to 10: paths (`/pricing`) or `track` event names (`signup`).
    #[param(example = "/,/pricing,signup")]
    steps: String,
}

fn range(p: &Params) -> Result<(Timestamp, Timestamp), ApiError> {
    let until = p.time("until")?.unwrap_or_else(Timestamp::now);
    let since = match p.time("since")? {
        Some(t) => t,
        None => {
            Timestamp::from_unix_nanos(until.unix_nanos().saturating_sub(86_400 * 1_000_000_000))
        }
    };
    if since >= until {
        return Err(ApiError::bad("until", "must be after since"));
    }
    Ok((since, until))
}

/// One bucket of the page-view series.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnalyticsBucketBody {
    /// The bucket's start (RFC 3339, UTC).
    #[schema(value_type = String, format = DateTime)]
    pub start: Timestamp,
    /// Page views in the bucket.
    pub pageviews: u64,
    /// Distinct visitors with a page view in the bucket.
    pub visitors: u64,
}

/// Views of one page or from one referrer host.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopRowBody {
    /// The page's path (query string cut off) or the referrer's host.
    pub key: String,
    /// Page views.
    pub views: u64,
    /// Distinct visitors among them.
    pub visitors: u64,
}

/// Page views, visitors, the series, top pages and referrers of a range.
#[derive(Debug, Serialize, ToSchema)]
pub struct AnalyticsBody {
    /// Page views.
    pub pageviews: u64,
    /// Distinct visitors with a page view (`visitor.id`, else the session).
    pub visitors: u64,
    /// `track` events.
    pub tracks: u64,
    /// Page views whose referrer is on the page's own host (left out of `referrers`).
    pub internal_views: u64,
    /// Page views without a referrer host.
    pub direct_views: u64,
    /// One bucket per `bucket_secs`, zeros included, oldest first.
    pub series: Vec<AnalyticsBucketBody>,
    /// Pages by views.
    pub top_pages: Vec<TopRowBody>,
    /// External referrer hosts by views.
    pub referrers: Vec<TopRowBody>,
}

fn rows(r: &[TopRow]) -> Vec<TopRowBody> {
    r.iter()
        .map(|r| TopRowBody {
            key: r.key.clone(),
            views: r.views,
            visitors: r.visitors,
        })
        .collect()
}

fn bucket(b: &AnalyticsBucket) -> AnalyticsBucketBody {
    AnalyticsBucketBody {
        start: b.start,
        pageviews: b.pageviews,
        visitors: b.visitors,
    }
}

/// Page views, unique visitors, the page-view series, top pages and referrers (from the
/// `analytics` events the browser capture stores).
#[utoipa::path(get, path = "/tracepost/api/analytics", tag = "analytics",
    params(RangeQuery, AnalyticsParams),
    responses(
        (status = 200, description = "The summary", body = AnalyticsBody),
        (status = 400, description = "An unknown parameter, a value that can't be read, an empty range or more than 100 000 buckets", body = ErrorBody),
        (status = 401, description = "No or a wrong admin token", body = ErrorBody),
        (status = 503, description = "The store can't answer now", body = ErrorBody),
    ),
    security(("admin_token" = [])))]
pub(crate) async fn analytics_summary(
    State(s): St,
    RawQuery(q): RawQuery,
) -> Result<Json<AnalyticsBody>, ApiError> {
    let p = Params::read(q, &[&["since", "until", "bucket_secs", "limit"]])?;
    let (since, until) = range(&p)?;
    let secs = p.number(
        "bucket_secs",
        3600.0,
        |s: &f64| s.is_finite() && (60.0..=MAX_BUCKET_SECS).contains(s),
        "a number of seconds from 60 to 3153600000",
    )?;
    let limit = p.number(
        "limit",
        20usize,
        |n| (1..=MAX_TOP_ROWS).contains(n),
        "a whole number from 1 to 1000",
    )?;
    let q = AnalyticsQuery::new(since, until)
        .bucket(Duration::from_secs_f64(secs))
        .limit(limit);
    let a = s.store.analytics(&q).await.map_err(|e| match e {
        StoreError::InvalidQuery(m) => ApiError::bad("bucket_secs", m),
        e => e.into(),
    })?;
    Ok(Json(AnalyticsBody {
        pageviews: a.pageviews,
        visitors: a.visitors,
        tracks: a.tracks,
        internal_views: a.internal_views,
        direct_views: a.direct_views,
        series: a.series.iter().map(bucket).collect(),
        top_pages: rows(&a.top_pages),
        referrers: rows(&a.referrers),
    }))
}

/// One step of a funnel and the visitors who reached it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FunnelStepBody {
    /// The path or event name.
    pub step: String,
    /// `page` (a page view of the path) or `event` (a `track` event of the name).
    pub kind: String,
    /// Visitors who reached this step after the ones before it.
    pub visitors: u64,
}

/// Visitors who reached each step of a funnel in order within the range: step 1 is any
/// matching event; each next step a matching event at or after the visitor's first time at
/// the step before.
#[utoipa::path(get, path = "/tracepost/api/analytics/funnel", tag = "analytics",
    params(RangeQuery, FunnelParams),
    responses(
        (status = 200, description = "One entry per step, in order", body = Vec<FunnelStepBody>),
        (status = 400, description = "An unknown parameter, a value that can't be read, an empty range, or steps that are missing, empty, too many (more than 10) or too long (over 200 characters)", body = ErrorBody),
        (status = 401, description = "No or a wrong admin token", body = ErrorBody),
        (status = 503, description = "The store can't answer now", body = ErrorBody),
    ),
    security(("admin_token" = [])))]
pub(crate) async fn funnel(
    State(s): St,
    RawQuery(q): RawQuery,
) -> Result<Json<Vec<FunnelStepBody>>, ApiError> {
    let p = Params::read(q, &[&["since", "until", "steps"]])?;
    let (since, until) = range(&p)?;
    let text = p
        .get("steps")
        .ok_or_else(|| ApiError::bad("steps", "give the funnel's steps, comma-separated"))?;
    let steps = FunnelStep::parse_list(text).map_err(|e| match e {
        StoreError::InvalidQuery(m) => ApiError::bad("steps", m),
        e => e.into(),
    })?;
    let counts = s
        .store
        .funnel(&FunnelQuery::new(since, until, steps.clone()))
        .await
        .map_err(|e| match e {
            StoreError::InvalidQuery(m) => ApiError::bad("steps", m),
            e => e.into(),
        })?;
    Ok(Json(
        steps
            .iter()
            .zip(counts)
            .map(|(step, visitors)| FunnelStepBody {
                step: step.value().to_owned(),
                kind: if step.is_page() { "page" } else { "event" }.to_owned(),
                visitors,
            })
            .collect(),
    ))
}
