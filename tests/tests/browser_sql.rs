//! The SQL recipes of book/src/browser.md, as printed there, against the real PostgreSQL:
//! browser batches go through the ingest route and the pipeline into the Postgres sink, then
//! each recipe gives the answer the visits imply.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use support::{pg, send, serve};
use tracepost::ingest::IngestConfig;
use tracepost::prelude::*;
use tracepost::Tracepost;

/// The book's ```sql blocks that start with `-- recipe: <name>`, by name.
fn recipes() -> BTreeMap<String, String> {
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../book/src/browser.md"
    ))
    .unwrap();
    let mut out = BTreeMap::new();
    for block in page.split("```sql\n").skip(1) {
        let sql = block.split("```").next().unwrap();
        let name = sql
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("-- recipe: "))
            .expect("each SQL block starts with `-- recipe: <name>`");
        out.insert(name.to_owned(), sql.to_owned());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_books_sql_recipes_answer_from_real_postgres() {
    let recipes = recipes();
    assert_eq!(
        recipes.keys().collect::<Vec<_>>(),
        ["funnel", "top pages", "unique visitors"]
    );
    let Some(url) = pg::create_db("browser_sql").await else {
        return;
    };
    let tp = Tracepost::builder()
        .service("quickstart")
        .sink(tracepost_postgres::PostgresSink::new(&url).unwrap())
        .browser(IngestConfig::new().key("pk_test"))
        .build()
        .unwrap();
    let addr = serve(axum::Router::new().merge(tp.ingest_router().unwrap())).await;
    let origin = format!("http://{addr}");

    // Four visitors: (visitor, the steps of their visit, in order).
    let visits: [(&str, &[&str]); 4] = [
        (
            "v1",
            &["/", "/demo/pricing", "signup", "/demo/checkout?step=2"],
        ),
        ("v2", &["/", "/demo/pricing", "signup"]),
        ("v3", &["/"]),
        // Checkout, but before pricing and without signing up: not in the funnel's last step.
        ("v4", &["/demo/checkout", "/demo/pricing"]),
    ];
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for (n, (visitor, steps)) in visits.iter().enumerate() {
        let events: Vec<_> = steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let ts = now - 60_000 + (n * 10 + i) as u64 * 1000;
                if step.starts_with('/') {
                    json!({"type": "pageview", "ts": ts, "url": format!("{origin}{step}"), "nav": "push"})
                } else {
                    json!({"type": "track", "ts": ts, "name": step, "url": format!("{origin}/demo/pricing")})
                }
            })
            .collect();
        let batch = json!({
            "batch_id": format!("batch-{visitor}"), "sent_at": now, "session_id": format!("s-{visitor}"),
            "visitor_id": visitor, "page": {"url": origin}, "events": events,
        });
        let res = send(
            addr,
            "POST",
            "/tracepost/v1/events?key=pk_test",
            &[
                ("content-type", "text/plain;charset=UTF-8"),
                ("origin", origin.as_str()),
            ],
            batch.to_string().as_bytes(),
        )
        .await;
        assert_eq!(res.status(), 202);
    }
    tp.shutdown(Duration::from_secs(10)).await;

    let db = pg::client(&url).await.unwrap();
    let rows = db.query(&recipes["unique visitors"], &[]).await.unwrap();
    let visitors: i64 = rows.iter().map(|r| r.get::<_, i64>("visitors")).sum();
    assert_eq!(visitors, 4);

    let rows = db.query(&recipes["top pages"], &[]).await.unwrap();
    let pages: Vec<(String, i64, i64)> = rows
        .iter()
        .map(|r| (r.get("page"), r.get("views"), r.get("visitors")))
        .collect();
    assert_eq!(
        pages,
        [
            ("/".to_owned(), 3, 3),
            ("/demo/pricing".to_owned(), 3, 3),
            ("/demo/checkout".to_owned(), 2, 2),
        ]
    );

    let row = db.query_one(&recipes["funnel"], &[]).await.unwrap();
    let funnel: (i64, i64, i64) = (
        row.get("saw_pricing"),
        row.get("signed_up"),
        row.get("reached_checkout"),
    );
    assert_eq!(funnel, (3, 2, 1));
}
