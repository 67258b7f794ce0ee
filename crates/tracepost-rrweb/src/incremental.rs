//! `data` of an incremental snapshot (event type 3): one struct per `source`.
//!
//! Every struct keeps the fields it doesn't know in `extra`. Coordinates, scroll offsets and
//! media times are [`Number`]s: they may be fractional, and an integer stays an integer when
//! written back.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value};

use crate::codes::{
    CanvasContext, IncrementalSource, MediaInteractions, MouseInteractions, PointerTypes,
};
use crate::node::SerializedNode;
use crate::tagged;

/// `data` of an incremental snapshot, by `source` ([`IncrementalSource`]).
#[derive(Debug, Clone, PartialEq)]
pub enum IncrementalData {
    /// 0
    Mutation(Mutation),
    /// 1
    MouseMove(Positions),
    /// 2
    MouseInteraction(MouseInteraction),
    /// 3
    Scroll(Scroll),
    /// 4
    ViewportResize(ViewportResize),
    /// 5
    Input(Input),
    /// 6
    TouchMove(Positions),
    /// 7
    MediaInteraction(MediaInteraction),
    /// 8
    StyleSheetRule(StyleSheetRule),
    /// 9
    CanvasMutation(CanvasMutation),
    /// 10
    Font(Font),
    /// 11 (legacy)
    Log(Log),
    /// 12
    Drag(Positions),
    /// 13
    StyleDeclaration(StyleDeclaration),
    /// 14
    Selection(Selection),
    /// 15
    AdoptedStyleSheet(AdoptedStyleSheet),
    /// 16
    CustomElement(CustomElement),
    /// A `source` this version doesn't know, with the other fields as they came.
    Unknown(i64, Map<String, Value>),
}

impl IncrementalData {
    /// The `source`.
    pub fn source(&self) -> IncrementalSource {
        use IncrementalData as D;
        use IncrementalSource as S;
        match self {
            D::Mutation(_) => S::Mutation,
            D::MouseMove(_) => S::MouseMove,
            D::MouseInteraction(_) => S::MouseInteraction,
            D::Scroll(_) => S::Scroll,
            D::ViewportResize(_) => S::ViewportResize,
            D::Input(_) => S::Input,
            D::TouchMove(_) => S::TouchMove,
            D::MediaInteraction(_) => S::MediaInteraction,
            D::StyleSheetRule(_) => S::StyleSheetRule,
            D::CanvasMutation(_) => S::CanvasMutation,
            D::Font(_) => S::Font,
            D::Log(_) => S::Log,
            D::Drag(_) => S::Drag,
            D::StyleDeclaration(_) => S::StyleDeclaration,
            D::Selection(_) => S::Selection,
            D::AdoptedStyleSheet(_) => S::AdoptedStyleSheet,
            D::CustomElement(_) => S::CustomElement,
            D::Unknown(code, _) => S::Unknown(*code),
        }
    }
}

impl<'de> Deserialize<'de> for IncrementalData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use IncrementalData as I;
        let (code, map) = tagged::split(Value::deserialize(d)?, "source")?;
        Ok(match IncrementalSource::from_code(code) {
            IncrementalSource::Mutation => I::Mutation(tagged::typed(map)?),
            IncrementalSource::MouseMove => I::MouseMove(tagged::typed(map)?),
            IncrementalSource::MouseInteraction => I::MouseInteraction(tagged::typed(map)?),
            IncrementalSource::Scroll => I::Scroll(tagged::typed(map)?),
            IncrementalSource::ViewportResize => I::ViewportResize(tagged::typed(map)?),
            IncrementalSource::Input => I::Input(tagged::typed(map)?),
            IncrementalSource::TouchMove => I::TouchMove(tagged::typed(map)?),
            IncrementalSource::MediaInteraction => I::MediaInteraction(tagged::typed(map)?),
            IncrementalSource::StyleSheetRule => I::StyleSheetRule(tagged::typed(map)?),
            IncrementalSource::CanvasMutation => I::CanvasMutation(tagged::typed(map)?),
            IncrementalSource::Font => I::Font(tagged::typed(map)?),
            IncrementalSource::Log => I::Log(tagged::typed(map)?),
            IncrementalSource::Drag => I::Drag(tagged::typed(map)?),
            IncrementalSource::StyleDeclaration => I::StyleDeclaration(tagged::typed(map)?),
            IncrementalSource::Selection => I::Selection(tagged::typed(map)?),
            IncrementalSource::AdoptedStyleSheet => I::AdoptedStyleSheet(tagged::typed(map)?),
            IncrementalSource::CustomElement => I::CustomElement(tagged::typed(map)?),
            IncrementalSource::Unknown(code) => I::Unknown(code, map),
        })
    }
}

impl Serialize for IncrementalData {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use IncrementalData as I;
        let code = self.source().code();
        match self {
            I::Mutation(d) => tagged::write(s, "source", code, d),
            I::MouseMove(d) | I::TouchMove(d) | I::Drag(d) => tagged::write(s, "source", code, d),
            I::MouseInteraction(d) => tagged::write(s, "source", code, d),
            I::Scroll(d) => tagged::write(s, "source", code, d),
            I::ViewportResize(d) => tagged::write(s, "source", code, d),
            I::Input(d) => tagged::write(s, "source", code, d),
            I::MediaInteraction(d) => tagged::write(s, "source", code, d),
            I::StyleSheetRule(d) => tagged::write(s, "source", code, d),
            I::CanvasMutation(d) => tagged::write(s, "source", code, d),
            I::Font(d) => tagged::write(s, "source", code, d),
            I::Log(d) => tagged::write(s, "source", code, d),
            I::StyleDeclaration(d) => tagged::write(s, "source", code, d),
            I::Selection(d) => tagged::write(s, "source", code, d),
            I::AdoptedStyleSheet(d) => tagged::write(s, "source", code, d),
            I::CustomElement(d) => tagged::write(s, "source", code, d),
            I::Unknown(_, fields) => tagged::write_raw(s, "source", code, fields),
        }
    }
}

/// Source 0: DOM changes since the previous event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mutation {
    /// `texts`: text nodes whose content changed.
    #[serde(default)]
    pub texts: Vec<TextMutation>,
    /// `attributes`: elements whose attributes changed.
    #[serde(default)]
    pub attributes: Vec<AttributeMutation>,
    /// `removes`: nodes removed.
    #[serde(default)]
    pub removes: Vec<RemovedNode>,
    /// `adds`: nodes added, each with its subtree.
    #[serde(default)]
    pub adds: Vec<AddedNode>,
    /// `isAttachIframe`: the mutation attaches an iframe's document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_attach_iframe: Option<bool>,
    /// Other fields, as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One changed text node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextMutation {
    /// `id`: the text node.
    pub id: i64,
    /// `value`: the new text (`null` for none).
    pub value: Option<String>,
    /// Other fields, as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One element's changed attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttributeMutation {
    /// `id`: the element.
    pub id: i64,
    /// `attributes`: name → new value: a string, `null` (removed), or for `style` a diff
    /// object `{property: value | [value, priority] | false}`.
    pub attributes: Map<String, Value>,
    /// Other fields, as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One removed node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedNode {
    /// `parentId`.
    pub parent_id: i64,
    /// `id`.
    pub id: i64,
    /// `isShadow`: it was in a shadow root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_shadow: Option<bool>,
    /// Other fields, as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One added node and its subtree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddedNode {
    /// `parentId`.
    pub parent_id: i64,
    /// `nextId`: the next sibling (`null` when last).
    pub next_id: Option<i64>,
    /// `previousId` (legacy, ≤ 0.8): absent, `null` or an id.
    #[serde(
        default,
        deserialize_with = "tagged::present",
        skip_serializing_if = "Option::is_none"
    )]
    pub previous_id: Option<Option<i64>>,
    /// `node`: the serialized subtree.
    pub node: SerializedNode,
    /// Other fields, as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Sources 1 (MouseMove), 6 (TouchMove) and 12 (Drag): sampled pointer positions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Positions {
    /// `positions`, oldest first.
    pub positions: Vec<Position>,
    /// Other fields, as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One pointer position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Position {
    /// `x`: clientX, CSS pixels.
    pub x: Number,
    /// `y`: clientY, CSS pixels.
    pub y: Number,
    /// `id`: the node under the pointer (`-1` for none).
    pub id: i64,
    /// `timeOffset`: milliseconds relative to the event's timestamp (≤ 0).
    pub time_offset: Number,
    /// Other fields, as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Source 2: a click, focus, touch….
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MouseInteraction {
    /// `type`.
    #[serde(rename = "type")]
    pub kind: MouseInteractions,
    /// `id`: the target node (`-1` for none).
    pub id: i64,
    /// `x`: CSS pixels (absent for focus/blur).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<Number>,
    /// `y`: CSS pixels (absent for focus/blur).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<Number>,
    /// `pointerType` (2.0+), when not implied by the interaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer_type: Option<PointerTypes>,
    /// Other fields, as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Source 3: the document (`id` 1) or an element scrolled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scroll {
    /// `id`: the scrolled node.
    pub id: i64,
    /// `x`: scrollLeft, CSS pixels (may be fractional).
    pub x: Number,
    /// `y`: scrollTop, CSS pixels (may be fractional).
    pub y: Number,
    /// Other fields, as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Source 4: the viewport's new size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewportResize {
    /// `width`, CSS pixels.
    pub width: Number,
    /// `height`, CSS pixels.
    pub height: Number,
    /// Other fields, as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Source 5: an input's value (masked as `*`s where masking applies) or checked state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Input {
    /// `id`: the input.
    pub id: i64,
    /// `text`: the value.
    pub text: String,
    /// `isChecked`.
    pub is_checked: bool,
    /// `userTriggered` (only with `userTriggeredOnInput`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_triggered: Option<bool>,
    /// Other fields, as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Source 7: audio/video state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaInteraction {
    /// `type`.
    #[serde(rename = "type")]
    pub kind: MediaInteractions,
    /// `id`: the media element.
    pub id: i64,
    /// `currentTime`, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_time: Option<Number>,
    /// `volume`, 0–1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<Number>,
    /// `muted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muted: Option<bool>,
    /// `loop`.
    #[serde(default, rename = "loop", skip_serializing_if = "Option::is_none")]
    pub looped: Option<bool>,
    /// `playbackRate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playback_rate: Option<Number>,
    /// Other fields, as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Source 8: CSS rules inserted into or deleted from a stylesheet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StyleSheetRule {
    /// `id`: the owner `<style>`/`<link>` node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// `styleId`: a constructed stylesheet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style_id: Option<i64>,
    /// `adds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adds: Option<Vec<StyleRule>>,
    /// `removes`: `{index}` each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removes: Option<Vec<Value>>,
    /// `replace`: `CSSStyleSheet.replace()` text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace: Option<String>,
    /// `replaceSync`: `CSSStyleSheet.replaceSync()` text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replace_sync: Option<String>,
    /// Other fields, as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One CSS rule and where it goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StyleRule {
    /// `rule`: the CSS text.
    pub rule: String,
    /// `index`: an integer, or an integer path for nested rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<Value>,
    /// Other fields, as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Source 9: canvas drawing commands (only with `recordCanvas`): batched in `commands`, or
/// one command inline (rrweb 1.x).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CanvasMutation {
    /// `id`: the canvas.
    pub id: i64,
    /// `type`: the context.
    #[serde(rename = "type")]
    pub kind: CanvasContext,
    /// `commands`: `{property, args, setter?}` each (args kept as JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<Vec<Value>>,
    /// Other fields (the inline `property`/`args`/`setter`), as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Source 10: a web font loaded (only with `collectFonts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Font {
    /// `family`.
    pub family: String,
    /// `fontSource`: a URL, or a JSON byte array when `buffer`.
    pub font_source: String,
    /// `buffer`.
    pub buffer: bool,
    /// `descriptors`: `FontFaceDescriptors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptors: Option<Map<String, Value>>,
    /// Other fields, as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Source 11: console output (rrweb ≤ 0.9).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Log {
    /// `level`.
    pub level: String,
    /// `trace`.
    #[serde(default)]
    pub trace: Vec<Value>,
    /// `payload`.
    #[serde(default)]
    pub payload: Vec<Value>,
    /// Other fields, as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Source 13: one CSS declaration set or removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StyleDeclaration {
    /// `id`: the owner node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// `styleId`: a constructed stylesheet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style_id: Option<i64>,
    /// `index`: the rule's path.
    pub index: Vec<i64>,
    /// `set`: `{property, value, priority?}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<Value>,
    /// `remove`: `{property}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove: Option<Value>,
    /// Other fields, as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Source 14: the text selection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    /// `ranges`.
    pub ranges: Vec<SelectionRange>,
    /// Other fields, as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One selected range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SelectionRange {
    /// `start`: a node id.
    pub start: i64,
    /// `startOffset`.
    pub start_offset: i64,
    /// `end`: a node id.
    pub end: i64,
    /// `endOffset`.
    pub end_offset: i64,
    /// Other fields, as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Source 15: constructed stylesheets adopted by a document or shadow root.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdoptedStyleSheet {
    /// `id`: the host.
    pub id: i64,
    /// `styleIds`.
    pub style_ids: Vec<i64>,
    /// `styles`: `{styleId, rules}` for sheets not sent before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub styles: Option<Vec<Value>>,
    /// Other fields, as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Source 16: `customElements.define()`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomElement {
    /// `define`: `{name}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub define: Option<Value>,
    /// Other fields, as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
