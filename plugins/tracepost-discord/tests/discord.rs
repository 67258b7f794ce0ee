//! The alert engine and the Discord notifier end to end: events captured into a real
//! pipeline, alerts posted to a local Discord stand-in (`support`, which enforces Discord's
//! published limits; Discord itself can't run here). The rules' windows run on a
//! `ManualClock`, so 15 minutes pass in a millisecond; HTTP and rate limits run in real time.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use support::StandIn;
use tracepost_alerts::{send_test_alert, AlertEngine, AlertRules, ManualClock};
use tracepost_core::{ErrorDetail, Event, Health, Kind, Level, MetricWindow, Timestamp, Tracepost};
use tracepost_discord::DiscordWebhook;

struct Setup {
    tp: Tracepost,
    engine: AlertEngine,
    clock: ManualClock,
}

fn start(stand_in: &StandIn, id: &str, rules: AlertRules, data_dir: Option<&Path>) -> Setup {
    let clock = ManualClock::new();
    let mut b = AlertEngine::builder()
        .notifier(DiscordWebhook::new(stand_in.url(id)).unwrap())
        .rules(rules)
        .clock(clock.clone())
        .group_wait(Duration::from_millis(200))
        .tick(Duration::from_millis(20))
        .link_template("http://console.example/issues/{fingerprint}");
    if let Some(d) = data_dir {
        b = b.data_dir(d);
    }
    let engine = b.build().unwrap();
    let tp = Tracepost::builder()
        .service("shop-api")
        .environment("production")
        .release("1.4.2")
        .sink(engine.clone())
        .build()
        .unwrap();
    Setup { tp, engine, clock }
}

fn error(ty: &str, message: &str) -> Event {
    Event::new(Kind::Error, Level::Error, message).with_error(ErrorDetail {
        error_type: ty.into(),
        message: message.into(),
        backtrace: Some(
            "0: std::panicking::begin_panic\n1: shop::orders::place\n2: shop::handlers::checkout\n3: tokio::runtime::task::raw::poll"
                .into(),
        ),
        location: Some("src/orders.rs:42".into()),
    })
}

fn field<'a>(embed: &'a Value, name: &str) -> Option<&'a str> {
    embed["fields"]
        .as_array()?
        .iter()
        .find(|f| f["name"] == name)
        .and_then(|f| f["value"].as_str())
}

async fn settle() {
    tokio::time::sleep(Duration::from_millis(600)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_identical_errors_make_one_alert_then_one_follow_up_with_the_count() {
    let stand_in = StandIn::start().await;
    let s = start(&stand_in, "flood", AlertRules::default(), None);
    for i in 0..10_000u64 {
        if i % 1000 == 0 {
            s.clock.advance(Duration::from_secs(5)); // all within 60 s
        }
        s.tp.handle()
            .capture(error("OrderError", "payment provider timed out"));
    }
    let m = stand_in.wait_messages("flood", 1).await;
    let start = std::time::Instant::now();
    while s.engine.stats().suppressed < 9_999 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{:?}",
            s.engine.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    settle().await;
    assert_eq!(
        stand_in.messages("flood").len(),
        1,
        "exactly one alert: {m:#?}"
    );
    let first = &stand_in.embeds("flood")[0];
    assert_eq!(
        first["title"],
        "New issue: OrderError: payment provider timed out"
    );
    assert!(first["description"]
        .as_str()
        .unwrap()
        .contains("shop::orders::place"));
    assert_eq!(field(first, "Environment"), Some("production"));
    assert_eq!(field(first, "Release"), Some("1.4.2"));
    assert!(first["url"]
        .as_str()
        .unwrap()
        .starts_with("http://console.example/issues/"));

    s.clock.advance(Duration::from_secs(14 * 60));
    settle().await;
    assert_eq!(
        stand_in.messages("flood").len(),
        1,
        "still suppressed at 14 min"
    );
    s.clock.advance(Duration::from_secs(61));
    stand_in.wait_messages("flood", 2).await;
    let follow_up = &stand_in.embeds("flood")[1];
    assert!(
        follow_up["title"]
            .as_str()
            .unwrap()
            .starts_with("Still happening: OrderError"),
        "{follow_up:#}"
    );
    assert_eq!(field(follow_up, "More occurrences"), Some("9999"));

    // Nothing more happened: the next window ends without a message.
    s.clock.advance(Duration::from_secs(16 * 60));
    settle().await;
    assert_eq!(stand_in.messages("flood").len(), 2, "no follow-up for zero");
    assert!(stand_in.statuses("flood").iter().all(|s| *s == 204));
    let report = s.tp.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.sinks[0].1.dropped_total(), 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_new_issues_at_once_are_batched_and_wait_for_the_bucket_without_a_429() {
    let stand_in = StandIn::start().await;
    let mut rules = AlertRules::default();
    rules.max_alerts_per_minute = 100;
    let s = start(&stand_in, "burst", rules, None);
    for i in 0..60 {
        s.tp.handle()
            .capture(error(&format!("Error{i}"), "something distinct broke"));
    }
    stand_in.wait_messages("burst", 6).await;
    settle().await;
    let messages = stand_in.messages("burst");
    let sizes: Vec<usize> = messages
        .iter()
        .map(|m| m["embeds"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes.iter().sum::<usize>(), 60, "{sizes:?}");
    assert!(messages.len() <= 7, "a handful of messages: {sizes:?}");
    let statuses = stand_in.statuses("burst");
    assert!(
        !statuses.contains(&429),
        "the X-RateLimit headers were honoured before the limit: {statuses:?}"
    );
    assert!(statuses.iter().all(|s| *s == 204), "{statuses:?}");
    let _ = s.tp.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_rate_limit_headers_a_429_is_waited_out_not_looped() {
    let stand_in = StandIn::start().await;
    stand_in.hide_rate_limit_headers(true);
    let mut rules = AlertRules::default();
    rules.max_alerts_per_minute = 100;
    let s = start(&stand_in, "blind", rules, None);
    for i in 0..60 {
        s.tp.handle()
            .capture(error(&format!("Blind{i}"), "something distinct broke"));
    }
    stand_in.wait_messages("blind", 6).await;
    settle().await;
    let embeds = stand_in.embeds("blind").len();
    assert_eq!(embeds, 60);
    let statuses = stand_in.statuses("blind");
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!(
        (1..=2).contains(&limited),
        "one 429 per exhausted bucket, then retry_after is honoured: {statuses:?}"
    );
    let _ = s.tp.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_holds_back_alerts_and_says_how_many() {
    let stand_in = StandIn::start().await;
    let s = start(&stand_in, "capped", AlertRules::default(), None); // 30 per minute
    for i in 0..50 {
        s.tp.handle()
            .capture(error(&format!("Capped{i}"), "something distinct broke"));
    }
    let start = std::time::Instant::now();
    while s.engine.stats().capped < 20 || stand_in.embeds("capped").len() < 30 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{:?}",
            s.engine.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    settle().await;
    assert_eq!(stand_in.embeds("capped").len(), 30);
    assert_eq!(s.engine.stats().capped, 20);
    s.clock.advance(Duration::from_secs(60));
    while stand_in.embeds("capped").len() < 31 {
        assert!(start.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let last = stand_in.embeds("capped").pop().unwrap();
    assert_eq!(last["title"], "20 more alerts held back");
    assert!(last["description"].as_str().unwrap().contains("Capped"));
    let _ = s.tp.shutdown(Duration::from_secs(5)).await;
}

fn window(count: u64, errors: u64) -> Event {
    let mut e = Event::new(Kind::MetricWindow, Level::Info, "window");
    e.metric = Some(MetricWindow {
        start: Timestamp::now(),
        seconds: 60,
        method: "GET".into(),
        route: "/orders/{id}".into(),
        count,
        errors,
        p50_ms: 1.0,
        p95_ms: 2.0,
        p99_ms: 3.0,
        max_ms: 4.0,
        bytes_in: 0,
        bytes_out: 0,
    });
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_error_rate_rule_fires_and_resolves() {
    let stand_in = StandIn::start().await;
    let s = start(&stand_in, "rate", AlertRules::default(), None);
    // 19 requests, all failed: too few to judge.
    s.tp.handle().capture(window(19, 19));
    settle().await;
    assert!(stand_in.messages("rate").is_empty());
    s.clock.advance(Duration::from_secs(60));
    // 19 + 81 = 100 requests, 19 + 3 = 22 % failed.
    s.tp.handle().capture(window(81, 3));
    let m = stand_in.wait_messages("rate", 1).await;
    let e = &m[0]["embeds"][0];
    assert_eq!(e["title"], "Error rate 22.0 % (above 5 %)");
    // Three minutes later a busy, healthy window brings the 5-minute rate down:
    // 27 of 1 100 requests = 2.5 %.
    s.clock.advance(Duration::from_secs(3 * 60));
    s.tp.handle().capture(window(1000, 5));
    let m = stand_in.wait_messages("rate", 2).await;
    let e = &m[1]["embeds"][0];
    assert_eq!(e["title"], "Resolved: error rate 2.5 %");
    assert_eq!(e["color"], json!(0x2ECC71));
    let _ = s.tp.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_does_not_announce_known_issues_again() {
    let stand_in = StandIn::start().await;
    let dir = tempfile::tempdir().unwrap();
    let s = start(
        &stand_in,
        "restart",
        AlertRules::default(),
        Some(dir.path()),
    );
    s.tp.handle().capture(error("DbError", "connection reset"));
    stand_in.wait_messages("restart", 1).await;
    let _ = s.tp.shutdown(Duration::from_secs(5)).await;

    let s = start(
        &stand_in,
        "restart",
        AlertRules::default(),
        Some(dir.path()),
    );
    assert_eq!(s.engine.stats().known_issues, 1);
    s.tp.handle().capture(error("DbError", "connection reset"));
    settle().await;
    assert_eq!(stand_in.messages("restart").len(), 1, "not announced again");
    s.tp.handle().capture(error("CacheError", "miss storm"));
    stand_in.wait_messages("restart", 2).await;
    assert_eq!(
        stand_in.embeds("restart")[1]["title"],
        "New issue: CacheError: miss storm"
    );
    let _ = s.tp.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_webhook_stops_traffic_after_one_request_and_health_goes_down() {
    let stand_in = StandIn::start().await;
    stand_in.delete("deleted");
    let s = start(&stand_in, "deleted", AlertRules::default(), None);
    s.tp.handle().capture(error("A", "first"));
    let start = std::time::Instant::now();
    while s.engine.stats().failed == 0 {
        assert!(start.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 0..20 {
        s.tp.handle().capture(error(&format!("B{i}"), "more"));
        s.clock.advance(Duration::from_secs(120));
    }
    settle().await;
    assert_eq!(
        stand_in.statuses("deleted"),
        [404],
        "one request, then none"
    );
    let health = s.tp.handle().health();
    assert_eq!(health.sinks[0].state, Health::Down, "{health:?}");
    let error = health.sinks[0].last_error.clone().unwrap();
    assert!(error.contains("discord"), "{error}");
    assert!(!error.contains("secret-token"), "{error}");
    let _ = s.tp.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_alert_arrives() {
    let stand_in = StandIn::start().await;
    let s = start(&stand_in, "test", AlertRules::default(), None);
    send_test_alert(&s.tp.handle());
    let m = stand_in.wait_messages("test", 1).await;
    assert_eq!(m[0]["embeds"][0]["title"], "Test alert from shop-api");
    let _ = s.tp.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_five_thousand_character_message_arrives_truncated() {
    let stand_in = StandIn::start().await;
    let s = start(&stand_in, "long", AlertRules::default(), None);
    let long = "x".repeat(5000);
    s.tp.handle().capture(error("HugeError", &long));
    let m = stand_in.wait_messages("long", 1).await;
    let title = m[0]["embeds"][0]["title"].as_str().unwrap();
    assert_eq!(title.chars().count(), 256);
    assert!(title.ends_with('…'));
    assert_eq!(stand_in.statuses("long"), [204]);
    let _ = s.tp.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_secrets_never_reach_discord() {
    let stand_in = StandIn::start().await;
    let s = start(&stand_in, "secrets", AlertRules::default(), None);
    let mut e = error(
        "AuthError",
        "login failed: password=hunter2-planted Authorization: Bearer eyJplanted.token.value",
    );
    e.user_id = Some("user-7".into());
    s.tp.handle().capture(e);
    stand_in.wait_messages("secrets", 1).await;
    let raw = stand_in.raw();
    assert!(raw.contains("AuthError"), "{raw}");
    for secret in ["hunter2-planted", "eyJplanted.token.value"] {
        assert!(!raw.contains(secret), "{secret} reached Discord: {raw}");
    }
    // The webhook URL is a secret too.
    let debug = format!(
        "{:?}",
        DiscordWebhook::new(stand_in.url("secrets")).unwrap()
    );
    assert!(!debug.contains("secret-token"), "{debug}");
    let _ = s.tp.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stand_in_enforces_discords_limits() {
    let stand_in = StandIn::start().await;
    let client = tracepost_core::http_sink::reqwest::Client::new();
    let over = json!({"embeds": [{"title": "t".repeat(257)}]});
    let r = client
        .post(stand_in.url("limits"))
        .header("content-type", "application/json")
        .body(over.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["code"], 50035);
    let total =
        json!({"embeds": [{"description": "d".repeat(4000)}, {"description": "d".repeat(2001)}]});
    let r = client
        .post(stand_in.url("limits"))
        .body(total.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400, "6 001 characters in one message");
    let ok = json!({"content": "hi"}).to_string();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = client
            .post(stand_in.url("limits"))
            .body(ok.clone())
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    // 2 (400s count) + 3 accepted = 5; the 6th request within 2 s is a 429.
    assert_eq!(statuses, [204, 204, 204, 429]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_health_a_sink_down_for_five_minutes_and_dropped_events_alert() {
    use tracepost_core::testing::MemorySink;
    use tracepost_core::{RetryOptions, SinkOptions};

    let stand_in = StandIn::start().await;
    let clock = ManualClock::new();
    let engine = AlertEngine::builder()
        .notifier(DiscordWebhook::new(stand_in.url("health")).unwrap())
        .clock(clock.clone())
        .group_wait(Duration::from_millis(100))
        .tick(Duration::from_millis(20))
        .build()
        .unwrap();
    let warehouse = MemorySink::new("warehouse");
    warehouse.refuse(true);
    let tiny = MemorySink::new("tiny");
    tiny.unavailable(true);
    let tp = Tracepost::builder()
        .service("shop-api")
        .sink(engine.clone())
        .sink_with(
            warehouse.clone(),
            SinkOptions::default()
                .memory_only()
                .retry(RetryOptions::default().refused_interval(Duration::from_millis(50))),
        )
        .sink_with(
            tiny.clone(),
            SinkOptions::default().memory_only().queue_capacity(1),
        )
        .build()
        .unwrap();
    for i in 0..50 {
        tp.handle()
            .capture(Event::new(Kind::Log, Level::Info, format!("line {i}")));
    }
    // The drops are reported at once, the outage only after five minutes.
    let m = stand_in.wait_messages("health", 1).await;
    let dropped = &m[0]["embeds"][0];
    assert!(
        dropped["title"]
            .as_str()
            .unwrap()
            .starts_with("Sink tiny dropped"),
        "{dropped:#}"
    );
    let start = std::time::Instant::now();
    while tp.handle().health().sinks[1].state != Health::Down {
        assert!(start.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    settle().await;
    clock.advance(Duration::from_secs(4 * 60));
    settle().await;
    assert_eq!(
        stand_in.messages("health").len(),
        1,
        "not yet: down for 4 min"
    );
    clock.advance(Duration::from_secs(61 + 60));
    let m = stand_in.wait_messages("health", 2).await;
    let down = &m[1]["embeds"][0];
    assert_eq!(down["title"], "Sink warehouse is down", "{m:#?}");
    assert!(down["description"]
        .as_str()
        .unwrap()
        .contains("permission_denied"));
    warehouse.refuse(false);
    let m = stand_in.wait_messages("health", 3).await;
    assert_eq!(m[2]["embeds"][0]["title"], "Sink warehouse is up again");
    tiny.unavailable(false);
    let _ = tp.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issues_already_in_the_store_are_not_announced() {
    use std::sync::Arc;
    use tracepost_sqlite::SqliteSink;

    let dir = tempfile::tempdir().unwrap();
    // Before alerts were set up, the app stored an error in SQLite.
    let tp = Tracepost::builder()
        .service("shop-api")
        .sink(SqliteSink::new(dir.path()))
        .build()
        .unwrap();
    tp.handle()
        .capture(error("LegacyError", "known for months"));
    assert!(tp.shutdown(Duration::from_secs(5)).await.completed);

    let stand_in = StandIn::start().await;
    let sqlite = SqliteSink::new(dir.path());
    let engine = AlertEngine::builder()
        .notifier(DiscordWebhook::new(stand_in.url("store")).unwrap())
        .known_issues_from(Arc::new(sqlite.store().clone()))
        .group_wait(Duration::from_millis(100))
        .build()
        .unwrap();
    let tp = Tracepost::builder()
        .service("shop-api")
        .sink(sqlite)
        .sink(engine.clone())
        .build()
        .unwrap();
    tp.handle()
        .capture(error("LegacyError", "known for months"));
    tp.handle().capture(error("FreshError", "new today"));
    let m = stand_in.wait_messages("store", 1).await;
    settle().await;
    let embeds = stand_in.embeds("store");
    assert_eq!(embeds.len(), 1, "{m:#?}");
    assert_eq!(embeds[0]["title"], "New issue: FreshError: new today");
    let _ = tp.shutdown(Duration::from_secs(5)).await;
}

/// The behaviour suite's `shutdown_flushes`, as it applies to the engine (which stores no
/// events to read back): alerts raised just before shutdown are delivered by it, without
/// waiting for the group window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_delivers_the_alerts_still_queued() {
    let stand_in = StandIn::start().await;
    let engine = AlertEngine::builder()
        .notifier(DiscordWebhook::new(stand_in.url("shutdown")).unwrap())
        .group_wait(Duration::from_secs(3600))
        .build()
        .unwrap();
    let tp = Tracepost::builder()
        .service("shop-api")
        .sink(engine.clone())
        .build()
        .unwrap();
    tp.handle()
        .capture(error("LastWords", "right before the deploy"));
    let report = tp.shutdown(Duration::from_secs(10)).await;
    assert!(report.completed, "{report:?}");
    let embeds = stand_in.embeds("shutdown");
    assert_eq!(embeds.len(), 1, "delivered by shutdown, not after the hour");
    assert_eq!(
        embeds[0]["title"],
        "New issue: LastWords: right before the deploy"
    );
}
