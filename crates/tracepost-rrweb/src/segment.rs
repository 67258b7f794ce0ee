//! Parsing an uploaded segment (a JSON array of events) with limits, and errors that name
//! the event and the field at fault.

use serde::de::Deserialize;
use serde_json::value::RawValue;

use crate::event::Event;

/// The limits [`parse_segment`] enforces before and while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest segment accepted, in bytes of (decompressed) JSON. Default 100 MiB: Sentry's
    /// `max_replay_uncompressed_size`.
    pub max_bytes: usize,
    /// Deepest JSON nesting accepted (objects and arrays). Default 1 000: a DOM level costs
    /// two JSON levels (the node object and its `childNodes` array), so this is about 500
    /// DOM levels, which Blink's HTML parser caps at 512.
    pub max_depth: usize,
    /// Most events in one segment. Default 1 000 000.
    pub max_events: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 100 << 20,
            max_depth: 1_000,
            max_events: 1_000_000,
        }
    }
}

impl Limits {
    /// Sets [`max_bytes`](Self::max_bytes).
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n;
        self
    }

    /// Sets [`max_depth`](Self::max_depth).
    pub fn max_depth(mut self, n: usize) -> Self {
        self.max_depth = n;
        self
    }

    /// Sets [`max_events`](Self::max_events).
    pub fn max_events(mut self, n: usize) -> Self {
        self.max_events = n;
        self
    }
}

/// Why a segment was refused. The `Display` text is one line meant for a 4xx body; the
/// variants carry the same facts for a JSON answer (see [`index`](Self::index) and
/// [`path`](Self::path)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentError {
    /// Larger than [`Limits::max_bytes`].
    #[error("segment is {size} bytes, more than the limit of {max}")]
    TooLarge {
        /// The segment's size in bytes.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// Nested deeper than [`Limits::max_depth`].
    #[error("JSON nested deeper than {max} levels (at byte {offset})")]
    TooDeep {
        /// The limit.
        max: usize,
        /// Byte offset of the bracket that went past it.
        offset: usize,
    },
    /// Not JSON at all.
    #[error("not valid JSON: {message} (line {line}, column {column})")]
    Syntax {
        /// What the JSON parser said.
        message: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// JSON, but not an array.
    #[error("expected a JSON array of rrweb events, found {found}")]
    NotArray {
        /// `an object`, `a string`, …
        found: &'static str,
    },
    /// An empty array.
    #[error("the segment holds no events")]
    Empty,
    /// More than [`Limits::max_events`] events.
    #[error("the segment holds {count} events, more than the limit of {max}")]
    TooManyEvents {
        /// How many.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// One event is not a valid rrweb event.
    #[error("event {index}: {path}: {message}")]
    Event {
        /// Its 0-based position in the array.
        index: usize,
        /// The field at fault, from the event's root: `timestamp`, `data.source`,
        /// `data.adds[0].node.childNodes[2]`, or `.` for the event itself.
        path: String,
        /// What is wrong with it.
        message: String,
    },
}

impl SegmentError {
    /// The position of the event at fault, for [`SegmentError::Event`].
    pub fn index(&self) -> Option<usize> {
        match self {
            SegmentError::Event { index, .. } => Some(*index),
            _ => None,
        }
    }

    /// The path of the field at fault inside its event, for [`SegmentError::Event`].
    pub fn path(&self) -> Option<&str> {
        match self {
            SegmentError::Event { path, .. } => Some(path),
            _ => None,
        }
    }
}

/// Parses an uploaded segment: a JSON array of rrweb events.
///
/// Checks, in order: the size ([`Limits::max_bytes`]), the nesting depth
/// ([`Limits::max_depth`], by a scan that allocates nothing), that the JSON is an array,
/// non-empty and not longer than [`Limits::max_events`], and that every element is an
/// [`Event`]. Unknown event types, sources, node types and fields are accepted and kept.
/// Deep trees are parsed on a stack sized for the measured depth, so no input overflows
/// the caller's stack.
///
/// ```
/// use tracepost_rrweb::{parse_segment, Limits, SegmentError};
///
/// let events = parse_segment(br#"[{"type":4,"data":{"href":"https://a.test/","width":1280,"height":720},"timestamp":1700000000000}]"#, &Limits::default()).unwrap();
/// assert_eq!(events.len(), 1);
///
/// let e = parse_segment(br#"[{"type":3,"data":{"source":3,"id":1,"x":"left","y":0},"timestamp":1}]"#, &Limits::default()).unwrap_err();
/// assert_eq!(e.index(), Some(0));
/// assert_eq!(e.path(), Some("data.x"));
/// ```
pub fn parse_segment(json: &[u8], limits: &Limits) -> Result<Vec<Event>, SegmentError> {
    if json.len() > limits.max_bytes {
        return Err(SegmentError::TooLarge {
            size: json.len(),
            max: limits.max_bytes,
        });
    }
    let depth = check_depth(json, limits.max_depth)?;
    match json.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => {}
        Some(other) => {
            return Err(SegmentError::NotArray {
                found: match other {
                    b'{' => "an object",
                    b'"' => "a string",
                    b't' | b'f' => "a boolean",
                    b'n' => "null",
                    b'-' | b'0'..=b'9' => "a number",
                    _ => return Err(syntax(serde_json::from_slice::<&RawValue>(json).err())),
                },
            })
        }
        None => return Err(SegmentError::NotArray { found: "nothing" }),
    }
    // 16 KiB of stack per level of nesting covers serde_json's recursion in debug builds;
    // the memory is only committed as it is used.
    let stack = (1 << 20) + depth * (16 << 10);
    stacker::grow(stack, || parse_events(json, limits))
}

fn parse_events(json: &[u8], limits: &Limits) -> Result<Vec<Event>, SegmentError> {
    let mut de = serde_json::Deserializer::from_slice(json);
    de.disable_recursion_limit();
    let raw = Vec::<&RawValue>::deserialize(&mut de).map_err(|e| syntax(Some(e)))?;
    de.end().map_err(|e| syntax(Some(e)))?;
    if raw.is_empty() {
        return Err(SegmentError::Empty);
    }
    if raw.len() > limits.max_events {
        return Err(SegmentError::TooManyEvents {
            count: raw.len(),
            max: limits.max_events,
        });
    }
    raw.iter()
        .enumerate()
        .map(|(index, raw)| {
            let mut de = serde_json::Deserializer::from_str(raw.get());
            de.disable_recursion_limit();
            serde_path_to_error::deserialize::<_, Event>(&mut de).map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().to_string();
                split_path(index, path, strip_position(&message))
            })
        })
        .collect()
}

/// Errors raised after a whole event was read carry their own path in front
/// (`data.adds[0]: …`); move it into the path.
fn split_path(index: usize, path: String, message: &str) -> SegmentError {
    if path == "." {
        if let Some((head, rest)) = message.split_once(": ") {
            if head.starts_with("data") && !head.contains(' ') {
                return SegmentError::Event {
                    index,
                    path: head.to_owned(),
                    message: rest.to_owned(),
                };
            }
        }
    }
    SegmentError::Event {
        index,
        path,
        message: message.to_owned(),
    }
}

/// serde_json appends ` at line 1 column 42` (of the event's own text): not useful here.
fn strip_position(message: &str) -> &str {
    match message.rfind(" at line ") {
        Some(i) if message[i..].contains(" column ") => &message[..i],
        _ => message,
    }
}

fn syntax(e: Option<serde_json::Error>) -> SegmentError {
    match e {
        Some(e) => {
            let text = e.to_string();
            SegmentError::Syntax {
                message: strip_position(&text).to_owned(),
                line: e.line(),
                column: e.column(),
            }
        }
        None => SegmentError::Syntax {
            message: "unexpected input".to_owned(),
            line: 1,
            column: 1,
        },
    }
}

/// Returns the deepest nesting of objects and arrays, or the offset where it passes `max`.
/// Brackets inside strings don't count.
fn check_depth(json: &[u8], max: usize) -> Result<usize, SegmentError> {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for (offset, &b) in json.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return Err(SegmentError::TooDeep { max, offset });
                }
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(deepest)
}

/// Serializes events as a segment (a JSON array), on a stack sized for deep trees.
pub fn to_segment_json(events: &[Event]) -> Result<Vec<u8>, serde_json::Error> {
    stacker::grow(64 << 20, || serde_json::to_vec(events))
}
