//! Run: `cargo run -p tracepost --example redaction`
//!
//! Redaction rules: add a key pattern, drop one, and add a rule for your own token format.
//! The pipeline applies them to every event, whatever captured it.

// ANCHOR: imports
use std::time::Duration;

use tracepost::redact::{Redactor, ValueRule};
use tracepost::sinks::Console;
use tracepost::{Event, Kind, Level, Tracepost};
// ANCHOR_END: imports

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // ANCHOR: rules
    let redactor = Redactor::default()
        // Also mask keys containing "iban", and the header `x-tenant-secret`.
        .key_pattern("iban")
        .header("x-tenant-secret")
        // `discarded_items` is not a card number.
        .without_key_pattern("card")
        // Your own credential format: `acme_` and 32 hex digits. Anchors are literals found in
        // every match; the regex only runs on strings that contain one.
        .rule(ValueRule::new("acme-key", r"\bacme_[0-9a-f]{32}\b")?.anchors(["acme_"]));
    let tp = Tracepost::builder()
        .service("shop-api")
        .redactor(redactor)
        .sink(Console::default())
        .build()?;
    // ANCHOR_END: rules

    let key = format!("acme_{}", "0123456789abcdef".repeat(2));
    let mut event = Event::new(Kind::Error, Level::Error, format!("upstream refused {key}"))
        .with_attribute("customer_iban", "DE89370400440532013000")
        .with_attribute("discarded_items", 3);
    tp.handle().capture(event.clone());

    // The same rules, applied by hand (the redact stage calls exactly this).
    tp.handle().redactor().event(&mut event);
    assert_eq!(event.message, "upstream refused [REDACTED]");
    assert_eq!(event.attributes["customer_iban"], "[REDACTED]");
    assert_eq!(event.attributes["discarded_items"], 3);

    tp.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
