//! The serialized DOM tree of a full snapshot or an added node (rrweb-snapshot's
//! `serializedNodeWithId`).

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::codes::NodeType;

/// Stack kept free before descending one more level of the tree, and the size of the
/// segment added when less is left: a deep DOM never overflows the caller's stack.
const RED_ZONE: usize = 64 * 1024;
const GROW_BY: usize = 1024 * 1024;

/// One node of the serialized DOM, with its subtree.
///
/// The JSON is an object tagged by the integer `type` ([`NodeType`]); `id` is unique within
/// one page load (signed: rrweb uses `-1`/`-2` internally). Fields this version doesn't know
/// are kept in [`extra`](Self::extra) and written back unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct SerializedNode {
    /// `id`: the node's id in this page load.
    pub id: i64,
    /// What kind of node, with its own fields.
    pub kind: NodeKind,
    /// `rootId`: the id of the iframe document the node belongs to (absent for the top
    /// document).
    pub root_id: Option<i64>,
    /// `isShadowHost`: the node hosts a shadow root.
    pub is_shadow_host: Option<bool>,
    /// `isShadow`: the node is a child of a shadow root.
    pub is_shadow: Option<bool>,
    /// Any other field, as it came.
    pub extra: Map<String, Value>,
}

/// The kind of a [`SerializedNode`] and the fields that kind has.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// `type` 0.
    Document {
        /// `childNodes`.
        child_nodes: Vec<SerializedNode>,
        /// `compatMode`, only when not `CSS1Compat` (e.g. `BackCompat`).
        compat_mode: Option<String>,
    },
    /// `type` 1: `<!DOCTYPE …>`.
    DocumentType {
        /// `name` (`html`).
        name: String,
        /// `publicId` (may be empty).
        public_id: String,
        /// `systemId` (may be empty).
        system_id: String,
    },
    /// `type` 2.
    Element {
        /// `tagName`, lower case.
        tag_name: String,
        /// `attributes`: strings mostly, but `true`/`false`/numbers occur (`checked`,
        /// `rr_mediaVolume`, `rr_scrollTop`), and rrweb's own keys (`_cssText`, `rr_dataURL`,
        /// `rr_width`, …).
        attributes: Map<String, Value>,
        /// `childNodes`.
        child_nodes: Vec<SerializedNode>,
        /// `isSVG`.
        is_svg: Option<bool>,
        /// `needBlock` (normally removed before emitting).
        need_block: Option<bool>,
        /// `isCustom`: a custom element (2.0+).
        is_custom: Option<bool>,
    },
    /// `type` 3.
    Text {
        /// `textContent` (masked text is `*`s; `<script>` text is `SCRIPT_PLACEHOLDER`).
        text_content: String,
        /// `isStyle`: the text of a `<style>` (rrweb 1.x inlines CSS here).
        is_style: Option<bool>,
    },
    /// `type` 4.
    Cdata {
        /// `textContent` (always empty).
        text_content: String,
    },
    /// `type` 5.
    Comment {
        /// `textContent`.
        text_content: String,
    },
    /// A `type` this version doesn't know; its fields are in [`SerializedNode::extra`].
    Unknown(i64),
}

impl SerializedNode {
    /// The node's [`NodeType`].
    pub fn node_type(&self) -> NodeType {
        match &self.kind {
            NodeKind::Document { .. } => NodeType::Document,
            NodeKind::DocumentType { .. } => NodeType::DocumentType,
            NodeKind::Element { .. } => NodeType::Element,
            NodeKind::Text { .. } => NodeType::Text,
            NodeKind::Cdata { .. } => NodeType::Cdata,
            NodeKind::Comment { .. } => NodeType::Comment,
            NodeKind::Unknown(code) => NodeType::Unknown(*code),
        }
    }

    /// The children (empty for nodes that have none).
    pub fn children(&self) -> &[SerializedNode] {
        match &self.kind {
            NodeKind::Document { child_nodes, .. } | NodeKind::Element { child_nodes, .. } => {
                child_nodes
            }
            _ => &[],
        }
    }

    /// Calls `f` on this node and every node below it, depth first, without recursion.
    pub fn walk<'a>(&'a self, mut f: impl FnMut(&'a SerializedNode)) {
        let mut stack = vec![self];
        while let Some(node) = stack.pop() {
            f(node);
            stack.extend(node.children().iter().rev());
        }
    }
}

/// Every field any node kind has, read in one pass in whatever order they come.
#[derive(Default)]
struct Fields {
    node_type: Option<i64>,
    id: Option<i64>,
    root_id: Option<i64>,
    is_shadow_host: Option<bool>,
    is_shadow: Option<bool>,
    child_nodes: Option<Vec<SerializedNode>>,
    compat_mode: Option<String>,
    name: Option<String>,
    public_id: Option<String>,
    system_id: Option<String>,
    tag_name: Option<String>,
    attributes: Option<Map<String, Value>>,
    is_svg: Option<bool>,
    need_block: Option<bool>,
    is_custom: Option<bool>,
    text_content: Option<String>,
    is_style: Option<bool>,
    extra: Map<String, Value>,
}

impl Fields {
    /// Puts a field the node's kind doesn't use back among the unknown ones.
    fn keep<T: Serialize>(extra: &mut Map<String, Value>, key: &str, v: Option<T>) {
        if let Some(v) = v {
            if let Ok(v) = serde_json::to_value(v) {
                extra.insert(key.to_owned(), v);
            }
        }
    }

    fn into_node<E: de::Error>(self) -> Result<SerializedNode, E> {
        let code = self.node_type.ok_or_else(|| E::missing_field("type"))?;
        let id = self.id.ok_or_else(|| E::missing_field("id"))?;
        let mut extra = self.extra;
        let req = |v: Option<String>, name: &'static str| v.ok_or_else(|| E::missing_field(name));
        let (
            mut child_nodes,
            mut compat_mode,
            mut name,
            mut public_id,
            mut system_id,
            mut tag_name,
            mut attributes,
            mut is_svg,
            mut need_block,
            mut is_custom,
            mut text_content,
            mut is_style,
        ) = (
            self.child_nodes,
            self.compat_mode,
            self.name,
            self.public_id,
            self.system_id,
            self.tag_name,
            self.attributes,
            self.is_svg,
            self.need_block,
            self.is_custom,
            self.text_content,
            self.is_style,
        );
        let kind = match NodeType::from_code(code) {
            NodeType::Document => NodeKind::Document {
                child_nodes: child_nodes
                    .take()
                    .ok_or_else(|| E::missing_field("childNodes"))?,
                compat_mode: compat_mode.take(),
            },
            NodeType::DocumentType => NodeKind::DocumentType {
                name: req(name.take(), "name")?,
                public_id: req(public_id.take(), "publicId")?,
                system_id: req(system_id.take(), "systemId")?,
            },
            NodeType::Element => NodeKind::Element {
                tag_name: req(tag_name.take(), "tagName")?,
                attributes: attributes
                    .take()
                    .ok_or_else(|| E::missing_field("attributes"))?,
                child_nodes: child_nodes
                    .take()
                    .ok_or_else(|| E::missing_field("childNodes"))?,
                is_svg: is_svg.take(),
                need_block: need_block.take(),
                is_custom: is_custom.take(),
            },
            NodeType::Text => NodeKind::Text {
                text_content: req(text_content.take(), "textContent")?,
                is_style: is_style.take(),
            },
            NodeType::Cdata => NodeKind::Cdata {
                text_content: req(text_content.take(), "textContent")?,
            },
            NodeType::Comment => NodeKind::Comment {
                text_content: req(text_content.take(), "textContent")?,
            },
            NodeType::Unknown(code) => NodeKind::Unknown(code),
        };
        Self::keep(&mut extra, "childNodes", child_nodes);
        Self::keep(&mut extra, "compatMode", compat_mode);
        Self::keep(&mut extra, "name", name);
        Self::keep(&mut extra, "publicId", public_id);
        Self::keep(&mut extra, "systemId", system_id);
        Self::keep(&mut extra, "tagName", tag_name);
        Self::keep(&mut extra, "attributes", attributes);
        Self::keep(&mut extra, "isSVG", is_svg);
        Self::keep(&mut extra, "needBlock", need_block);
        Self::keep(&mut extra, "isCustom", is_custom);
        Self::keep(&mut extra, "textContent", text_content);
        Self::keep(&mut extra, "isStyle", is_style);
        Ok(SerializedNode {
            id,
            kind,
            root_id: self.root_id,
            is_shadow_host: self.is_shadow_host,
            is_shadow: self.is_shadow,
            extra,
        })
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = SerializedNode;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a serialized node (an object with an integer `type` and `id`)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<SerializedNode, A::Error> {
        let mut f = Fields::default();
        while let Some(key) = m.next_key::<String>()? {
            match key.as_str() {
                "type" => f.node_type = Some(m.next_value()?),
                "id" => f.id = Some(m.next_value()?),
                "rootId" => f.root_id = Some(m.next_value()?),
                "isShadowHost" => f.is_shadow_host = Some(m.next_value()?),
                "isShadow" => f.is_shadow = Some(m.next_value()?),
                "childNodes" => f.child_nodes = Some(m.next_value()?),
                "compatMode" => f.compat_mode = Some(m.next_value()?),
                "name" => f.name = Some(m.next_value()?),
                "publicId" => f.public_id = Some(m.next_value()?),
                "systemId" => f.system_id = Some(m.next_value()?),
                "tagName" => f.tag_name = Some(m.next_value()?),
                "attributes" => f.attributes = Some(m.next_value()?),
                "isSVG" => f.is_svg = Some(m.next_value()?),
                "needBlock" => f.need_block = Some(m.next_value()?),
                "isCustom" => f.is_custom = Some(m.next_value()?),
                "textContent" => f.text_content = Some(m.next_value()?),
                "isStyle" => f.is_style = Some(m.next_value()?),
                _ => {
                    let v: Value = m.next_value()?;
                    f.extra.insert(key, v);
                }
            }
        }
        f.into_node()
    }
}

impl<'de> Deserialize<'de> for SerializedNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        stacker::maybe_grow(RED_ZONE, GROW_BY, || d.deserialize_map(NodeVisitor))
    }
}

impl Serialize for SerializedNode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        stacker::maybe_grow(RED_ZONE, GROW_BY, || self.serialize_flat(s))
    }
}

impl SerializedNode {
    fn serialize_flat<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("type", &self.node_type().code())?;
        match &self.kind {
            NodeKind::Document {
                child_nodes,
                compat_mode,
            } => {
                m.serialize_entry("childNodes", child_nodes)?;
                if let Some(c) = compat_mode {
                    m.serialize_entry("compatMode", c)?;
                }
            }
            NodeKind::DocumentType {
                name,
                public_id,
                system_id,
            } => {
                m.serialize_entry("name", name)?;
                m.serialize_entry("publicId", public_id)?;
                m.serialize_entry("systemId", system_id)?;
            }
            NodeKind::Element {
                tag_name,
                attributes,
                child_nodes,
                is_svg,
                need_block,
                is_custom,
            } => {
                m.serialize_entry("tagName", tag_name)?;
                m.serialize_entry("attributes", attributes)?;
                m.serialize_entry("childNodes", child_nodes)?;
                for (key, v) in [
                    ("isSVG", is_svg),
                    ("needBlock", need_block),
                    ("isCustom", is_custom),
                ] {
                    if let Some(v) = v {
                        m.serialize_entry(key, v)?;
                    }
                }
            }
            NodeKind::Text {
                text_content,
                is_style,
            } => {
                m.serialize_entry("textContent", text_content)?;
                if let Some(v) = is_style {
                    m.serialize_entry("isStyle", v)?;
                }
            }
            NodeKind::Cdata { text_content } | NodeKind::Comment { text_content } => {
                m.serialize_entry("textContent", text_content)?;
            }
            NodeKind::Unknown(_) => {}
        }
        m.serialize_entry("id", &self.id)?;
        if let Some(v) = self.root_id {
            m.serialize_entry("rootId", &v)?;
        }
        if let Some(v) = self.is_shadow_host {
            m.serialize_entry("isShadowHost", &v)?;
        }
        if let Some(v) = self.is_shadow {
            m.serialize_entry("isShadow", &v)?;
        }
        for (k, v) in &self.extra {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}
