//! Every `sql` block of the book's Postgres recipe runs against a real database with data,
//! and every query returns rows (Grafana panels, which use Grafana's macros, are skipped).

mod common;

use std::sync::Arc;

use common::*;
use tracepost_core::{Event, Sink, Timestamp};
use tracepost_postgres::{PostgresSink, TimeRange};
use uuid::Uuid;

const BOOK: &str = include_str!("../../../book/src/postgres.md");

fn sql_blocks(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in md.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```sql") => current = Some(String::new()),
            (Some(block), "```") => {
                out.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            _ => {}
        }
    }
    out
}

#[tokio::test]
async fn the_books_sql_runs() {
    let blocks = sql_blocks(BOOK);
    assert!(blocks.len() >= 10, "found {} sql blocks", blocks.len());
    let Some(db) = TestDb::new("book").await else {
        return;
    };
    // The book looks up an event of 2026-11-23 by id: accept it whatever today's date.
    let sink = PostgresSink::builder(&db.url)
        .time_range(TimeRange::new().max_age(std::time::Duration::from_secs(100 * 365 * 86_400)))
        .connect()
        .await
        .unwrap();
    let mut events = every_kind();
    for e in &mut events {
        e.user_id = Some("user-17".into());
        e.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
    }
    events.push(log("in eu").with_attribute("region", "eu"));
    // The event the book looks up by id, at the time its UUIDv7 carries.
    let id = Uuid::parse_str("01a2083e-fa16-7c4a-9d1e-0a1b2c3d4e5f").unwrap();
    let (secs, nanos) = id.get_timestamp().unwrap().to_unix();
    let mut by_id = log("looked up by id");
    by_id.timestamp = Timestamp::from_unix_nanos(secs * 1_000_000_000 + u64::from(nanos));
    by_id.id = id;
    events.push(by_id);
    let outcome = sink
        .send(
            events
                .into_iter()
                .map(Arc::new)
                .collect::<Vec<Arc<Event>>>(),
        )
        .await
        .unwrap();
    assert!(outcome.rejected.is_empty());
    sink.store().fold_issues().await.unwrap();

    let c = db.client().await;
    let mut ran = 0;
    for sql in blocks.iter().filter(|b| !b.contains("$__")) {
        let rows = c
            .simple_query(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}\nfailed: {e:?}"));
        let n = rows
            .iter()
            .filter(|m| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_)))
            .count();
        assert!(n > 0, "no rows from:\n{sql}");
        ran += 1;
    }
    assert!(ran >= 9);
    drop(sink);
    db.drop_db().await;
}
