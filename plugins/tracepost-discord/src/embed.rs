//! Alerts as Discord embeds, within Discord's limits (discord-api-docs
//! `developers/resources/message.mdx`, "Embed Limits"; `webhook.mdx`, "Execute Webhook").

use serde_json::{json, Value};
use tracepost_alerts::{truncate_chars, Alert, AlertKind};
use tracepost_core::Level;

/// `content`: 2 000 characters.
pub const CONTENT_MAX: usize = 2000;
/// Embed `title`: 256 characters.
pub const TITLE_MAX: usize = 256;
/// Embed `description`: 4 096 characters.
pub const DESCRIPTION_MAX: usize = 4096;
/// Fields per embed: 25.
pub const FIELDS_MAX: usize = 25;
/// Field `name`: 256 characters.
pub const FIELD_NAME_MAX: usize = 256;
/// Field `value`: 1 024 characters.
pub const FIELD_VALUE_MAX: usize = 1024;
/// Footer `text`: 2 048 characters.
pub const FOOTER_MAX: usize = 2048;
/// Embeds per message: 10.
pub const EMBEDS_MAX: usize = 10;
/// Title, description, field names and values, footer and author of every embed of a
/// message together: 6 000 characters.
pub const TOTAL_MAX: usize = 6000;

/// One embed and the characters it counts against [`TOTAL_MAX`].
pub(crate) struct Embed {
    pub(crate) value: Value,
    pub(crate) chars: usize,
}

fn colour(alert: &Alert) -> u32 {
    if alert.kind.is_resolution() {
        return 0x2ECC71; // green
    }
    if alert.kind == AlertKind::Test {
        return 0x95A5A6; // grey
    }
    match alert.level {
        Level::Error => 0xE74C3C,
        Level::Warn => 0xF1C40F,
        _ => 0x3498DB,
    }
}

fn discord_time(t: tracepost_core::Timestamp) -> String {
    // `<t:…:f>` shows in each reader's time zone; `:R` adds "3 minutes ago".
    let secs = t.unix_nanos() / 1_000_000_000;
    format!("<t:{secs}:f> (<t:{secs}:R>)")
}

/// The embed of one alert: title (error type and message), description (route, top
/// application frames), fields (count, first/last seen, environment, release, users
/// affected, fingerprint), colour by level, timestamp, link, footer. Every text is cut to
/// its limit with "…", and the description further so the whole embed stays within
/// [`TOTAL_MAX`].
pub(crate) fn embed(alert: &Alert) -> Embed {
    let title = truncate_chars(&alert.title, TITLE_MAX);
    let mut fields: Vec<(String, String, bool)> = Vec::new();
    if alert.count > 0 {
        let name = match alert.kind {
            AlertKind::FollowUp => "More occurrences",
            AlertKind::Spike => "Events in window",
            AlertKind::EventsDropped => "Events dropped",
            AlertKind::CapReached => "Alerts held back",
            AlertKind::ErrorRate | AlertKind::ErrorRateResolved => "Failed requests",
            _ => "Count",
        };
        fields.push((name.into(), alert.count.to_string(), true));
    }
    if let Some(t) = alert.first_seen {
        fields.push(("First seen".into(), discord_time(t), true));
    }
    if let Some(t) = alert.last_seen {
        fields.push(("Last seen".into(), discord_time(t), true));
    }
    if let Some(e) = &alert.environment {
        fields.push(("Environment".into(), e.clone(), true));
    }
    if let Some(r) = &alert.release {
        fields.push(("Release".into(), r.clone(), true));
    }
    if let Some(u) = alert.users_affected {
        fields.push(("Users affected".into(), u.to_string(), true));
    }
    if let Some(fp) = &alert.fingerprint {
        fields.push(("Fingerprint".into(), format!("`{fp}`"), false));
    }
    fields.truncate(FIELDS_MAX);
    let fields: Vec<(String, String, bool)> = fields
        .into_iter()
        .map(|(n, v, i)| {
            (
                truncate_chars(&n, FIELD_NAME_MAX),
                truncate_chars(&v, FIELD_VALUE_MAX),
                i,
            )
        })
        .filter(|(n, v, _)| !n.is_empty() && !v.is_empty())
        .collect();
    let footer = if alert.service.is_empty() {
        format!("tracepost · {}", alert.kind)
    } else {
        format!("tracepost · {} · {}", alert.kind, alert.service)
    };
    let footer = truncate_chars(&footer, FOOTER_MAX);
    let count = |s: &str| s.chars().count();
    let fixed = count(&title)
        + fields
            .iter()
            .map(|(n, v, _)| count(n) + count(v))
            .sum::<usize>()
        + count(&footer);
    let room = DESCRIPTION_MAX.min(TOTAL_MAX.saturating_sub(fixed));
    let description = truncate_chars(&alert.description, room);
    let chars = fixed + count(&description);

    let mut value = json!({
        "title": if title.is_empty() { "(no title)".to_owned() } else { title },
        "color": colour(alert),
        "timestamp": alert.timestamp.to_string(),
        "footer": { "text": footer },
    });
    if !description.is_empty() {
        value["description"] = json!(description);
    }
    if !fields.is_empty() {
        value["fields"] = fields
            .into_iter()
            .map(|(name, value, inline)| json!({"name": name, "value": value, "inline": inline}))
            .collect();
    }
    if let Some(link) = alert.link.as_deref().filter(|l| l.starts_with("http")) {
        value["url"] = json!(link);
    }
    Embed { value, chars }
}

/// Packs embeds into messages: at most [`EMBEDS_MAX`] per message and [`TOTAL_MAX`]
/// characters together (the content counts against neither).
pub(crate) fn pack(embeds: Vec<Embed>) -> Vec<Vec<Value>> {
    let mut messages: Vec<Vec<Value>> = Vec::new();
    let mut current: Vec<Value> = Vec::new();
    let mut chars = 0;
    for e in embeds {
        if !current.is_empty() && (current.len() == EMBEDS_MAX || chars + e.chars > TOTAL_MAX) {
            messages.push(std::mem::take(&mut current));
            chars = 0;
        }
        chars += e.chars;
        current.push(e.value);
    }
    if !current.is_empty() {
        messages.push(current);
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_alert_fits_every_limit() {
        let mut a = Alert::new(AlertKind::NewIssue, Level::Error, "x".repeat(5000))
            .with_description("é".repeat(9000))
            .with_count(3)
            .with_fingerprint("f".repeat(2000));
        a.environment = Some("e".repeat(3000));
        let e = embed(&a);
        let v = &e.value;
        assert_eq!(v["title"].as_str().unwrap().chars().count(), TITLE_MAX);
        assert!(v["title"].as_str().unwrap().ends_with('…'));
        assert!(v["description"].as_str().unwrap().chars().count() <= DESCRIPTION_MAX);
        for f in v["fields"].as_array().unwrap() {
            assert!(f["value"].as_str().unwrap().chars().count() <= FIELD_VALUE_MAX);
        }
        assert!(e.chars <= TOTAL_MAX, "{}", e.chars);
    }

    #[test]
    fn packing_respects_ten_embeds_and_six_thousand_characters() {
        let big: Vec<Embed> = (0..4)
            .map(|i| {
                embed(
                    &Alert::new(AlertKind::Spike, Level::Error, format!("big {i}"))
                        .with_description("d".repeat(4000)),
                )
            })
            .collect();
        let messages = pack(big);
        assert_eq!(messages.len(), 4, "two 4 000-character embeds exceed 6 000");
        let small: Vec<Embed> = (0..25)
            .map(|i| {
                embed(&Alert::new(
                    AlertKind::Spike,
                    Level::Error,
                    format!("s {i}"),
                ))
            })
            .collect();
        let sizes: Vec<usize> = pack(small).iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 5]);
    }
}
