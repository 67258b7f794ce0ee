//! Reading Loki's 400 answers: which entries of a push it refused.
//!
//! Loki validates each entry of a push, stores the valid ones and answers 400 with one message
//! per refused entry (or stream), grouped by text (`2 errors like: …; 1 errors like: …` when
//! there are several, the bare message when there is one; see Loki's `util.GroupedErrors`).
//! The messages name the stream (its labels, plus any Loki added such as `service_name`) and
//! what identifies the entry (its line length, its timestamp to the second). From them the
//! sink tells the refused entries from the stored ones, so it never sends the stored ones
//! again.

use std::time::UNIX_EPOCH;

use uuid::Uuid;

use crate::encode::{Push, PushedEntry, PushedStream};

/// One refused entry: its id, the reason (a metric label) and Loki's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub id: Uuid,
    pub reason: &'static str,
    pub message: String,
}

/// What Loki's 400 said, and what the sink learned from it.
#[derive(Debug, Default)]
pub(crate) struct Partial {
    /// The entries Loki refused; every other entry of the push was stored.
    pub refused: Vec<Refused>,
    /// Loki's `max_line_size`, when a message named it.
    pub max_line_bytes: Option<usize>,
}

#[derive(Debug, PartialEq)]
enum Message {
    /// `Max entry size '<max>' bytes exceeded for stream '<labels>' while adding an entry with
    /// length '<len>' bytes`
    LineTooLong { max: usize },
    /// `entry for stream '<labels>' has timestamp too old: <ts>, oldest acceptable timestamp
    /// is: <ts>`
    TooOld { at: u64, oldest: u64 },
    /// `entry for stream '<labels>' has timestamp too new: <ts>`
    TooNew { at: u64 },
    /// Label problems refuse the whole stream: `… has N label names; limit M`, `… has label
    /// name too long`, `… has label value too long`, `… has duplicate label name`.
    Labels,
    /// `stream '<labels>' has structured metadata too large: '<n>' bytes, limit: '<m>' bytes`
    MetadataTooLarge { limit: usize },
    /// `stream '<labels>' has too many structured metadata labels: '<n>', limit: '<m>'`
    MetadataTooMany { limit: usize },
    /// `stream '<labels>' includes structured metadata, but this feature is disallowed…`
    MetadataDisallowed,
}

impl Message {
    fn reason(&self) -> &'static str {
        match self {
            Message::LineTooLong { .. } => "line_too_long",
            Message::TooOld { .. } => "too_old",
            Message::TooNew { .. } => "too_new",
            Message::Labels => "invalid_labels",
            Message::MetadataTooLarge { .. }
            | Message::MetadataTooMany { .. }
            | Message::MetadataDisallowed => "structured_metadata",
        }
    }

    /// Does Loki refuse `e` (of the stream the message names) for this?
    fn refuses_in_named_stream(&self, e: &PushedEntry) -> bool {
        const SEC: u64 = 1_000_000_000;
        match *self {
            Message::LineTooLong { max } => e.line_bytes > max,
            // `at` and `oldest` are cut to the second: the entry is in the named second,
            // before the second after the cut-off.
            Message::TooOld { at, oldest } => {
                e.ts < oldest || (e.ts / SEC * SEC == at && e.ts < oldest + SEC)
            }
            Message::TooNew { at } => e.ts / SEC * SEC == at,
            Message::Labels => true,
            Message::MetadataTooLarge { limit } => e.metadata_bytes > limit,
            Message::MetadataTooMany { limit } => e.metadata_pairs > limit,
            Message::MetadataDisallowed => e.metadata_pairs > 0,
        }
    }

    /// Does Loki refuse `e` of any stream, whatever the stream (limits that hold for all)?
    fn refuses_anywhere(&self, e: &PushedEntry) -> bool {
        match *self {
            Message::LineTooLong { max } => e.line_bytes > max,
            Message::TooOld { oldest, .. } => e.ts < oldest,
            _ => false,
        }
    }
}

/// Which entries of `push` Loki refused according to its 400 `body`. `None` when a message is
/// not one of Loki's per-entry validation messages, or names no entry of the push: then
/// nothing is known about what Loki stored (a malformed request stores nothing), and the
/// caller falls back to splitting the push.
pub(crate) fn read(push: &Push, body: &str) -> Option<Partial> {
    if body.trim_start().starts_with("entry with timestamp ") {
        return read_ingester(push, body);
    }
    let messages = parse(body)?;
    let mut out = Partial::default();
    let mut refused: Vec<Refused> = Vec::new();
    for (labels, message, text) in &messages {
        if let Message::LineTooLong { max } = message {
            out.max_line_bytes = Some(out.max_line_bytes.map_or(*max, |m| m.min(*max)));
        }
        let named = named_stream(&push.streams, labels);
        let mut matched = false;
        for (si, stream) in push.streams.iter().enumerate() {
            for e in &stream.entries {
                let hit = if Some(si) == named {
                    message.refuses_in_named_stream(e)
                } else {
                    message.refuses_anywhere(e)
                };
                if hit {
                    matched = true;
                    if !refused.iter().any(|r| r.id == e.id) {
                        refused.push(Refused {
                            id: e.id,
                            reason: message.reason(),
                            message: text.clone(),
                        });
                    }
                }
            }
        }
        if !matched {
            return None;
        }
    }
    out.refused = refused;
    Some(out)
}

/// How many refused entries an ingester lists before its summary line (Loki's
/// `max_returned_stream_errors`, 10 by default).
const INGESTER_LISTED_MAX: usize = 10;

/// Reads an ingester's 400 for one stream, which the distributor passes on word for word
/// (Loki's `stream.go`, entries refused as out of order):
///
/// ```text
/// entry with timestamp 2026-10-07 01:35:32.405 +0000 UTC ignored, reason: 'entry too far behind, entry timestamp is: 2026-10-07T01:35:32Z, oldest acceptable timestamp is: 2026-10-07T03:23:59Z',
/// user 'fake', total ignored: 1 out of 1 for stream: {kind="log", service="shop"}
/// ```
///
/// At most [`INGESTER_LISTED_MAX`] entries are listed (timestamps to the nanosecond, Go's
/// `Time.String`); the summary gives how many were refused in all. The unlisted ones are
/// found from the cut-off the listed ones name (every entry of that stream older than it
/// was refused). When the entries found are not as many as Loki counted, `None`: the caller
/// falls back to splitting the push.
fn read_ingester(push: &Push, body: &str) -> Option<Partial> {
    const SEC: u64 = 1_000_000_000;
    let mut rest = body.trim();
    let mut listed: Vec<(u64, &'static str)> = Vec::new();
    let mut cutoff: Option<u64> = None;
    let mut texts: Vec<&str> = Vec::new();
    while let Some(after) = rest.strip_prefix("entry with timestamp ") {
        let (at, after) = after.split_once(" ignored, reason: '")?;
        let (reason, after) = after.split_once("',\n")?;
        let at = go_time(at)?;
        let label = if let Some(r) = reason.strip_prefix("entry too far behind, ") {
            let (_, oldest) = r.split_once("oldest acceptable timestamp is: ")?;
            let oldest = rfc3339_ns(oldest)?;
            cutoff = Some(cutoff.map_or(oldest, |c: u64| c.min(oldest)));
            "too_far_behind"
        } else if reason == "entry out of order" {
            "out_of_order"
        } else {
            return None;
        };
        texts.push(&rest[..rest.len() - after.len()]);
        listed.push((at, label));
        rest = after;
    }
    let after = rest.strip_prefix("user '")?;
    let (_, after) = after.split_once("', total ignored: ")?;
    let (total, after) = after.split_once(" out of ")?;
    let total: usize = total.parse().ok()?;
    let (_, after) = after.split_once(" for stream: ")?;
    let mut c = Cursor { s: after, pos: 0 };
    let labels = c.labels()?;
    if listed.is_empty() || (listed.len() < total && listed.len() < INGESTER_LISTED_MAX) {
        return None;
    }
    let stream = &push.streams[named_stream(&push.streams, &labels)?];
    let message = |i: usize| texts[i].trim_end().trim_end_matches(',').to_owned();
    let mut refused: Vec<Refused> = Vec::new();
    for (i, (at, reason)) in listed.iter().enumerate() {
        if !stream.entries.iter().any(|e| e.ts == *at) {
            return None;
        }
        for e in stream.entries.iter().filter(|e| e.ts == *at) {
            if !refused.iter().any(|r| r.id == e.id) {
                refused.push(Refused {
                    id: e.id,
                    reason,
                    message: message(i),
                });
            }
        }
    }
    if let Some(cutoff) = cutoff {
        // The cut-off is named to the second: older entries were surely refused, those in
        // its second were if Loki counted more than that.
        let mut candidates: Vec<_> = stream
            .entries
            .iter()
            .filter(|e| e.ts < cutoff + SEC && !refused.iter().any(|r| r.id == e.id))
            .collect();
        candidates.sort_by_key(|e| e.ts);
        for e in candidates {
            if refused.len() >= total && e.ts >= cutoff {
                break;
            }
            refused.push(Refused {
                id: e.id,
                reason: "too_far_behind",
                message: message(0),
            });
        }
    }
    (refused.len() == total).then_some(Partial {
        refused,
        max_line_bytes: None,
    })
}

/// Go's `Time.String()`: `2026-10-07 01:35:32.405 +0000 UTC` (fraction optional, trailing
/// zeros cut), as Unix nanoseconds.
fn go_time(s: &str) -> Option<u64> {
    let mut parts = s.split(' ');
    let (date, time, offset) = (parts.next()?, parts.next()?, parts.next()?);
    let utc = rfc3339_ns(&format!("{date}T{time}Z"))?;
    let sign: i64 = match offset.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = offset.get(1..5)?;
    let (h, m): (i64, i64) = (digits[..2].parse().ok()?, digits[2..].parse().ok()?);
    let shift = sign * (h * 3600 + m * 60) * 1_000_000_000;
    u64::try_from(utc as i128 - shift as i128).ok()
}

fn rfc3339_ns(s: &str) -> Option<u64> {
    let at = humantime::parse_rfc3339_weak(s.trim()).ok()?;
    Some(at.duration_since(UNIX_EPOCH).ok()?.as_nanos() as u64)
}

/// The stream of the push whose labels are all among `named` (Loki may add labels such as
/// `service_name`); the one with the most labels when several are.
fn named_stream(streams: &[PushedStream], named: &[(String, String)]) -> Option<usize> {
    streams
        .iter()
        .enumerate()
        .filter(|(_, s)| s.labels.iter().all(|pair| named.contains(pair)))
        .max_by_key(|(_, s)| s.labels.len())
        .map(|(i, _)| i)
}

type Labels = Vec<(String, String)>;
type Parsed = (Labels, Message, String);

fn parse(body: &str) -> Option<Vec<Parsed>> {
    let body = body.trim();
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        rest = skip_count(rest);
        let (labels, message, len) = parse_one(rest)?;
        out.push((labels, message, rest[..len].to_owned()));
        rest = &rest[len..];
        if rest.is_empty() {
            break;
        }
        rest = rest.strip_prefix("; ")?;
    }
    (!out.is_empty()).then_some(out)
}

/// Skips `N errors like: `.
fn skip_count(s: &str) -> &str {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 {
        if let Some(rest) = s[digits..].strip_prefix(" errors like: ") {
            return rest;
        }
    }
    s
}

/// One message at the start of `s`: the stream's labels, what it says, and its length.
fn parse_one(s: &str) -> Option<(Labels, Message, usize)> {
    let mut c = Cursor { s, pos: 0 };
    if c.eat("Max entry size '") {
        let max = c.number()?;
        c.expect("' bytes exceeded for stream '")?;
        let labels = c.labels()?;
        c.expect("' while adding an entry with length '")?;
        let _len = c.number()?;
        c.expect("' bytes")?;
        return Some((labels, Message::LineTooLong { max }, c.pos));
    }
    if c.eat("entry for stream '") {
        let labels = c.labels()?;
        if c.eat("' has timestamp too old: ") {
            let at = c.timestamp(", oldest acceptable timestamp is: ")?;
            c.expect(", oldest acceptable timestamp is: ")?;
            let oldest = c.timestamp("; ")?;
            return Some((labels, Message::TooOld { at, oldest }, c.pos));
        }
        if c.eat("' has timestamp too new: ") {
            let at = c.timestamp("; ")?;
            return Some((labels, Message::TooNew { at }, c.pos));
        }
        c.expect("' has ")?;
        c.number()?;
        c.expect(" label names; limit ")?;
        c.number()?;
        return Some((labels, Message::Labels, c.pos));
    }
    if c.eat("stream '") {
        let labels = c.labels()?;
        if c.eat("' has structured metadata too large: '") {
            c.number()?;
            c.expect("' bytes, limit: '")?;
            let limit = c.number()?;
            c.expect("' bytes")?;
            return Some((labels, Message::MetadataTooLarge { limit }, c.pos));
        }
        if c.eat("' has too many structured metadata labels: '") {
            c.number()?;
            c.expect("', limit: '")?;
            let limit = c.number()?;
            c.expect("'")?;
            return Some((labels, Message::MetadataTooMany { limit }, c.pos));
        }
        if c.eat("' includes structured metadata, but this feature is disallowed.") {
            c.rest_of_message();
            return Some((labels, Message::MetadataDisallowed, c.pos));
        }
        for label_problem in [
            "' has label name too long: '",
            "' has label value too long: '",
            "' has duplicate label name: '",
        ] {
            if c.eat(label_problem) {
                c.rest_of_message();
                return Some((labels, Message::Labels, c.pos));
            }
        }
    }
    None
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn rest(&self) -> &str {
        &self.s[self.pos..]
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.rest().starts_with(lit) {
            self.pos += lit.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, lit: &str) -> Option<()> {
        self.eat(lit).then_some(())
    }

    fn number(&mut self) -> Option<usize> {
        let n = self.rest().bytes().take_while(u8::is_ascii_digit).count();
        let v = self.rest()[..n].parse().ok()?;
        self.pos += n;
        Some(v)
    }

    /// Up to the next `; ` (the next grouped message) or the end.
    fn rest_of_message(&mut self) {
        self.pos += self.rest().find("; ").unwrap_or(self.rest().len());
    }

    /// An RFC 3339 timestamp up to `until` or the end, as Unix nanoseconds.
    fn timestamp(&mut self, until: &str) -> Option<u64> {
        let len = self.rest().find(until).unwrap_or(self.rest().len());
        let text = self.rest()[..len].trim();
        let at = humantime::parse_rfc3339_weak(text).ok()?;
        self.pos += len;
        Some(at.duration_since(UNIX_EPOCH).ok()?.as_nanos() as u64)
    }

    /// `{a="b", c="d"}` (Prometheus' label format, values escaped like Go strings).
    fn labels(&mut self) -> Option<Labels> {
        self.expect("{")?;
        let mut pairs = Vec::new();
        if self.eat("}") {
            return Some(pairs);
        }
        loop {
            let n = self
                .rest()
                .bytes()
                .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
                .count();
            let name = self.rest()[..n].to_owned();
            self.pos += n;
            self.expect("=\"")?;
            let mut value = String::new();
            let mut chars = self.rest().char_indices();
            let end = loop {
                let (i, ch) = chars.next()?;
                match ch {
                    '"' => break i,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        't' => value.push('\t'),
                        other => value.push(other),
                    },
                    other => value.push(other),
                }
            };
            self.pos += end + 1;
            pairs.push((name, value));
            if self.eat("}") {
                return Some(pairs);
            }
            self.expect(", ")?;
        }
    }
}

/// Loki's RFC 3339 form of a timestamp, to the second (`2026-11-29T14:05:49Z`).
#[cfg(test)]
fn format_rfc3339_seconds(ns: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + std::time::Duration::from_nanos(ns)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestStream<'a> = (Vec<(&'a str, &'a str)>, Vec<PushedEntry>);

    fn push(streams: Vec<TestStream<'_>>) -> Push {
        Push {
            body: bytes::Bytes::new(),
            content_type: "application/x-protobuf",
            content_encoding: None,
            ids: streams
                .iter()
                .flat_map(|(_, es)| es.iter().map(|e| e.id))
                .collect(),
            raw_bytes: 0,
            streams: streams
                .into_iter()
                .map(|(labels, entries)| PushedStream {
                    labels: labels
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                    entries,
                })
                .collect(),
        }
    }

    fn entry(ts_s: u64, line_bytes: usize) -> PushedEntry {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        PushedEntry {
            id: Uuid::from_u64_pair(0, NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
            ts: ts_s * 1_000_000_000 + 123,
            line_bytes,
            metadata_bytes: 0,
            metadata_pairs: 0,
        }
    }

    #[test]
    fn the_issue_bodies_name_exactly_the_refused_entries() {
        let t = 1_796_047_589;
        let errors = vec![
            ("kind", "error"),
            ("level", "error"),
            ("service", "quickstart"),
        ];
        let logs = vec![
            ("kind", "log"),
            ("level", "info"),
            ("service", "quickstart"),
        ];
        let (long, old, ok1, ok2) = (
            entry(t, 21_367),
            entry(t - 40, 100),
            entry(t, 4_000),
            entry(t - 39, 100),
        );
        let p = push(vec![(errors, vec![long, ok1]), (logs, vec![old, ok2])]);
        let long_msg = "Max entry size '4096' bytes exceeded for stream '{kind=\"error\", level=\"error\", service=\"quickstart\", service_name=\"quickstart\"}' while adding an entry with length '21367' bytes";
        let old_msg = format!(
            "entry for stream '{{kind=\"log\", level=\"info\", service=\"quickstart\"}}' has timestamp too old: {}, oldest acceptable timestamp is: {}",
            format_rfc3339_seconds(old.ts),
            format_rfc3339_seconds((t - 39) * 1_000_000_000 + 500_000_000),
        );
        let r = read(&p, &format!("{long_msg}\n")).unwrap();
        assert_eq!(r.refused.len(), 1);
        assert_eq!(
            (r.refused[0].id, r.refused[0].reason),
            (long.id, "line_too_long")
        );
        assert_eq!(r.max_line_bytes, Some(4096));

        let both = format!("1 errors like: {old_msg}; 1 errors like: {long_msg}");
        let r = read(&p, &both).unwrap();
        let mut got: Vec<_> = r.refused.iter().map(|r| (r.id, r.reason)).collect();
        got.sort();
        let mut want = vec![(long.id, "line_too_long"), (old.id, "too_old")];
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn unknown_messages_and_unmatched_entries_are_not_guessed() {
        let p = push(vec![(vec![("service", "a")], vec![entry(10, 10)])]);
        assert!(read(&p, "error at least one label pair is required per stream").is_none());
        assert!(read(&p, "").is_none());
        // A line-size message that matches no entry: Loki's answer is about something else.
        let msg = "Max entry size '4096' bytes exceeded for stream '{service=\"a\"}' while adding an entry with length '5000' bytes";
        assert!(read(&p, msg).is_none());
        // A known message followed by an unknown one.
        let p = push(vec![(vec![("service", "a")], vec![entry(10, 5000)])]);
        assert!(read(&p, msg).is_some());
        assert!(read(&p, &format!("1 errors like: {msg}; 1 errors like: boom")).is_none());
    }

    #[test]
    fn label_and_metadata_messages() {
        let mut with_meta = entry(10, 10);
        with_meta.metadata_bytes = 70_000;
        with_meta.metadata_pairs = 3;
        let plain = entry(10, 10);
        let p = push(vec![
            (vec![("service", "a\"b")], vec![with_meta, plain]),
            (vec![("service", "c")], vec![entry(11, 10)]),
        ]);
        let r = read(&p, "stream '{service=\"a\\\"b\"}' has structured metadata too large: '70000' bytes, limit: '65536' bytes").unwrap();
        assert_eq!(r.refused.len(), 1);
        assert_eq!(r.refused[0].id, with_meta.id);
        let r = read(
            &p,
            "entry for stream '{service=\"c\"}' has 31 label names; limit 30",
        )
        .unwrap();
        assert_eq!(r.refused.len(), 1);
        assert_eq!(r.refused[0].reason, "invalid_labels");
    }

    /// Go's `Time.String()` of a UTC time, as Loki's ingester prints it.
    fn go_string(ns: u64) -> String {
        let secs = format_rfc3339_seconds(ns);
        let (date, time) = secs.trim_end_matches('Z').split_once('T').unwrap();
        let frac = ns % 1_000_000_000;
        let frac = if frac == 0 {
            String::new()
        } else {
            format!(".{frac:09}").trim_end_matches('0').to_owned()
        };
        format!("{date} {time}{frac} +0000 UTC")
    }

    fn too_far_behind(at: u64, cutoff: u64) -> String {
        format!(
            "entry with timestamp {} ignored, reason: 'entry too far behind, entry timestamp is: {}, oldest acceptable timestamp is: {}',\n",
            go_string(at),
            format_rfc3339_seconds(at),
            format_rfc3339_seconds(cutoff)
        )
    }

    #[test]
    fn go_time_strings_are_read_to_the_nanosecond() {
        assert_eq!(
            go_time("2026-10-07 01:35:32.405 +0000 UTC"),
            Some(1_791_336_932_405_000_000)
        );
        assert_eq!(
            go_time("2026-10-07 03:35:32.405 +0200 CEST"),
            Some(1_791_336_932_405_000_000)
        );
        assert_eq!(
            go_time("2026-10-07 01:35:32 +0000 UTC"),
            Some(1_791_336_932_000_000_000)
        );
        assert_eq!(go_time("2026-10-07T01:35:32Z"), None);
        assert_eq!(go_time(""), None);
    }

    /// The body a Loki 3.7 returned for a late entry (from a public report), for a stream of
    /// two: the late one is refused, the other was stored.
    #[test]
    fn an_ingesters_too_far_behind_names_the_late_entry() {
        let late_ts = go_time("2026-10-07 01:35:32.405 +0000 UTC").unwrap();
        let mut late = entry(0, 10);
        late.ts = late_ts;
        let fresh = entry(1_791_343_500, 10);
        let other = entry(1_791_343_500, 10);
        let p = push(vec![
            (
                vec![("kind", "invocation"), ("scriptName", "usual-suspects")],
                vec![late, fresh],
            ),
            (vec![("kind", "other")], vec![other]),
        ]);
        let body = "entry with timestamp 2026-10-07 01:35:32.405 +0000 UTC ignored, reason: 'entry too far behind, entry timestamp is: 2026-10-07T01:35:32Z, oldest acceptable timestamp is: 2026-10-07T03:23:59Z',\nuser 'usual-suspects', total ignored: 1 out of 2 for stream: {kind=\"invocation\", scriptName=\"usual-suspects\"}\n";
        let r = read(&p, body).unwrap();
        assert_eq!(r.refused.len(), 1);
        assert_eq!(
            (r.refused[0].id, r.refused[0].reason),
            (late.id, "too_far_behind")
        );
        assert!(r.refused[0]
            .message
            .starts_with("entry with timestamp 2026-10-07 01:35:32.405"));
        assert!(
            r.refused[0].message.ends_with("03:23:59Z'"),
            "{}",
            r.refused[0].message
        );
    }

    /// 25 late entries: Loki lists 10 and counts 25; the other 15 are found from the cut-off.
    #[test]
    fn late_entries_beyond_the_listed_ten_are_found_from_the_cutoff() {
        const SEC: u64 = 1_000_000_000;
        let now = 1_796_047_589;
        let cutoff = (now - 1800) * SEC + 250_000_000;
        let late: Vec<_> = (0..25).map(|i| entry(now - 7200 + i, 10)).collect();
        let fresh: Vec<_> = (0..5).map(|i| entry(now + i, 10)).collect();
        // One in the cut-off's own second, after it: stored.
        let mut edge = entry(0, 10);
        edge.ts = cutoff + 1;
        let mut all = late.clone();
        all.extend(fresh.iter().copied());
        all.push(edge);
        let p = push(vec![(vec![("service", "shop")], all)]);
        let mut body: String = late[..10]
            .iter()
            .map(|e| too_far_behind(e.ts, cutoff))
            .collect();
        body.push_str("user 'fake', total ignored: 25 out of 31 for stream: {service=\"shop\", service_name=\"shop\"}");
        let r = read(&p, &body).unwrap();
        let mut got: Vec<_> = r.refused.iter().map(|r| r.id).collect();
        let mut want: Vec<_> = late.iter().map(|e| e.id).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want);
        assert!(r.refused.iter().all(|r| r.reason == "too_far_behind"));

        // A count that the entries cannot explain: nothing is guessed.
        let wrong = body.replace("total ignored: 25", "total ignored: 29");
        assert!(read(&p, &wrong).is_none());
        // An entry the push does not have.
        let mut strange = too_far_behind(now * SEC + 7, cutoff);
        strange.push_str("user 'fake', total ignored: 1 out of 31 for stream: {service=\"shop\"}");
        assert!(read(&p, &strange).is_none());
        // Another stream.
        let elsewhere = body.replace(
            "{service=\"shop\", service_name=\"shop\"}",
            "{service=\"cart\"}",
        );
        assert!(read(&p, &elsewhere).is_none());
    }

    #[test]
    fn out_of_order_entries_of_an_ordered_stream() {
        let (a, b, c) = (entry(100, 10), entry(50, 10), entry(60, 10));
        let p = push(vec![(vec![("service", "shop")], vec![a, b, c])]);
        let line = |e: &PushedEntry| {
            format!(
                "entry with timestamp {} ignored, reason: 'entry out of order',\n",
                go_string(e.ts)
            )
        };
        let body = format!(
            "{}{}user 'fake', total ignored: 2 out of 3 for stream: {{service=\"shop\"}}",
            line(&b),
            line(&c)
        );
        let r = read(&p, &body).unwrap();
        let mut got: Vec<_> = r.refused.iter().map(|r| (r.id, r.reason)).collect();
        got.sort();
        let mut want = vec![(b.id, "out_of_order"), (c.id, "out_of_order")];
        want.sort();
        assert_eq!(got, want);
    }
}
