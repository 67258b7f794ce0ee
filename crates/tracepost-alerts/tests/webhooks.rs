//! The JSON and Slack webhooks through the engine, against local receivers that check what
//! a real receiver checks (the HMAC signature; Slack's Block Kit limits and escaping).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use hmac::{KeyInit, Mac};
use serde_json::Value;
use tracepost_alerts::webhook::{JsonWebhook, JsonWebhookConfig, SlackWebhook};
use tracepost_alerts::{AlertEngine, ManualClock};
use tracepost_core::{ErrorDetail, Event, Kind, Level, Tracepost};

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(HeaderMap, String)>>>);

impl Received {
    fn all(&self) -> Vec<(HeaderMap, String)> {
        self.0.lock().unwrap().clone()
    }

    async fn wait(&self, n: usize) -> Vec<(HeaderMap, String)> {
        let start = Instant::now();
        loop {
            let all = self.all();
            if all.len() >= n {
                return all;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "got {}",
                all.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A receiver at `/hook` answering with `statuses` in turn (then 200), recording requests.
async fn receiver(statuses: Vec<u16>) -> (String, Received) {
    let received = Received::default();
    let statuses = Arc::new(Mutex::new(statuses.into_iter()));
    let r = received.clone();
    let app = Router::new().route(
        "/hook/secret-path",
        post(move |headers: HeaderMap, body: String| {
            let r = r.clone();
            let statuses = statuses.clone();
            async move {
                r.0.lock().unwrap().push((headers, body));
                let status = statuses.lock().unwrap().next().unwrap_or(200);
                let mut h = HeaderMap::new();
                if status == 429 {
                    h.insert("retry-after", "1".parse().unwrap());
                }
                (StatusCode::from_u16(status).unwrap(), h, "")
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook/secret-path"), received)
}

fn pipeline(engine: &AlertEngine) -> Tracepost {
    Tracepost::builder()
        .service("shop-api")
        .environment("production")
        .sink(engine.clone())
        .build()
        .unwrap()
}

fn error(ty: &str, message: &str) -> Event {
    Event::new(Kind::Error, Level::Error, message).with_error(ErrorDetail {
        error_type: ty.into(),
        message: message.into(),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_webhook_signs_its_body_and_retries_a_429() {
    let (url, received) = receiver(vec![429]).await;
    let hook =
        JsonWebhook::from_config(JsonWebhookConfig::new(&url).secret("shared-s3cret")).unwrap();
    assert!(!format!("{hook:?}").contains("shared-s3cret"));
    assert!(!format!("{hook:?}").contains("secret-path"));
    let engine = AlertEngine::builder()
        .notifier(hook)
        .clock(ManualClock::new())
        .group_wait(Duration::from_millis(100))
        .build()
        .unwrap();
    let tp = pipeline(&engine);
    tp.handle()
        .capture(error("PayError", "card declined <!channel>"));
    let all = received.wait(2).await;
    let (headers, body) = &all[1];
    let ts = headers["x-tracepost-timestamp"].to_str().unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"shared-s3cret").unwrap();
    mac.update(format!("{ts}.{body}").as_bytes());
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(headers["x-tracepost-signature"], expected.as_str());
    let v: Value = serde_json::from_str(body).unwrap();
    let alert = &v["alerts"][0];
    assert_eq!(alert["kind"], "new_issue");
    assert_eq!(
        alert["title"],
        "New issue: PayError: card declined <!channel>"
    );
    assert_eq!(alert["environment"], "production");
    assert_eq!(alert["count"], 1);
    // The receiver has the body before the engine has read its answer: wait for the count.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while engine.stats().delivered == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(engine.stats().delivered, 1);
    let _ = tp.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_messages_keep_block_kit_limits_and_escape_mentions() {
    let (url, received) = receiver(vec![]).await;
    let engine = AlertEngine::builder()
        .notifier(SlackWebhook::new(&url).unwrap())
        .clock(ManualClock::new())
        .group_wait(Duration::from_millis(100))
        .build()
        .unwrap();
    let tp = pipeline(&engine);
    let long = format!("<!channel> {}", "y".repeat(5000));
    tp.handle().capture(error("HugeError", &long));
    for i in 0..14 {
        tp.handle().capture(error(&format!("E{i}"), "distinct"));
    }
    let all = received.wait(2).await;
    let mut headers_seen = 0;
    for (_, body) in &all {
        let v: Value = serde_json::from_str(body).unwrap();
        let blocks = v["blocks"].as_array().unwrap();
        assert!(blocks.len() <= 50);
        for b in blocks {
            match b["type"].as_str().unwrap() {
                "header" => {
                    headers_seen += 1;
                    assert!(b["text"]["text"].as_str().unwrap().chars().count() <= 150);
                }
                "section" => {
                    assert!(b["text"]["text"].as_str().unwrap().chars().count() <= 3000)
                }
                "context" => {}
                other => panic!("unexpected block {other}"),
            }
        }
        assert!(
            !body.contains("<!channel>"),
            "a mention got through: {body}"
        );
    }
    assert_eq!(headers_seen, 15, "one header per alert");
    let _ = tp.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gone_webhook_is_called_once() {
    let (url, received) = receiver(vec![404, 404, 404]).await;
    let engine = AlertEngine::builder()
        .notifier(JsonWebhook::new(&url).unwrap())
        .group_wait(Duration::from_millis(50))
        .build()
        .unwrap();
    let tp = pipeline(&engine);
    tp.handle().capture(error("A", "first"));
    received.wait(1).await;
    for i in 0..5 {
        tp.handle().capture(error(&format!("B{i}"), "more"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(received.all().len(), 1);
    assert!(engine.stats().failed >= 1);
    let _ = tp.shutdown(Duration::from_secs(1)).await;
}
