//! The top-level event and the `data` of the non-incremental event types.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value};

use crate::codes::EventType;
use crate::incremental::IncrementalData;
use crate::node::SerializedNode;
use crate::tagged;

/// One rrweb event: `{type, data, timestamp}` plus whatever else the producer added.
///
/// `timestamp` is milliseconds since the Unix epoch (`Date.now()` in the recorder; some
/// producers write fractions, so it is a [`Number`] and is written back as it came).
/// Top-level keys other than `type`, `data`, `timestamp` and `delay` (`_sid`, `v`,
/// `sessionId`, …) are kept in [`extra`](Self::extra).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `type` and `data`.
    pub data: EventData,
    /// `timestamp`: milliseconds since the Unix epoch.
    pub timestamp: Number,
    /// `delay`: set by the replayer on events re-exported after playback.
    pub delay: Option<Number>,
    /// Other top-level fields, as they came.
    pub extra: Map<String, Value>,
}

impl Event {
    /// The event's `type`.
    pub fn event_type(&self) -> EventType {
        self.data.event_type()
    }

    /// `timestamp` as milliseconds (fractions kept).
    pub fn timestamp_ms(&self) -> f64 {
        self.timestamp.as_f64().unwrap_or(0.0)
    }
}

/// `data` of an event, by `type` ([`EventType`]).
#[derive(Debug, Clone, PartialEq)]
pub enum EventData {
    /// 0: `{}`.
    DomContentLoaded(Map<String, Value>),
    /// 1: `{}`.
    Load(Map<String, Value>),
    /// 2
    FullSnapshot(FullSnapshot),
    /// 3
    IncrementalSnapshot(IncrementalData),
    /// 4
    Meta(Meta),
    /// 5
    Custom(Custom),
    /// 6
    Plugin(Plugin),
    /// 7
    Asset(Asset),
    /// 8
    Annotation(Annotation),
    /// A `type` this version doesn't know, with its `data` as it came.
    Unknown(i64, Value),
}

impl EventData {
    /// The event `type` this data belongs to.
    pub fn event_type(&self) -> EventType {
        match self {
            EventData::DomContentLoaded(_) => EventType::DomContentLoaded,
            EventData::Load(_) => EventType::Load,
            EventData::FullSnapshot(_) => EventType::FullSnapshot,
            EventData::IncrementalSnapshot(_) => EventType::IncrementalSnapshot,
            EventData::Meta(_) => EventType::Meta,
            EventData::Custom(_) => EventType::Custom,
            EventData::Plugin(_) => EventType::Plugin,
            EventData::Asset(_) => EventType::Asset,
            EventData::Annotation(_) => EventType::Annotation,
            EventData::Unknown(code, _) => EventType::Unknown(*code),
        }
    }

    fn parse<E: de::Error>(code: i64, data: Value) -> Result<EventData, E> {
        let object = |data: Value| match data {
            Value::Object(map) => Ok(map),
            other => Err(E::custom(format_args!(
                "expected an object, found {}",
                tagged::kind_of(&other)
            ))),
        };
        Ok(match EventType::from_code(code) {
            EventType::DomContentLoaded => EventData::DomContentLoaded(object(data)?),
            EventType::Load => EventData::Load(object(data)?),
            EventType::FullSnapshot => EventData::FullSnapshot(tagged::typed(object(data)?)?),
            EventType::IncrementalSnapshot => EventData::IncrementalSnapshot(
                IncrementalData::deserialize(data).map_err(E::custom)?,
            ),
            EventType::Meta => EventData::Meta(tagged::typed(object(data)?)?),
            EventType::Custom => EventData::Custom(tagged::typed(object(data)?)?),
            EventType::Plugin => EventData::Plugin(tagged::typed(object(data)?)?),
            EventType::Asset => EventData::Asset(tagged::typed(object(data)?)?),
            EventType::Annotation => EventData::Annotation(tagged::typed(object(data)?)?),
            EventType::Unknown(code) => EventData::Unknown(code, data),
        })
    }
}

/// Type 4: the page's URL and viewport, emitted before every full snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// `href`: `location.href`.
    pub href: String,
    /// `width`: viewport width, CSS pixels.
    pub width: Number,
    /// `height`: viewport height, CSS pixels.
    pub height: Number,
    /// Other fields, as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Type 2: the whole DOM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FullSnapshot {
    /// `node`: the document (id 1 on a page's first snapshot).
    pub node: SerializedNode,
    /// `initialOffset`: the window's scroll position.
    pub initial_offset: Offset,
    /// Other fields, as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A scroll position, CSS pixels (may be fractional).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offset {
    /// `top`.
    pub top: Number,
    /// `left`.
    pub left: Number,
    /// Other fields, as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Type 5: `record.addCustomEvent(tag, payload)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Custom {
    /// `tag`.
    pub tag: String,
    /// `payload`: any JSON; absent when the caller passed `undefined`.
    #[serde(
        default,
        deserialize_with = "tagged::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub payload: Option<Value>,
    /// Other fields, as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Type 6: a record plugin's event (`rrweb/console@1`, `rrweb/network@1`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plugin {
    /// `plugin`: the plugin's name and version.
    pub plugin: String,
    /// `payload`: defined by the plugin.
    #[serde(
        default,
        deserialize_with = "tagged::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub payload: Option<Value>,
    /// Other fields, as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Type 7: an asset (`{url, payload}` or `{url, failed}`; rrweb 2.0+).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Asset {
    /// `url`.
    pub url: String,
    /// Other fields (`payload`, `failed`, `timestamp`), as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Type 8: `record.addAnnotation()` (rrweb 2.2+): `{type: "caption" | "timelineMarker", text}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    /// `type`: `caption` or `timelineMarker`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Other fields (`text`), as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Event;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an rrweb event (an object with `type`, `data` and `timestamp`)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Event, A::Error> {
        let (mut code, mut data, mut timestamp, mut delay) = (None, None, None, None);
        let mut extra = Map::new();
        while let Some(key) = m.next_key::<String>()? {
            match key.as_str() {
                "type" => code = Some(m.next_value::<i64>()?),
                "data" => data = Some(m.next_value::<Value>()?),
                "timestamp" => timestamp = Some(m.next_value::<Number>()?),
                "delay" => delay = Some(m.next_value::<Number>()?),
                _ => {
                    let v: Value = m.next_value()?;
                    extra.insert(key, v);
                }
            }
        }
        let code = code.ok_or_else(|| de::Error::missing_field("type"))?;
        let timestamp = timestamp.ok_or_else(|| de::Error::missing_field("timestamp"))?;
        let data = data.ok_or_else(|| de::Error::missing_field("data"))?;
        let data = EventData::parse::<serde_json::Error>(code, data)
            .map_err(|e| de::Error::custom(under_data(&e.to_string())))?;
        Ok(Event {
            data,
            timestamp,
            delay,
            extra,
        })
    }
}

/// Joins a nested error's path to `data`: `data.adds[0].node: …`, or `data: …` when the
/// error is about `data` itself. Paths from `tagged::typed` are a field path (no spaces)
/// followed by `": "`.
fn under_data(msg: &str) -> String {
    let has_path = msg
        .split_once(": ")
        .is_some_and(|(head, _)| !head.is_empty() && !head.contains(' '));
    if has_path {
        format!("data.{msg}")
    } else {
        format!("data: {msg}")
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EventVisitor)
    }
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("type", &self.event_type().code())?;
        match &self.data {
            EventData::DomContentLoaded(d) | EventData::Load(d) => m.serialize_entry("data", d)?,
            EventData::FullSnapshot(d) => m.serialize_entry("data", d)?,
            EventData::IncrementalSnapshot(d) => m.serialize_entry("data", d)?,
            EventData::Meta(d) => m.serialize_entry("data", d)?,
            EventData::Custom(d) => m.serialize_entry("data", d)?,
            EventData::Plugin(d) => m.serialize_entry("data", d)?,
            EventData::Asset(d) => m.serialize_entry("data", d)?,
            EventData::Annotation(d) => m.serialize_entry("data", d)?,
            EventData::Unknown(_, d) => m.serialize_entry("data", d)?,
        }
        m.serialize_entry("timestamp", &self.timestamp)?;
        if let Some(d) = &self.delay {
            m.serialize_entry("delay", d)?;
        }
        for (k, v) in &self.extra {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}
