//! Serde types for [rrweb](https://github.com/rrweb-io/rrweb) session-replay events, and a
//! validating parser for an uploaded segment.
//!
//! An rrweb recording is a JSON array of events `{type, data, timestamp}`. [`Event`] covers
//! every event type ([`EventType`], 0–8 as of rrweb 2.2), every incremental source
//! ([`IncrementalSource`], 0–16) and the serialized DOM tree ([`SerializedNode`]).
//! It never rejects a newer recorder's output: unknown types, sources and node types become
//! `Unknown` variants, unknown fields go into each struct's `extra` map, and numbers are
//! kept as they came (integer or fraction), so parsing then serializing gives back equal
//! JSON. The tests check that on recordings made with rrweb 1.x and 2.x in Chromium.
//!
//! [`parse_segment`] is what an upload route calls: size and depth limits first, then
//! errors that name the event and the field (`event 3: data.positions[0].x: invalid type:
//! string "left", expected a JSON number`).
//!
//! ```
//! use tracepost_rrweb::{parse_segment, EventData, IncrementalData, Limits};
//!
//! let json = br#"[
//!   {"type":4,"data":{"href":"https://shop.test/","width":1280,"height":720},"timestamp":1700000000000},
//!   {"type":3,"data":{"source":2,"type":2,"id":42,"x":10.5,"y":20},"timestamp":1700000000100,"_sid":7}
//! ]"#;
//! let events = parse_segment(json, &Limits::default()).unwrap();
//! let EventData::IncrementalSnapshot(IncrementalData::MouseInteraction(click)) = &events[1].data else {
//!     panic!("a click")
//! };
//! assert_eq!(click.id, 42);
//! assert_eq!(events[1].extra["_sid"], 7);
//! let back: serde_json::Value = serde_json::to_value(&events).unwrap();
//! assert_eq!(back, serde_json::from_slice::<serde_json::Value>(json).unwrap());
//! ```
//!
//! The format reference: `@rrweb/types` and `rrweb-snapshot`'s `types.ts`.

mod codes;
mod event;
mod incremental;
mod node;
mod segment;
mod tagged;

pub use codes::{
    CanvasContext, EventType, IncrementalSource, MediaInteractions, MouseInteractions, NodeType,
    PointerTypes,
};
pub use event::{Annotation, Asset, Custom, Event, EventData, FullSnapshot, Meta, Offset, Plugin};
pub use incremental::{
    AddedNode, AdoptedStyleSheet, AttributeMutation, CanvasMutation, CustomElement, Font,
    IncrementalData, Input, Log, MediaInteraction, MouseInteraction, Mutation, Position, Positions,
    RemovedNode, Scroll, Selection, SelectionRange, StyleDeclaration, StyleRule, StyleSheetRule,
    TextMutation, ViewportResize,
};
pub use node::{NodeKind, SerializedNode};
pub use segment::{parse_segment, to_segment_json, Limits, SegmentError};
