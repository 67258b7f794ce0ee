use super::*;
use crate::event::{ErrorDetail, Kind, Level, Resource};
use crate::redact::Redactor;

fn stages(sampling: Vec<(Kind, f64)>) -> Stages {
    Stages::new(
        Enrich::new(Resource {
            service: "svc".into(),
            environment: Some("prod".into()),
            release: None,
            host: Some("h1".into()),
        }),
        Redact::new(Redactor::default()),
        Sample::new(sampling),
    )
}

#[test]
fn enrich_fills_only_what_is_missing() {
    let s = stages(vec![]);
    let mut e = Event::new(Kind::Log, Level::Info, "x");
    e.resource.host = Some("own".into());
    assert_eq!(s.run(&mut e), Verdict::Keep);
    assert_eq!(e.resource.service, "svc");
    assert_eq!(e.resource.environment.as_deref(), Some("prod"));
    assert_eq!(e.resource.host.as_deref(), Some("own"));
}

#[test]
fn fingerprints_are_computed_after_redaction() {
    let s = stages(vec![]);
    let error = |token: &str| {
        let mut e = Event::new(Kind::Error, Level::Error, "x").with_error(ErrorDetail {
            error_type: "auth".into(),
            message: format!("refused Bearer {token}"),
            ..Default::default()
        });
        e.attributes.insert("target".into(), "app::auth".into());
        e
    };
    let (mut a, mut b) = (error("Tk1-aaaaaaaa"), error("Tk2-bbbbbbbbbbbb"));
    let _ = (s.run(&mut a), s.run(&mut b));
    assert_eq!(
        a.error.as_ref().unwrap().message,
        "refused Bearer [REDACTED]"
    );
    assert!(a.fingerprint.is_some());
    assert_eq!(
        a.fingerprint, b.fingerprint,
        "the secret does not split the group"
    );
    // The tracing target stands in for the frames, as the tracing layer did before.
    let expected = crate::fingerprint::fingerprint(
        "auth",
        "refused Bearer [REDACTED]",
        None,
        Some("app::auth"),
    );
    assert_eq!(a.fingerprint.as_deref(), Some(expected.as_str()));
    // An event that brings its own fingerprint keeps it; logs get none.
    let mut own = error("x");
    own.fingerprint = Some("mine".into());
    let _ = s.run(&mut own);
    assert_eq!(own.fingerprint.as_deref(), Some("mine"));
    let mut log = Event::new(Kind::Log, Level::Info, "x");
    let _ = s.run(&mut log);
    assert!(log.fingerprint.is_none());
}

#[test]
fn sampling_drops_and_counts_per_kind() {
    let s = stages(vec![(Kind::Log, 0.0), (Kind::Request, 1.0)]);
    for _ in 0..10 {
        assert_eq!(
            s.run(&mut Event::new(Kind::Log, Level::Info, "x")),
            Verdict::Drop
        );
        assert_eq!(
            s.run(&mut Event::new(Kind::Request, Level::Info, "x")),
            Verdict::Keep
        );
        assert_eq!(
            s.run(&mut Event::new(Kind::Error, Level::Error, "x")),
            Verdict::Keep
        );
    }
    assert_eq!(s.sample().sampled_out(), 10);
}

#[test]
fn stage_names_in_order() {
    let s = stages(vec![]);
    let names = [
        s.enrich.name(),
        s.redact.name(),
        s.fingerprint.name(),
        s.sample.name(),
    ];
    assert_eq!(names, ["enrich", "redact", "fingerprint", "sample"]);
}
