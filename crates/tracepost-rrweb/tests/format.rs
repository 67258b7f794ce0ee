//! Every event type and incremental source, in the shapes the format reference lists
//! (including those the recordings test cannot make a browser emit: touch, drag, media,
//! canvas in both shapes, fonts, the legacy log source, assets), unknown values from a
//! newer rrweb, and the parser's errors and limits.

use serde_json::{json, Value};
use tracepost_rrweb::{
    parse_segment, to_segment_json, EventData, EventType, IncrementalData, IncrementalSource,
    Limits, MouseInteractions, NodeKind, SegmentError,
};

fn ev(t: i64, data: Value) -> Value {
    json!({"type": t, "data": data, "timestamp": 1_700_000_000_000i64})
}

fn inc(data: Value) -> Value {
    ev(3, data)
}

fn full_snapshot() -> Value {
    ev(
        2,
        json!({"node": {"type": 0, "childNodes": [
            {"type": 1, "name": "html", "publicId": "", "systemId": "", "id": 2},
            {"type": 2, "tagName": "html", "attributes": {"lang": "en"}, "childNodes": [
                {"type": 2, "tagName": "body", "attributes": {}, "childNodes": [
                    {"type": 3, "textContent": "hi ✓", "id": 5},
                    {"type": 5, "textContent": " note ", "id": 6},
                    {"type": 4, "textContent": "", "id": 7},
                    {"type": 2, "tagName": "input", "attributes": {"checked": true, "value": "***", "rr_scrollTop": 12.5, "rr_mediaMuted": false}, "childNodes": [], "id": 8},
                    {"type": 2, "tagName": "svg", "attributes": {}, "childNodes": [], "isSVG": true, "id": 9, "rootId": 1, "isShadowHost": true},
                    {"type": 3, "textContent": "a{}", "isStyle": true, "id": 10, "isShadow": true},
                    {"type": 2, "tagName": "tp-x", "attributes": {}, "childNodes": [], "isCustom": true, "id": 11, "futureFlag": [1, 2]}
                ], "id": 4}
            ], "id": 3}
        ], "compatMode": "BackCompat", "id": 1}, "initialOffset": {"top": 0.5, "left": 0}}),
    )
}

/// One event of every type and source.
fn every_kind() -> Vec<Value> {
    vec![
        ev(0, json!({})),
        ev(1, json!({})),
        ev(
            4,
            json!({"href": "https://shop.test/cart", "width": 1280, "height": 720}),
        ),
        full_snapshot(),
        inc(
            json!({"source": 0, "texts": [{"id": 5, "value": "new"}, {"id": 6, "value": null}],
            "attributes": [{"id": 8, "attributes": {"class": "x", "hidden": null, "style": {"color": "red", "margin": false, "width": ["1px", "important"]}}}],
            "removes": [{"parentId": 4, "id": 6}, {"parentId": 9, "id": 10, "isShadow": true}],
            "adds": [{"parentId": 4, "nextId": null, "node": {"type": 3, "textContent": "x", "id": 12}},
                     {"parentId": 4, "nextId": 12, "previousId": null, "node": {"type": 2, "tagName": "li", "attributes": {}, "childNodes": [], "id": 13}}],
            "isAttachIframe": true}),
        ),
        inc(
            json!({"source": 1, "positions": [{"x": 10.5, "y": 20.25, "id": 4, "timeOffset": -480}, {"x": 11, "y": 21, "id": -1, "timeOffset": 0}]}),
        ),
        inc(json!({"source": 2, "type": 2, "id": 8, "x": 1.5, "y": 2})),
        inc(json!({"source": 2, "type": 5, "id": 8})),
        inc(json!({"source": 2, "type": 7, "id": 8, "x": 3, "y": 4, "pointerType": 2})),
        inc(json!({"source": 3, "id": 1, "x": 0, "y": 1200.5})),
        inc(json!({"source": 4, "width": 800, "height": 600})),
        inc(json!({"source": 5, "id": 8, "text": "****", "isChecked": false})),
        inc(json!({"source": 5, "id": 8, "text": "on", "isChecked": true, "userTriggered": true})),
        inc(json!({"source": 6, "positions": [{"x": 5, "y": 6, "id": 4, "timeOffset": -10}]})),
        inc(
            json!({"source": 7, "type": 0, "id": 9, "currentTime": 1.25, "volume": 0.5, "muted": false, "loop": true, "playbackRate": 1}),
        ),
        inc(
            json!({"source": 8, "id": 2, "adds": [{"rule": "a{color:red}", "index": [0, 1]}], "removes": [{"index": 2}]}),
        ),
        inc(json!({"source": 8, "styleId": 1, "replaceSync": "b{}"})),
        inc(
            json!({"source": 9, "id": 14, "type": 0, "commands": [{"property": "fillRect", "args": [0, 0, 10, 10]}, {"property": "fillStyle", "args": ["red"], "setter": true}]}),
        ),
        inc(json!({"source": 9, "id": 14, "type": 1, "property": "clear", "args": [16384]})),
        inc(
            json!({"source": 10, "family": "Inter", "fontSource": "url(/inter.woff2)", "buffer": false, "descriptors": {"weight": "400"}}),
        ),
        inc(json!({"source": 11, "level": "log", "trace": ["at x"], "payload": ["\"hi\""]})),
        inc(json!({"source": 12, "positions": [{"x": 7, "y": 8, "id": 4, "timeOffset": -5}]})),
        inc(
            json!({"source": 13, "id": 2, "index": [0], "set": {"property": "color", "value": "red", "priority": "important"}}),
        ),
        inc(json!({"source": 13, "styleId": 3, "index": [1, 0], "remove": {"property": "margin"}})),
        inc(
            json!({"source": 14, "ranges": [{"start": 5, "startOffset": 0, "end": 5, "endOffset": 3}]}),
        ),
        inc(
            json!({"source": 15, "id": 1, "styleIds": [1], "styles": [{"styleId": 1, "rules": [{"rule": "h1{}"}]}]}),
        ),
        inc(json!({"source": 16, "define": {"name": "tp-x"}})),
        ev(5, json!({"tag": "checkout", "payload": {"total": 12.5}})),
        ev(5, json!({"tag": "no-payload"})),
        ev(5, json!({"tag": "null-payload", "payload": null})),
        ev(
            6,
            json!({"plugin": "rrweb/console@1", "payload": {"level": "warn", "trace": [], "payload": ["\"x\""]}}),
        ),
        ev(
            7,
            json!({"url": "https://shop.test/a.css", "payload": {"rr_type": "CssText", "cssTexts": ["a{}"]}}),
        ),
        ev(8, json!({"type": "timelineMarker", "text": "paid"})),
    ]
}

#[test]
fn every_type_and_source_round_trips() {
    let events = every_kind();
    let json = serde_json::to_vec(&events).unwrap();
    let parsed = parse_segment(&json, &Limits::default()).unwrap();
    assert_eq!(parsed.len(), events.len());
    for (p, original) in parsed.iter().zip(&events) {
        assert_eq!(&serde_json::to_value(p).unwrap(), original);
        assert!(
            !matches!(p.event_type(), EventType::Unknown(_)),
            "{original}"
        );
        if let EventData::IncrementalSnapshot(d) = &p.data {
            assert!(
                !matches!(d.source(), IncrementalSource::Unknown(_)),
                "{original}"
            );
        }
    }
    let back: Value = serde_json::from_slice(&to_segment_json(&parsed).unwrap()).unwrap();
    assert_eq!(back, Value::Array(events));
}

#[test]
fn typed_access_reads_the_right_fields() {
    let events = parse_segment(
        &serde_json::to_vec(&every_kind()).unwrap(),
        &Limits::default(),
    )
    .unwrap();
    let EventData::FullSnapshot(snap) = &events[3].data else {
        panic!()
    };
    let mut tags = Vec::new();
    snap.node.walk(|n| {
        if let NodeKind::Element { tag_name, .. } = &n.kind {
            tags.push(tag_name.as_str());
        }
    });
    assert_eq!(tags, ["html", "body", "input", "svg", "tp-x"]);
    let tp_x = &snap.node.children()[1].children()[0].children()[6];
    assert_eq!(tp_x.extra["futureFlag"], json!([1, 2]));
    let EventData::IncrementalSnapshot(IncrementalData::MouseInteraction(focus)) = &events[7].data
    else {
        panic!()
    };
    assert_eq!(focus.kind, MouseInteractions::Focus);
    assert_eq!((focus.x.clone(), focus.y.clone()), (None, None));
}

#[test]
fn unknown_types_sources_nodes_and_fields_pass_through() {
    let events = vec![
        json!({"type": 42, "data": {"anything": [1, {"x": null}]}, "timestamp": 1.5e12, "_sid": 3, "v": "v1"}),
        inc(json!({"source": 99, "futureField": {"a": 1}})),
        inc(json!({"source": 2, "type": 77, "id": 1, "x": 0, "y": 0, "newThing": true})),
        ev(
            2,
            json!({"node": {"type": 9, "id": 1, "shape": "new"}, "initialOffset": {"top": 0, "left": 0}, "extra": 1}),
        ),
        ev(4, json!({"href": "h", "width": 1, "height": 2, "dpr": 2})),
        json!({"type": 0, "data": {}, "timestamp": 1, "delay": 12.5}),
    ];
    let parsed = parse_segment(&serde_json::to_vec(&events).unwrap(), &Limits::default()).unwrap();
    assert!(matches!(parsed[0].data, EventData::Unknown(42, _)));
    assert!(matches!(
        parsed[1].data,
        EventData::IncrementalSnapshot(IncrementalData::Unknown(99, _))
    ));
    for (p, original) in parsed.iter().zip(&events) {
        assert_eq!(&serde_json::to_value(p).unwrap(), original);
    }
}

fn error(json: &str) -> SegmentError {
    parse_segment(json.as_bytes(), &Limits::default()).unwrap_err()
}

#[test]
fn errors_name_the_event_and_the_field() {
    let cases = [
        (
            r#"[{"type":4,"data":{"href":"h","width":1,"height":1},"timestamp":1},{"type":3,"data":{"source":1,"positions":[{"x":"1","y":2,"id":1,"timeOffset":0}]},"timestamp":2}]"#,
            1,
            "data.positions[0].x",
            "invalid type: string \"1\"",
        ),
        (
            r#"[{"type":3,"data":{"x":1},"timestamp":1}]"#,
            0,
            "data",
            "missing field `source`",
        ),
        (
            r#"[{"type":3,"data":{"source":"2"},"timestamp":1}]"#,
            0,
            "data.source",
            "expected an integer, found a string",
        ),
        (
            r#"[{"type":4,"data":{"href":"h","width":1},"timestamp":1}]"#,
            0,
            "data",
            "missing field `height`",
        ),
        (
            r#"[{"type":4,"data":{"href":"h","width":1,"height":1}}]"#,
            0,
            ".",
            "missing field `timestamp`",
        ),
        (
            r#"[{"type":4,"data":{"href":"h","width":1,"height":1},"timestamp":"now"}]"#,
            0,
            "timestamp",
            "invalid type: string \"now\"",
        ),
        (
            r#"[{"data":{},"timestamp":1}]"#,
            0,
            ".",
            "missing field `type`",
        ),
        (
            r#"[{"type":2,"data":{"node":{"type":0,"id":1,"childNodes":[{"type":2,"id":2,"attributes":{},"childNodes":[]}]},"initialOffset":{"top":0,"left":0}},"timestamp":1}]"#,
            0,
            "data.node.childNodes[0]",
            "missing field `tagName`",
        ),
        (
            r#"[{"type":3,"data":{"source":0,"texts":[],"attributes":[],"removes":[],"adds":[{"parentId":1,"nextId":null,"node":{"type":3,"id":"x","textContent":""}}]},"timestamp":1}]"#,
            0,
            "data.adds[0].node.id",
            "invalid type: string \"x\"",
        ),
        (
            r#"[{"type":5,"data":[],"timestamp":1}]"#,
            0,
            "data",
            "expected an object, found an array",
        ),
        (r#"[7]"#, 0, ".", "invalid type: integer `7`"),
    ];
    for (json, index, path, message) in cases {
        let e = error(json);
        assert_eq!(e.index(), Some(index), "{json}: {e}");
        assert_eq!(e.path(), Some(path), "{json}: {e}");
        let SegmentError::Event { message: m, .. } = &e else {
            panic!()
        };
        assert!(m.starts_with(message), "{json}: {m}");
        assert!(!e.to_string().contains('\n'));
    }
    assert_eq!(
        error(r#"[{"type":3,"data":{"source":3,"id":1,"x":"left","y":0},"timestamp":1}]"#)
            .to_string(),
        "event 0: data.x: invalid type: string \"left\", expected a JSON number"
    );
}

#[test]
fn the_segment_itself_is_checked() {
    assert_eq!(
        error(r#"{"events":[]}"#),
        SegmentError::NotArray { found: "an object" }
    );
    assert_eq!(
        error("  \"x\""),
        SegmentError::NotArray { found: "a string" }
    );
    assert_eq!(error(""), SegmentError::NotArray { found: "nothing" });
    assert_eq!(error("[]"), SegmentError::Empty);
    assert!(matches!(
        error(r#"[{"type":4,"#),
        SegmentError::Syntax { .. }
    ));
    assert!(matches!(error("<html>"), SegmentError::Syntax { .. }));
    assert!(matches!(error("[1] [2]"), SegmentError::Syntax { .. }));
    let one = r#"{"type":0,"data":{},"timestamp":1}"#;
    let three = format!("[{one},{one},{one}]");
    assert_eq!(
        parse_segment(three.as_bytes(), &Limits::default().max_events(2)).unwrap_err(),
        SegmentError::TooManyEvents { count: 3, max: 2 }
    );
    assert_eq!(
        parse_segment(three.as_bytes(), &Limits::default().max_bytes(10)).unwrap_err(),
        SegmentError::TooLarge {
            size: three.len(),
            max: 10
        }
    );
}

/// A snapshot of a DOM `levels` deep: `<div>` in `<div>` … with a text leaf.
fn deep_snapshot(levels: usize) -> String {
    let mut node = json!({"type": 3, "textContent": "leaf", "id": levels as i64 + 10});
    for i in (0..levels).rev() {
        node = json!({"type": 2, "tagName": "div", "attributes": {"class": "[{\"}"}, "childNodes": [node], "id": i as i64 + 2});
    }
    let doc = json!({"type": 0, "childNodes": [node], "id": 1});
    // serde_json's own serializer recurses too: build the text on a big stack.
    let event = json!({"type": 2, "data": {"node": doc, "initialOffset": {"top": 0, "left": 0}}, "timestamp": 1});
    let text = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || {
            let s = format!("[{}]", serde_json::to_string(&event).unwrap());
            drop(event);
            s
        })
        .unwrap()
        .join()
        .unwrap();
    text
}

#[test]
fn deep_trees_parse_up_to_the_limit_and_are_refused_beyond() {
    // 490 DOM levels ≈ 990 JSON levels: under the default limit of 1 000, far past
    // serde_json's default recursion limit of 128. Parsed on this test thread's own
    // (small) stack: the parser grows it.
    let ok = deep_snapshot(490);
    let events = parse_segment(ok.as_bytes(), &Limits::default()).unwrap();
    let mut count = 0;
    let EventData::FullSnapshot(s) = &events[0].data else {
        panic!()
    };
    s.node.walk(|_| count += 1);
    assert_eq!(count, 492);
    // Written back (keys in rrweb's order rather than sorted) and read again: the same.
    let back = to_segment_json(&events).unwrap();
    assert_eq!(back.len(), ok.len());
    let again = parse_segment(&back, &Limits::default()).unwrap();
    assert!(again == events, "the deep tree changed in the round trip");
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || drop(again))
        .unwrap()
        .join()
        .unwrap();
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || drop(events))
        .unwrap()
        .join()
        .unwrap();

    let deep = deep_snapshot(600);
    match parse_segment(deep.as_bytes(), &Limits::default()).unwrap_err() {
        SegmentError::TooDeep { max: 1000, offset } => assert!(offset > 0 && offset < deep.len()),
        other => panic!("{other}"),
    }
}
