use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::Value;

use super::{Stage, Verdict};
use crate::event::{Event, Kind, Resource};
use crate::object_store::{Day, SegmentKey};

/// The attribute holding the link from a backend event to its moment in the session replay.
pub const REPLAY_URL_ATTRIBUTE: &str = "replay.url";

/// Sessions whose first recorded time [`ReplayLinks`] remembers (the oldest are forgotten first).
pub const REPLAY_LINK_SESSIONS: usize = 10_000;

/// Adds [`REPLAY_URL_ATTRIBUTE`] to `request` and `error` events that carry a browser session
/// id (the `x-tracepost-session` header): `{console}/replays/{session_id}?t={offset_ms}`, the
/// offset counted from the session's first recorded rrweb event as learnt from the replay
/// events passing through this pipeline; `?at={unix_ms}` (the viewer turns it into the offset
/// from its index) when this process has not seen the session's replay yet — a request in
/// the first seconds of a session, or a replay uploaded to another instance.
///
/// Session ids that could not name a replay (other than 1–128 of `A-Z a-z 0-9 - _`) get no
/// link. The viewer says so when a session was not recorded (sampled out, or replay off).
#[derive(Debug, Clone)]
pub struct ReplayLinks {
    console: String,
    starts: Arc<Mutex<Starts>>,
}

/// Session id → first recorded time (Unix ms), and the ids in the order learnt.
type Starts = (HashMap<String, i64>, VecDeque<String>);

impl ReplayLinks {
    /// Links to the console at `console_url` (`https://ops.example.com/tracepost/console`).
    pub fn new(console_url: impl Into<String>) -> Self {
        ReplayLinks {
            console: console_url.into().trim_end_matches('/').to_owned(),
            starts: Arc::default(),
        }
    }

    /// The console URL links start with.
    pub fn console_url(&self) -> &str {
        &self.console
    }

    fn learn(&self, session: &str, start_ms: i64) {
        let mut g = self.starts.lock();
        let (map, order) = &mut *g;
        match map.get_mut(session) {
            Some(s) => *s = (*s).min(start_ms),
            None => {
                if map.len() >= REPLAY_LINK_SESSIONS {
                    if let Some(old) = order.pop_front() {
                        map.remove(&old);
                    }
                }
                map.insert(session.to_owned(), start_ms);
                order.push_back(session.to_owned());
            }
        }
    }

    fn apply(&self, event: &mut Event) {
        let Some(session) = event.session_id.as_deref() else {
            return;
        };
        if SegmentKey::new(session, Day::of(event.timestamp), 0).is_err() {
            return;
        }
        if event.kind == Kind::Replay {
            if let Some(ms) = event
                .attributes
                .get("replay.start_ms")
                .and_then(Value::as_i64)
            {
                self.learn(session, ms);
            }
            return;
        }
        if !matches!(event.kind, Kind::Request | Kind::Error)
            || event.attributes.contains_key(REPLAY_URL_ATTRIBUTE)
        {
            return;
        }
        let at = (event.timestamp.unix_nanos() / 1_000_000) as i64;
        let start = self.starts.lock().0.get(session).copied();
        let url = match start {
            Some(start) => format!(
                "{}/replays/{session}?t={}",
                self.console,
                (at - start).max(0)
            ),
            None => format!("{}/replays/{session}?at={at}", self.console),
        };
        event
            .attributes
            .insert(REPLAY_URL_ATTRIBUTE.into(), Value::String(url));
    }
}

/// Fills in the resource fields an event leaves empty from the builder's settings, and
/// (with [`ReplayLinks`]) links backend events to their session's replay.
#[derive(Debug, Clone)]
pub struct Enrich {
    resource: Resource,
    links: Option<ReplayLinks>,
}

impl Enrich {
    /// Fills events from `resource`.
    pub fn new(resource: Resource) -> Self {
        Enrich {
            resource,
            links: None,
        }
    }

    /// Also adds [`REPLAY_URL_ATTRIBUTE`] links (see [`ReplayLinks`]).
    pub fn with_replay_links(mut self, links: Option<ReplayLinks>) -> Self {
        self.links = links;
        self
    }

    /// The replay links, if configured.
    pub fn replay_links(&self) -> Option<&ReplayLinks> {
        self.links.as_ref()
    }

    /// The resource put on events.
    pub fn resource(&self) -> &Resource {
        &self.resource
    }
}

impl Stage for Enrich {
    fn name(&self) -> &'static str {
        "enrich"
    }

    fn process(&self, event: &mut Event) -> Verdict {
        let (ours, theirs) = (&self.resource, &mut event.resource);
        if theirs.service.is_empty() {
            theirs.service.clone_from(&ours.service);
        }
        if theirs.environment.is_none() {
            theirs.environment.clone_from(&ours.environment);
        }
        if theirs.release.is_none() {
            theirs.release.clone_from(&ours.release);
        }
        if theirs.host.is_none() {
            theirs.host.clone_from(&ours.host);
        }
        if let Some(links) = &self.links {
            links.apply(event);
        }
        Verdict::Keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Level;

    fn at(kind: Kind, session: Option<&str>, ms: u64) -> Event {
        let mut e = Event::new(kind, Level::Info, "x")
            .with_timestamp(crate::Timestamp::from_unix_nanos(ms * 1_000_000));
        e.session_id = session.map(str::to_owned);
        e
    }

    #[test]
    fn backend_events_link_to_the_moment_of_their_replay() {
        let enrich = Enrich::new(Resource::default()).with_replay_links(Some(ReplayLinks::new(
            "https://ops.example/tracepost/console/",
        )));
        let url = |e: &Event| e.attributes.get(REPLAY_URL_ATTRIBUTE).cloned();
        // Before the session's replay is seen: the absolute time.
        let mut early = at(Kind::Request, Some("s-1"), 1_000_500);
        assert_eq!(enrich.process(&mut early), Verdict::Keep);
        assert_eq!(
            url(&early),
            Some("https://ops.example/tracepost/console/replays/s-1?at=1000500".into())
        );
        // A replay segment teaches the session's first recorded time (the smallest wins).
        for start in [1_010_000u64, 1_000_000] {
            let mut seg = at(Kind::Replay, Some("s-1"), start);
            seg.attributes
                .insert("replay.start_ms".into(), Value::from(start));
            assert_eq!(enrich.process(&mut seg), Verdict::Keep);
            assert_eq!(url(&seg), None, "replay events get no link");
        }
        let mut err = at(Kind::Error, Some("s-1"), 1_042_000);
        let _ = enrich.process(&mut err);
        assert_eq!(
            url(&err),
            Some("https://ops.example/tracepost/console/replays/s-1?t=42000".into())
        );
        // No session, an unsafe id, other kinds, or a link already set: untouched.
        for mut e in [
            at(Kind::Error, None, 1),
            at(Kind::Error, Some("../x"), 1),
            at(Kind::Log, Some("s-1"), 1),
        ] {
            let _ = enrich.process(&mut e);
            assert_eq!(url(&e), None);
        }
        let mut set = at(Kind::Error, Some("s-1"), 1_042_000);
        set.attributes
            .insert(REPLAY_URL_ATTRIBUTE.into(), Value::from("mine"));
        let _ = enrich.process(&mut set);
        assert_eq!(url(&set), Some(Value::from("mine")));
        // Without links configured, nothing is added.
        let mut plain = at(Kind::Error, Some("s-1"), 1_042_000);
        let _ = Enrich::new(Resource::default()).process(&mut plain);
        assert_eq!(url(&plain), None);
    }
}
