//! TLS connections (feature `tls`), against the local server's TLS listener (Debian's
//! default snakeoil certificate, hence no certificate verification here).
#![cfg(feature = "tls")]

mod common;

use common::*;
use tracepost_core::Sink;
use tracepost_postgres::PostgresSink;

#[tokio::test]
async fn connects_over_tls_when_required() {
    let Some(db) = TestDb::new("tls").await else {
        return;
    };
    let admin = db.client().await;
    let ssl_on: String = admin.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    if ssl_on != "on" {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "the server has ssl = off; the TLS test needs it on"
        );
        eprintln!("\n!!! SKIPPING the TLS test: the server has ssl = off\n");
        db.drop_db().await;
        return;
    }
    let connector = native_tls::TlsConnector::builder()
        .danger_accept_invalid_certs(true)
        .danger_accept_invalid_hostnames(true)
        .build()
        .unwrap();
    let sink = PostgresSink::builder(format!("{}?sslmode=require", db.url))
        .tls(connector)
        .connect()
        .await
        .unwrap();
    sink.send(arcs(vec![log("over tls")])).await.unwrap();
    let client = sink.store().pool().get().await.unwrap();
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(
        row.get::<_, bool>(0),
        "the pooled connection should use TLS"
    );
    drop(client);
    assert_eq!(
        count(&admin, "SELECT count(*) FROM tracepost.events").await,
        1
    );

    // Without the feature's connector, sslmode=require can't be met.
    let err = PostgresSink::connect(&format!("{}?sslmode=require", db.url))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("TLS") || err.to_string().contains("tls"),
        "{err}"
    );
    drop(sink);
    db.drop_db().await;
}
