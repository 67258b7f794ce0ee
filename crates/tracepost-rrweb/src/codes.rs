//! The integer enums of the format: each keeps values it doesn't know as `Unknown(code)`, so a
//! newer recorder's value passes through unchanged.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $code:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A value this version doesn't know (a newer rrweb), kept as is.
            Unknown(i64),
        }

        impl $name {
            /// The integer written in the JSON.
            pub fn code(self) -> i64 {
                match self {
                    $($name::$variant => $code,)*
                    $name::Unknown(code) => code,
                }
            }

            /// The value for an integer from the JSON (`Unknown` for values this version
            /// doesn't know).
            pub fn from_code(code: i64) -> Self {
                match code {
                    $($code => $name::$variant,)*
                    other => $name::Unknown(other),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_i64(self.code())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                i64::deserialize(d).map($name::from_code)
            }
        }
    };
}

code_enum! {
    /// rrweb's `EventType`: the top-level `type` of an event (`@rrweb/types`).
    EventType {
        /// 0: the document's `DOMContentLoaded` fired after recording started.
        DomContentLoaded = 0,
        /// 1: the window's `load` fired after recording started.
        Load = 1,
        /// 2: a serialized copy of the whole DOM.
        FullSnapshot = 2,
        /// 3: a change since the last snapshot (see [`IncrementalSource`]).
        IncrementalSnapshot = 3,
        /// 4: URL and viewport size, before every full snapshot.
        Meta = 4,
        /// 5: `record.addCustomEvent(tag, payload)`.
        Custom = 5,
        /// 6: a record plugin's event (console, network, …).
        Plugin = 6,
        /// 7: an asset (rrweb 2.0+; no recorder emits it yet).
        Asset = 7,
        /// 8: `record.addAnnotation()` (rrweb 2.2+).
        Annotation = 8,
    }
}

code_enum! {
    /// rrweb's `IncrementalSource`: `data.source` of an incremental snapshot.
    IncrementalSource {
        /// 0: DOM mutations.
        Mutation = 0,
        /// 1: pointer positions.
        MouseMove = 1,
        /// 2: clicks, focus, touches.
        MouseInteraction = 2,
        /// 3: a scroll of the document or an element.
        Scroll = 3,
        /// 4: the viewport changed size.
        ViewportResize = 4,
        /// 5: an input's value or checked state.
        Input = 5,
        /// 6: touch positions.
        TouchMove = 6,
        /// 7: audio/video play, pause, seek, volume, rate.
        MediaInteraction = 7,
        /// 8: CSS rules inserted or deleted.
        StyleSheetRule = 8,
        /// 9: canvas drawing commands (only with `recordCanvas`).
        CanvasMutation = 9,
        /// 10: a web font loaded (only with `collectFonts`).
        Font = 10,
        /// 11: console output (rrweb ≤ 0.9; the console plugin since 1.0).
        Log = 11,
        /// 12: drag positions.
        Drag = 12,
        /// 13: one CSS declaration set or removed.
        StyleDeclaration = 13,
        /// 14: the text selection (rrweb 2.0+).
        Selection = 14,
        /// 15: constructed stylesheets adopted by a document or shadow root (2.0+).
        AdoptedStyleSheet = 15,
        /// 16: `customElements.define()` (2.0+).
        CustomElement = 16,
    }
}

code_enum! {
    /// rrweb's `MouseInteractions`: `type` of a [`MouseInteraction`](crate::MouseInteraction).
    MouseInteractions {
        /// 0
        MouseUp = 0,
        /// 1
        MouseDown = 1,
        /// 2
        Click = 2,
        /// 3
        ContextMenu = 3,
        /// 4
        DblClick = 4,
        /// 5 (no coordinates)
        Focus = 5,
        /// 6 (no coordinates)
        Blur = 6,
        /// 7
        TouchStart = 7,
        /// 8 (never emitted)
        TouchMoveDeparted = 8,
        /// 9
        TouchEnd = 9,
        /// 10
        TouchCancel = 10,
    }
}

code_enum! {
    /// rrweb's `PointerTypes`: `pointerType` of a mouse interaction (2.0+).
    PointerTypes {
        /// 0
        Mouse = 0,
        /// 1
        Pen = 1,
        /// 2
        Touch = 2,
    }
}

code_enum! {
    /// rrweb's `MediaInteractions`: `type` of a [`MediaInteraction`](crate::MediaInteraction).
    MediaInteractions {
        /// 0
        Play = 0,
        /// 1
        Pause = 1,
        /// 2
        Seeked = 2,
        /// 3
        VolumeChange = 3,
        /// 4 (2.0+)
        RateChange = 4,
    }
}

code_enum! {
    /// rrweb's `CanvasContext`: `type` of a [`CanvasMutation`](crate::CanvasMutation).
    CanvasContext {
        /// 0: `2d`
        TwoD = 0,
        /// 1: `webgl`
        WebGl = 1,
        /// 2: `webgl2`
        WebGl2 = 2,
    }
}

code_enum! {
    /// rrweb-snapshot's `NodeType`: `type` of a [`SerializedNode`](crate::SerializedNode).
    NodeType {
        /// 0
        Document = 0,
        /// 1
        DocumentType = 1,
        /// 2
        Element = 2,
        /// 3
        Text = 3,
        /// 4
        Cdata = 4,
        /// 5
        Comment = 5,
    }
}
