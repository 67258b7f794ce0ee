//! The batch the browser script sends, and its validation: [`parse_batch`] turns a JSON body
//! into a [`Batch`] or a `400` naming the failed field as a JSON pointer.
//!
//! Identifiers (`batch_id`, `session_id`, `visitor_id`, `user_id`, event `type`, `name`,
//! `nav`, `mechanism`, `rating`) must fit their limits or the batch is refused; free text
//! (URLs, titles, messages, stacks) is cut at its limit instead, since a long URL is not an
//! attack. Unknown members are ignored, so an older server accepts a newer script.

use serde_json::{Map, Value};

use crate::error::IngestError;

/// The most events in one batch.
pub const MAX_EVENTS: usize = 50;
/// The longest `batch_id`, `session_id` and `visitor_id`, in characters.
pub const MAX_ID: usize = 64;
/// The longest `user_id`, in characters.
pub const MAX_USER_ID: usize = 256;
/// The longest event or metric `name`, in characters.
pub const MAX_NAME: usize = 200;
/// URLs and referrers are cut to this many bytes.
pub const MAX_URL: usize = 4096;
/// Titles are cut to this many bytes.
pub const MAX_TITLE: usize = 1024;
/// Error messages are cut to this many bytes.
pub const MAX_MESSAGE: usize = 8192;
/// Raw stacks are cut to this many bytes (the frame parser caps each line further).
pub const MAX_STACK: usize = 64 * 1024;
/// The largest `props`, `traits` or `extra` object, serialised, in bytes.
pub const MAX_PROPS: usize = 16 * 1024;

/// One batch from the browser.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The idempotency key.
    pub batch_id: String,
    /// When the browser sent it (ms since the epoch, the browser's clock).
    pub sent_at: f64,
    /// The browser session.
    pub session_id: String,
    /// The visitor (absent in cookieless mode).
    pub visitor_id: Option<String>,
    /// The user, once identified.
    pub user_id: Option<String>,
    /// The page the batch was sent from.
    pub page: Page,
    /// `1920x1080`.
    pub screen: Option<String>,
    /// `en-US`.
    pub language: Option<String>,
    /// UTM parameters of the landing page (`source`, `medium`, `campaign`, `term`, `content`).
    pub utm: Vec<(&'static str, String)>,
    /// 1 to [`MAX_EVENTS`] events.
    pub events: Vec<BrowserEvent>,
}

/// A page: URL, referrer, title.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// The page URL.
    pub url: Option<String>,
    /// `document.referrer`.
    pub referrer: Option<String>,
    /// `document.title`.
    pub title: Option<String>,
}

/// One event of a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum BrowserEvent {
    /// An uncaught error, an unhandled rejection or `captureException`.
    Error(ErrorEvent),
    /// A page view (load or SPA navigation).
    PageView(PageView),
    /// `tracepost.track(name, props)`.
    Track(Track),
    /// `tracepost.identify(userId, traits)`.
    Identify(Identify),
    /// A web vital.
    Vital(Vital),
}

/// A browser error.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorEvent {
    /// When (ms since the epoch, browser clock).
    pub ts: f64,
    /// The page URL.
    pub url: Option<String>,
    /// `TypeError`, …
    pub name: Option<String>,
    /// The message.
    pub message: String,
    /// The raw `error.stack`.
    pub stack: Option<String>,
    /// Whether the page caught it.
    pub handled: bool,
    /// `onerror`, `unhandledrejection` or `captureException`.
    pub mechanism: Option<String>,
    /// The script URL (`onerror`'s `source`).
    pub source: Option<String>,
    /// `onerror`'s line (1-based).
    pub line: Option<u32>,
    /// `onerror`'s column (1-based).
    pub col: Option<u32>,
    /// The context passed to `captureException`.
    pub extra: Option<Map<String, Value>>,
}

/// A page view.
#[derive(Debug, Clone, PartialEq)]
pub struct PageView {
    /// When.
    pub ts: f64,
    /// The page.
    pub page: Page,
    /// `load`, `push`, `replace` or `pop`.
    pub nav: Option<String>,
}

/// A custom event.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    /// When.
    pub ts: f64,
    /// The page URL.
    pub url: Option<String>,
    /// The event's name (`signup`).
    pub name: String,
    /// Its properties.
    pub props: Option<Map<String, Value>>,
}

/// An identification.
#[derive(Debug, Clone, PartialEq)]
pub struct Identify {
    /// When.
    pub ts: f64,
    /// The user.
    pub user_id: String,
    /// The user's traits.
    pub traits: Option<Map<String, Value>>,
}

/// A web vital.
#[derive(Debug, Clone, PartialEq)]
pub struct Vital {
    /// When.
    pub ts: f64,
    /// The page URL.
    pub url: Option<String>,
    /// `LCP`, `INP`, `CLS`, `TTFB` or `FCP`.
    pub name: String,
    /// Milliseconds, or unitless for CLS.
    pub value: f64,
    /// `good`, `needs-improvement` or `poor`.
    pub rating: Option<String>,
}

impl BrowserEvent {
    /// The event's browser timestamp.
    pub fn ts(&self) -> f64 {
        match self {
            BrowserEvent::Error(e) => e.ts,
            BrowserEvent::PageView(e) => e.ts,
            BrowserEvent::Track(e) => e.ts,
            BrowserEvent::Identify(e) => e.ts,
            BrowserEvent::Vital(e) => e.ts,
        }
    }
}

/// Parses and validates a batch. Errors: `400 malformed_json` (not JSON, or nested deeper
/// than serde_json's limit of 128), `400 missing_field` / `400 invalid_field` with the JSON
/// pointer of the field.
pub fn parse_batch(body: &[u8]) -> Result<Batch, IngestError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| IngestError::malformed_json(format!("the body is not JSON: {e}")))?;
    let Value::Object(root) = &value else {
        return Err(IngestError::invalid_field(
            "",
            "the body must be a JSON object",
        ));
    };
    let root = Obj::new(root, String::new());
    let events_value = root
        .get("events")
        .ok_or_else(|| IngestError::missing_field("/events"))?;
    let Value::Array(items) = events_value else {
        return Err(IngestError::invalid_field("/events", "must be an array"));
    };
    if items.is_empty() || items.len() > MAX_EVENTS {
        return Err(IngestError::invalid_field(
            "/events",
            format!("must hold 1 to {MAX_EVENTS} events, not {}", items.len()),
        ));
    }
    let batch_id = root.id("batch_id", MAX_ID)?;
    let sent_at = root.timestamp("sent_at")?;
    let session_id = root.id("session_id", MAX_ID)?;
    // The session id links errors to a recording: it becomes part of replay object keys and
    // console URLs, so it is held to their alphabet (what tp.js sends: hex).
    if tracepost_core::capture::session_id(&session_id).is_none() {
        return Err(IngestError::invalid_field(
            root.at("session_id"),
            "must be ASCII letters, digits, - or _",
        ));
    }
    let visitor_id = root.opt_id("visitor_id", MAX_ID)?;
    let user_id = root.opt_id("user_id", MAX_USER_ID)?;
    let page = match root.opt_obj("page")? {
        Some(p) => Page {
            url: p.opt_text("url", MAX_URL)?,
            referrer: p.opt_text("referrer", MAX_URL)?,
            title: p.opt_text("title", MAX_TITLE)?,
        },
        None => Page::default(),
    };
    let screen = root.opt_id("screen", 32)?;
    let language = root.opt_id("language", 35)?;
    let mut utm = Vec::new();
    if let Some(u) = root.opt_obj("utm")? {
        for key in ["source", "medium", "campaign", "term", "content"] {
            if let Some(v) = u.opt_text(key, 256)? {
                utm.push((key, v));
            }
        }
    }
    let mut events = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let ptr = format!("/events/{i}");
        let Value::Object(map) = item else {
            return Err(IngestError::invalid_field(ptr, "must be an object"));
        };
        events.push(parse_event(&Obj::new(map, ptr))?);
    }
    Ok(Batch {
        batch_id,
        sent_at,
        session_id,
        visitor_id,
        user_id,
        page,
        screen,
        language,
        utm,
        events,
    })
}

fn parse_event(o: &Obj<'_>) -> Result<BrowserEvent, IngestError> {
    let ty = o.id("type", 16)?;
    let ts = o.timestamp("ts")?;
    Ok(match ty.as_str() {
        "error" => BrowserEvent::Error(ErrorEvent {
            ts,
            url: o.opt_text("url", MAX_URL)?,
            name: o.opt_id("name", MAX_NAME)?,
            message: o.opt_text("message", MAX_MESSAGE)?.unwrap_or_default(),
            stack: o.opt_text("stack", MAX_STACK)?,
            handled: o.opt_bool("handled")?.unwrap_or(false),
            mechanism: o.opt_one_of(
                "mechanism",
                &["onerror", "unhandledrejection", "captureException"],
            )?,
            source: o.opt_text("source", MAX_URL)?,
            line: o.opt_u32("line")?,
            col: o.opt_u32("col")?,
            extra: o.opt_props("extra")?,
        }),
        "pageview" => BrowserEvent::PageView(PageView {
            ts,
            page: Page {
                url: o.opt_text("url", MAX_URL)?,
                referrer: o.opt_text("referrer", MAX_URL)?,
                title: o.opt_text("title", MAX_TITLE)?,
            },
            nav: o.opt_one_of("nav", &["load", "push", "replace", "pop"])?,
        }),
        "track" => BrowserEvent::Track(Track {
            ts,
            url: o.opt_text("url", MAX_URL)?,
            name: o.id("name", MAX_NAME)?,
            props: o.opt_props("props")?,
        }),
        "identify" => BrowserEvent::Identify(Identify {
            ts,
            user_id: o.id("user_id", MAX_USER_ID)?,
            traits: o.opt_props("traits")?,
        }),
        "vital" => BrowserEvent::Vital(Vital {
            ts,
            url: o.opt_text("url", MAX_URL)?,
            name: o
                .opt_one_of("name", &["LCP", "INP", "CLS", "TTFB", "FCP"])?
                .ok_or_else(|| IngestError::missing_field(o.at("name")))?,
            value: {
                let v = o.number("value")?;
                if v < 0.0 {
                    return Err(IngestError::invalid_field(
                        o.at("value"),
                        "must not be negative",
                    ));
                }
                v
            },
            rating: o.opt_one_of("rating", &["good", "needs-improvement", "poor"])?,
        }),
        other => {
            return Err(IngestError::invalid_field(
                o.at("type"),
                format!(
                    "unknown event type {:?}: expected error, pageview, track, identify or vital",
                    tracepost_core::truncate_utf8(other, 32)
                ),
            ))
        }
    })
}

/// An object being validated, and its JSON pointer.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    ptr: String,
}

impl<'a> Obj<'a> {
    fn new(map: &'a Map<String, Value>, ptr: String) -> Self {
        Obj { map, ptr }
    }

    /// The pointer of member `key` (our keys need no `~` escaping).
    fn at(&self, key: &str) -> String {
        format!("{}/{key}", self.ptr)
    }

    /// The member, treating `null` as absent.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn opt_str(&self, key: &str) -> Result<Option<&'a str>, IngestError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(IngestError::invalid_field(self.at(key), "must be a string")),
        }
    }

    fn opt_id(&self, key: &str, max: usize) -> Result<Option<String>, IngestError> {
        let Some(s) = self.opt_str(key)? else {
            return Ok(None);
        };
        let n = s.chars().count();
        if n == 0 || n > max {
            return Err(IngestError::invalid_field(
                self.at(key),
                format!("must be 1 to {max} characters, not {n}"),
            ));
        }
        if s.chars().any(char::is_control) {
            return Err(IngestError::invalid_field(
                self.at(key),
                "must not contain control characters",
            ));
        }
        Ok(Some(s.to_owned()))
    }

    fn id(&self, key: &str, max: usize) -> Result<String, IngestError> {
        self.opt_id(key, max)?
            .ok_or_else(|| IngestError::missing_field(self.at(key)))
    }

    fn opt_text(&self, key: &str, max: usize) -> Result<Option<String>, IngestError> {
        Ok(self
            .opt_str(key)?
            .map(|s| tracepost_core::truncate_utf8(s, max).to_owned()))
    }

    fn opt_one_of(&self, key: &str, allowed: &[&str]) -> Result<Option<String>, IngestError> {
        match self.opt_str(key)? {
            None => Ok(None),
            Some(s) if allowed.contains(&s) => Ok(Some(s.to_owned())),
            Some(_) => Err(IngestError::invalid_field(
                self.at(key),
                format!("must be one of {}", allowed.join(", ")),
            )),
        }
    }

    fn opt_bool(&self, key: &str) -> Result<Option<bool>, IngestError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(IngestError::invalid_field(
                self.at(key),
                "must be true or false",
            )),
        }
    }

    fn number(&self, key: &str) -> Result<f64, IngestError> {
        match self.get(key) {
            None => Err(IngestError::missing_field(self.at(key))),
            Some(Value::Number(n)) => n
                .as_f64()
                .filter(|f| f.is_finite())
                .ok_or_else(|| IngestError::invalid_field(self.at(key), "must be a finite number")),
            Some(_) => Err(IngestError::invalid_field(self.at(key), "must be a number")),
        }
    }

    /// Milliseconds since the epoch, 0 to year 9999.
    fn timestamp(&self, key: &str) -> Result<f64, IngestError> {
        let v = self.number(key)?;
        if !(0.0..=253_402_300_799_000.0).contains(&v) {
            return Err(IngestError::invalid_field(
                self.at(key),
                "must be milliseconds since 1970 (0 to year 9999)",
            ));
        }
        Ok(v)
    }

    fn opt_u32(&self, key: &str) -> Result<Option<u32>, IngestError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .map(Some)
                .ok_or_else(|| {
                    IngestError::invalid_field(self.at(key), "must be a whole number ≥ 0")
                }),
            Some(_) => Err(IngestError::invalid_field(self.at(key), "must be a number")),
        }
    }

    fn opt_obj(&self, key: &str) -> Result<Option<Obj<'a>>, IngestError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Obj::new(m, self.at(key)))),
            Some(_) => Err(IngestError::invalid_field(
                self.at(key),
                "must be an object",
            )),
        }
    }

    fn opt_props(&self, key: &str) -> Result<Option<Map<String, Value>>, IngestError> {
        let Some(o) = self.opt_obj(key)? else {
            return Ok(None);
        };
        let size = serde_json::to_vec(&Value::Object(o.map.clone()))
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > MAX_PROPS {
            return Err(IngestError::invalid_field(
                self.at(key),
                format!("must be at most {MAX_PROPS} bytes as JSON, not {size}"),
            ));
        }
        Ok(Some(o.map.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> (u16, String, Option<String>) {
        let e = parse_batch(body.as_bytes()).unwrap_err();
        (
            e.status().as_u16(),
            e.code().to_owned(),
            e.field().map(str::to_owned),
        )
    }

    const OK: &str = r#"{"batch_id":"b1","sent_at":1732900000000,"session_id":"s1",
        "page":{"url":"https://shop.example/a"},"utm":{"source":"news"},
        "events":[{"type":"pageview","ts":1732900000000,"url":"https://shop.example/a","nav":"load"},
                  {"type":"track","ts":1732900000001,"name":"signup","props":{"plan":"pro"}},
                  {"type":"error","ts":1,"message":"boom","stack":"Error: boom\n    at f (https://x/a.js:1:2)"},
                  {"type":"identify","ts":2,"user_id":"u1"},
                  {"type":"vital","ts":3,"name":"LCP","value":1234.5,"rating":"good"}]}"#;

    #[test]
    fn a_valid_batch_parses() {
        let b = parse_batch(OK.as_bytes()).unwrap();
        assert_eq!(b.events.len(), 5);
        assert_eq!(b.utm, vec![("source", "news".to_owned())]);
        assert!(matches!(&b.events[1], BrowserEvent::Track(t) if t.name == "signup"));
    }

    #[test]
    fn failures_name_their_field() {
        assert_eq!(err("{").1, "malformed_json");
        assert_eq!(err("[]"), (400, "invalid_field".into(), Some("".into())));
        assert_eq!(
            err("{}"),
            (400, "missing_field".into(), Some("/events".into()))
        );
        let no_id = OK.replace(r#""batch_id":"b1","#, "");
        assert_eq!(
            err(&no_id),
            (400, "missing_field".into(), Some("/batch_id".into()))
        );
        let bad_name = OK.replace(r#""name":"signup""#, r#""name":5"#);
        assert_eq!(
            err(&bad_name),
            (400, "invalid_field".into(), Some("/events/1/name".into()))
        );
        let bad_type = OK.replace(r#""type":"identify""#, r#""type":"nope""#);
        assert_eq!(err(&bad_type).2.as_deref(), Some("/events/3/type"));
        let long_id = OK.replace("\"b1\"", &format!("\"{}\"", "x".repeat(65)));
        assert_eq!(err(&long_id).2.as_deref(), Some("/batch_id"));
        let bad_vital = OK.replace(r#""name":"LCP""#, r#""name":"XYZ""#);
        assert_eq!(err(&bad_vital).2.as_deref(), Some("/events/4/name"));
        let too_many = format!(
            r#"{{"batch_id":"b","sent_at":1,"session_id":"s","events":[{}]}}"#,
            vec![r#"{"type":"identify","ts":1,"user_id":"u"}"#; 51].join(",")
        );
        assert_eq!(err(&too_many).2.as_deref(), Some("/events"));
        let bad_ts = OK.replace(r#""ts":2,"#, r#""ts":-5,"#);
        assert_eq!(err(&bad_ts).2.as_deref(), Some("/events/3/ts"));
        // A session id becomes part of replay keys and console URLs: markup or a path is a 400.
        for hostile in [r#"<img src=x>"#, "../x", "a b"] {
            let bad_session = OK.replace(
                r#""session_id":"s1""#,
                &format!("\"session_id\":{}", serde_json::to_string(hostile).unwrap()),
            );
            assert_eq!(
                err(&bad_session),
                (400, "invalid_field".into(), Some("/session_id".into())),
                "{hostile}"
            );
        }
    }
}
