use super::*;
use crate::event::{Breadcrumb, ErrorDetail, Kind, Level, Timestamp};
use serde_json::json;

// Test credentials are assembled at run time so that no complete credential-shaped literal
// sits in the source (secret scanners on the repository would flag it).
fn token(prefix: &str, body: &str, n: usize) -> String {
    format!(
        "{prefix}{}",
        body.repeat(n.div_ceil(body.len()))[..n].to_owned()
    )
}

fn jwt() -> String {
    // {"alg":"HS256","typ":"JWT"} . {"sub":"1234567890","name":"John"} . signature
    [
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9",
        "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ",
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
    ]
    .join(".")
}

/// Each rule masks its shape inside surrounding text, leaves the text around it alone, and
/// a second pass changes nothing.
fn masks(rule: &str, secret: &str) {
    let r = Redactor::default();
    assert!(r.rule_names().contains(&rule), "no rule {rule}");
    let text = format!("before {secret} after");
    let once = r.text(&text).into_owned();
    assert!(!once.contains(secret), "{rule}: {once}");
    assert!(
        once.starts_with("before ") && once.ends_with(" after"),
        "{rule}: {once}"
    );
    assert!(once.contains(REDACTED), "{rule}: {once}");
    assert_eq!(r.text(&once), once, "{rule}: not idempotent");
    // Only this rule is responsible.
    let without = Redactor::default().without_rule(rule);
    assert!(
        without.text(&text).contains(secret),
        "{rule}: another rule also matched"
    );
}

#[test]
fn rule_bearer() {
    masks("bearer", "Bearer abcDEF123.xyz_-");
    let r = Redactor::default();
    assert_eq!(
        r.text("authorization: bearer s3cr3t-t0ken"),
        "authorization: bearer [REDACTED]"
    );
    assert_eq!(
        r.text("Bearer information is public"),
        "Bearer information is public"
    );
    // A tester's input: "Bearer Bearer <token>" (a common client bug) leaked the token.
    assert_eq!(
        r.text("sent Authorization: Bearer Bearer Zx9MARKdouble1"),
        "sent Authorization: Bearer Bearer [REDACTED]"
    );
    // The scheme meets its token in other ways in text (a tester's inputs, and their kind):
    // a colon or `=`, URL encoding (`%20`, with escapes in the token), form encoding (`+`).
    for (input, expected) in [
        ("Bearer: Zx9MARKcolon1", "Bearer: [REDACTED]"),
        (
            "header Bearer:Zx9MARKcolon2 sent",
            "header Bearer:[REDACTED] sent",
        ),
        ("bearer=Zx9MARKequals3", "bearer=[REDACTED]"),
        (
            "/cb?auth=Bearer%20Zx9MARK%2Fenc4&x=1",
            "/cb?auth=Bearer%20[REDACTED]&x=1",
        ),
        ("auth=Bearer+Zx9MARKform5", "auth=Bearer+[REDACTED]"),
        (
            "Bearer%20Bearer%20Zx9MARKdouble6",
            "Bearer%20Bearer%20[REDACTED]",
        ),
        ("Basic: dXNlcjpodW50ZXIy", "Basic: [REDACTED]"),
        // `Bearer: t` URL-encoded (a tester's second round).
        ("Bearer%3A%20Zx9MARKpct7", "Bearer%3A%20[REDACTED]"),
        ("k=Bearer%3aZx9MARKpct8", "k=Bearer%3a[REDACTED]"),
        ("Bearer%3DZx9MARKpct9", "Bearer%3D[REDACTED]"),
        (
            "auth=Basic%20dXNlcjpodW50ZXIy%3D",
            "auth=Basic%20[REDACTED]",
        ),
    ] {
        assert_eq!(r.text(input), expected, "{input}");
    }
    // Words stay words: a colon after the scheme name in prose is not a credential.
    assert_eq!(
        r.text("Bearer: information about tokens"),
        "Bearer: information about tokens"
    );
    assert_eq!(
        r.text("BEARER bearer s3cr3t-t0ken"),
        "BEARER bearer [REDACTED]"
    );
    assert_eq!(
        r.text("Basic Basic dXNlcjpodW50ZXIy"),
        "Basic Basic [REDACTED]"
    );
}

/// tracepost's own secrets: a project API key in a log line or value (a tester found it
/// stored in full).
#[test]
fn rule_tracepost_api_key() {
    masks("tracepost-api-key", &token("tpk_", "0123456789abcdef", 64));
}

/// A secret glued to a word character (`s_sk_live_…`, `id=x_ghp_…`) is still a secret: the
/// prefix rules don't need a word boundary before the prefix.
#[test]
fn prefixed_tokens_glued_to_a_word_are_masked() {
    let r = Redactor::default();
    for secret in [
        token("sk_live_", "4eC39HqLyjWDarjtT1zdp7dc", 24),
        token("ghp_", "A1b2C3d4E5f6G7h8I9j0", 36),
        token("xoxb-", "1234567890-abcdef", 24),
        token("AIza", "SyA1b2C3d4E5f6G7h8I9j0kLmNoPq", 35),
        token("tpk_", "0123456789abcdef", 64),
    ] {
        for text in [
            format!("session_id: \"s_{secret}\""),
            format!("{secret}_prod"),
            format!("{secret}x"),
        ] {
            let out = r.text(&text);
            assert!(!out.contains(&secret), "{out}");
        }
    }
}

#[test]
fn rule_basic() {
    masks("basic", "Basic dXNlcjpodW50ZXIy");
    assert_eq!(
        Redactor::default().text("Basic auth is off"),
        "Basic auth is off"
    );
}

#[test]
fn rule_jwt() {
    masks("jwt", &jwt());
}

#[test]
fn rule_aws_access_key() {
    masks("aws-access-key", &token("AKIA", "IOSFODNN7EXAMPLE", 16));
    masks("aws-access-key", &token("ASIA", "Q2YZ3WX4VU5TS6RP", 16));
}

#[test]
fn rule_github_token() {
    masks("github-token", &token("ghp_", "aB3dE5fG7h", 36));
    masks("github-token", &token("gho_", "Zy9Xw8Vu7t", 36));
    masks(
        "github-token",
        &token("github_", &token("pat_", "11ABCDEFG0_x", 82), 86),
    );
}

#[test]
fn rule_stripe_key() {
    masks(
        "stripe-key",
        &token("sk_live_", "4eC39HqLyjWDarjtT1zdp7dc", 24),
    );
    masks("stripe-key", &token("rk_live_", "51H8x2Kd9", 30));
}

#[test]
fn rule_slack_token() {
    masks("slack-token", &token("xoxb-", "1234567890-", 40));
    masks("slack-token", &token("xoxp-", "98765-abcDE-", 50));
}

#[test]
fn rule_google_api_key() {
    masks(
        "google-api-key",
        &token("AIza", "SyD-9tSrke72PouQMnMX7", 35),
    );
}

#[test]
fn rule_private_key() {
    let pem = format!(
        "-----BEGIN RSA {}-----\nMIIEpAIBAAKCAQEA7\nabc\n-----END RSA {}-----",
        "PRIVATE KEY", "PRIVATE KEY"
    );
    masks("private-key", &pem);
    // Cut by a cap before its END line: masked to the end.
    let r = Redactor::default();
    let cut = format!("key: -----BEGIN {}-----\nMIIEvQIBADAN", "PRIVATE KEY");
    assert_eq!(r.text(&cut), "key: [REDACTED]");
}

#[test]
fn rule_url_credentials() {
    masks(
        "url-credentials",
        "postgres://app:hunter2@db.internal:5432/shop",
    );
    let r = Redactor::default();
    assert_eq!(
        r.text("connect to postgres://app:hunter2@db:5432/x failed"),
        "connect to postgres://app:[REDACTED]@db:5432/x failed"
    );
}

#[test]
fn rule_assignment() {
    masks("assignment", "password=hunter2");
    let r = Redactor::default();
    assert_eq!(
        r.text("login failed: password=hunter2 user=ann"),
        "login failed: password=[REDACTED] user=ann"
    );
    assert_eq!(
        r.text(r#"{"client_secret": "abc", "x": 1}"#),
        r#"{"client_secret": "[REDACTED]", "x": 1}"#
    );
    assert_eq!(
        r.text("GET /cb?access_token=abc&state=1"),
        "GET /cb?access_token=[REDACTED]&state=1"
    );
    assert_eq!(r.text("db_password: 'p w'"), "db_password: '[REDACTED]'");
    // A Rust path is not an assignment: backtraces and messages keep their frames.
    for path in [
        "at my_app::auth::token::verify",
        "jsonwebtoken::decode failed",
        "   3: app::secret_store::SecretStore::get\n             at src/secret_store.rs:10:5",
    ] {
        assert_eq!(r.text(path), path);
    }
    assert_eq!(r.text("token: abc"), "token: [REDACTED]");
}

#[test]
fn keys_with_credential_shapes_are_masked_at_every_depth() {
    let r = Redactor::default();
    let stripe = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
    let mut v = serde_json::json!({
        stripe: 1,
        "a": [{"b": {"password=hunter2": "x", "ok": 2}}],
    });
    r.json(&mut v);
    assert_eq!(
        v,
        serde_json::json!({
            "[REDACTED]": 1,
            "a": [{"b": {"password=[REDACTED]": "[REDACTED]", "ok": 2}}],
        })
    );
    // Idempotent.
    let once = v.clone();
    r.json(&mut v);
    assert_eq!(v, once);
    // Query parameter names too, percent-encoded or not.
    assert_eq!(
        r.query(&format!("{stripe}=1&password%3Dhunter2=2&page=3")),
        "%5BREDACTED%5D=1&password%3D%5BREDACTED%5D=[REDACTED]&page=3"
    );
}

#[test]
fn rules_are_configurable() {
    let r = Redactor::default();
    let acme = format!("acme_{}", "0123456789abcdef".repeat(2));
    let text = format!("key {acme}");
    assert_eq!(r.text(&text), text);
    let r = r.rule(
        ValueRule::new("acme", r"\bacme_[0-9a-f]{32}\b")
            .unwrap()
            .anchors(["acme_"]),
    );
    assert_eq!(r.text(&text), "key [REDACTED]");
    // A rule without anchors runs on every string.
    let r = Redactor::none().rule(ValueRule::new("digits", r"\d{6}").unwrap());
    assert_eq!(r.text("code 123456"), "code [REDACTED]");
    assert!(ValueRule::new("bad", "(").is_err());
    let r = Redactor::default().without_rule("jwt");
    assert!(!r.rule_names().contains(&"jwt"));
    assert!(r.text(&jwt()).contains("eyJ"));
}

#[test]
fn keys_are_configurable() {
    let r = Redactor::default();
    assert!(r.is_secret_key("Discarded"));
    let r = r.without_key_pattern("card").key_pattern("iban");
    assert!(!r.is_secret_key("Discarded"));
    assert!(r.is_secret_key("IBAN_number"));
    assert!(
        Redactor::default()
            .without_header("x-real-ip")
            .header_value("x-real-ip", "1.2.3.4")
            == "1.2.3.4"
    );
}

#[test]
fn the_scan_is_capped_and_cutting_is_idempotent() {
    let r = Redactor::default().max_scan_bytes(1024);
    let long = format!("{} {}", "a".repeat(2000), jwt());
    let once = r.text(&long).into_owned();
    assert!(once.len() <= 1024, "{}", once.len());
    assert!(!once.contains("eyJ"));
    assert!(once.contains("bytes cut"));
    assert_eq!(r.text(&once), once);
}

#[test]
fn strings_without_secrets_are_borrowed() {
    let r = Redactor::default();
    assert!(matches!(
        r.text("GET /users/42 took 3 ms"),
        Cow::Borrowed(_)
    ));
    assert!(matches!(r.text("the key of the monkey"), Cow::Borrowed(_)));
}

#[test]
fn masks_default_headers_case_insensitively() {
    let r = Redactor::default();
    assert_eq!(r.header_value("Authorization", "Bearer abc"), REDACTED);
    assert_eq!(r.header_value("X-Forwarded-For", "1.2.3.4"), REDACTED);
    assert_eq!(r.header_value("X-CSRF-Token", "abc"), REDACTED);
    assert_eq!(r.header_value("content-type", "text/plain"), "text/plain");
    assert_eq!(
        r.header_value("x-debug", "Bearer abc123def"),
        "Bearer [REDACTED]"
    );
}

#[test]
fn masks_secret_query_keys_only() {
    let r = Redactor::default();
    assert_eq!(
        r.query("page=2&access_token=abc&Password=x&q=shoes"),
        "page=2&access_token=[REDACTED]&Password=[REDACTED]&q=shoes"
    );
    assert_eq!(r.query("api%5Fkey=1"), "api%5Fkey=[REDACTED]");
    let once = r.query("page=2&token=abc");
    assert_eq!(r.query(&once), once);
    // Every encoding form decoding admits: an escape as the key's last three characters,
    // lowercase escapes, `+` for a space-free key, and escapes that are not UTF-8.
    for (query, want) in [
        ("passwor%64=hunter2", "passwor%64=[REDACTED]"),
        (
            "%70%61%73%73%77%6f%72%64=hunter2",
            "%70%61%73%73%77%6f%72%64=[REDACTED]",
        ),
        ("api%5fkey=1&q=%ff", "api%5fkey=[REDACTED]&q=%ff"),
        ("%ff%fe=1&token=2", "%ff%fe=1&token=[REDACTED]"),
        ("q=a+b&x=%", "q=a+b&x=%"),
    ] {
        assert_eq!(r.query(query), want, "{query}");
    }
}

#[test]
fn masks_nested_json_and_truncated_json() {
    let r = Redactor::default();
    let mut v = json!({"user": {"name": "ann", "password": "hunter2"}, "items": [{"card_number": "4111"}], "note": format!("t {}", jwt())});
    r.json(&mut v);
    assert_eq!(
        v,
        json!({"user": {"name": "ann", "password": REDACTED}, "items": [{"card_number": REDACTED}], "note": "t [REDACTED]"})
    );
    let cut = r#"{"name": "ann", "password": "hunter2", "token": 12345, "note": "cut her"#;
    let masked = r.body(Some("application/json"), cut);
    assert!(
        !masked.contains("hunter2") && !masked.contains("12345"),
        "{masked}"
    );
    assert!(masked.contains("\"name\": \"ann\""), "{masked}");
    assert_eq!(r.body(Some("application/json"), &masked), masked);
}

#[test]
fn masks_form_bodies() {
    let r = Redactor::default();
    let body = r.body(
        Some("application/x-www-form-urlencoded"),
        "user=ann&password=hunter2",
    );
    assert_eq!(body, "user=ann&password=[REDACTED]");
    assert_eq!(
        r.body(Some("application/x-www-form-urlencoded"), &body),
        body
    );
}

fn multipart_body(file: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"--XyZ\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nann\r\n");
    b.extend_from_slice(
        b"--XyZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nhunter2\r\n",
    );
    b.extend_from_slice(b"--XyZ\r\nContent-Disposition: form-data; name=\"avatar\"; filename=\"me.png\"\r\nContent-Type: image/png\r\n\r\n");
    b.extend_from_slice(file);
    b.extend_from_slice(b"\r\n--XyZ\r\nContent-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n{\"api_key\":\"k1\",\"n\":1}\r\n--XyZ--\r\n");
    b
}

#[test]
fn masks_multipart_parts_by_name_and_summarises_files() {
    let r = Redactor::default();
    let ct = "multipart/form-data; boundary=XyZ";
    let body = multipart_body(b"PNGDATA-secret-bytes");
    let out = r.body(Some(ct), std::str::from_utf8(&body).unwrap());
    assert!(out.contains("\r\n\r\nann\r\n"), "{out}");
    assert!(!out.contains("hunter2"), "{out}");
    assert!(
        out.contains("name=\"password\"\r\n\r\n[REDACTED]\r\n"),
        "{out}"
    );
    assert!(out.contains("[file me.png, 20 bytes, image/png]"), "{out}");
    assert!(!out.contains("PNGDATA"), "{out}");
    assert!(out.contains(r#"{"api_key":"[REDACTED]","n":1}"#), "{out}");
    assert!(out.ends_with("--XyZ--\r\n"), "{out}");
    assert_eq!(r.body(Some(ct), &out), out, "not idempotent");

    // A binary file part makes the body base64; it is decoded and kept as text.
    let binary = multipart_body(&[0xff, 0xd8, 0xff, 0x00, 0x01]);
    let mut captured = CapturedBody {
        text: base64::engine::general_purpose::STANDARD.encode(&binary),
        encoding: "base64".into(),
        truncated: false,
        content_type: Some(ct.into()),
    };
    r.captured_body(&mut captured);
    assert_eq!(captured.encoding, "utf8");
    assert!(
        captured.text.contains("[file me.png, 5 bytes, image/png]"),
        "{}",
        captured.text
    );
    assert!(!captured.text.contains("hunter2"));

    // Cut in the middle of the password part.
    let cut = &body[..body.len() / 3];
    let out = r.body(Some(ct), &String::from_utf8_lossy(cut));
    assert!(!out.contains("hunt"), "{out}");
}

#[test]
fn masks_logfmt_breadcrumbs() {
    let r = Redactor::default();
    assert_eq!(
        r.logfmt(r#"login user=ann password="hunter 2" session_id=abc n=1"#),
        "login user=ann password=[REDACTED] session_id=[REDACTED] n=1"
    );
    let once = r.logfmt("x password=[REDACTED]");
    assert_eq!(once, "x password=[REDACTED]");
}

#[test]
fn redacts_every_part_of_an_event() {
    let r = Redactor::default();
    let mut e = Event::new(
        Kind::Error,
        Level::Error,
        format!("auth with Bearer {}", "Zx81kd0PLq"),
    );
    e.attributes.insert("password".into(), "hunter2".into());
    e.attributes.insert(
        "nested".into(),
        json!({"deep": {"api_key": 7}, "list": [format!("jwt {}", jwt())]}),
    );
    e.attributes.insert("plain".into(), "fine".into());
    e.error = Some(ErrorDetail {
        error_type: "auth".into(),
        message: format!("bad token {}", jwt()),
        backtrace: None,
        location: None,
    });
    e.breadcrumbs.push(Breadcrumb {
        timestamp: Timestamp::now(),
        level: Level::Info,
        target: "app".into(),
        message: "calling api api_key=k-123".into(),
    });
    e.request = Some(RequestSnapshot {
        path: format!("/reset/{}", jwt()),
        query: Some("token=abc&x=1".into()),
        request_headers: vec![
            ("cookie".into(), "sid=1".into()),
            ("x-trace".into(), "ok".into()),
        ],
        ..Default::default()
    });
    r.event(&mut e);
    let text = serde_json::to_string(&e).unwrap();
    for secret in [
        "Zx81kd0PLq",
        "hunter2",
        "\"deep\":{\"api_key\":7",
        "eyJ",
        "k-123",
        "token=abc",
        "sid=1",
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert!(text.contains("\"plain\":\"fine\""));
    let before = e.clone();
    r.event(&mut e);
    assert_eq!(e, before, "redacting twice changes nothing");
}

#[test]
fn masks_textual_bodies_that_are_not_utf8() {
    // A stray invalid byte made these bodies base64, which carried the secret past the rules.
    let r = Redactor::default();
    for (ct, raw) in [
        (
            "application/x-www-form-urlencoded",
            &b"user=bob&password=hunter2\xff\xfe&x=1"[..],
        ),
        (
            "application/json",
            &b"{\"password\":\"hunter2\",\"x\":\"\xff\"}"[..],
        ),
        (
            "text/plain; charset=latin1",
            &b"Authorization: Bearer hunter2hunter2 \xe9"[..],
        ),
        ("application/xml", &b"<a>Bearer hunter2hunter2</a>\xff"[..]),
    ] {
        let mut captured = CapturedBody {
            text: base64::engine::general_purpose::STANDARD.encode(raw),
            encoding: "base64".into(),
            truncated: false,
            content_type: Some(ct.into()),
        };
        r.captured_body(&mut captured);
        assert_eq!(captured.encoding, "utf8", "{ct}");
        assert!(
            !captured.text.contains("hunter2"),
            "{ct}: {}",
            captured.text
        );
        assert!(
            captured.text.contains("[REDACTED]"),
            "{ct}: {}",
            captured.text
        );
    }
    // Binary types stay base64, byte-exact.
    let png = base64::engine::general_purpose::STANDARD.encode([0x89, b'P', b'N', b'G', 0xff]);
    let mut captured = CapturedBody {
        text: png.clone(),
        encoding: "base64".into(),
        truncated: false,
        content_type: Some("image/png".into()),
    };
    r.captured_body(&mut captured);
    assert_eq!((captured.encoding.as_str(), captured.text), ("base64", png));
}

/// Input can set the envelope's ids and resource (the ingest routes take them from the
/// client): secrets planted there are masked too (a tester's finding).
#[test]
fn the_envelope_strings_input_can_set_are_redacted() {
    let mut e = Event::new(Kind::Log, Level::Info, "hello");
    e.user_id = Some("user password=hunter2".into());
    e.session_id = Some("AKIAIOSFODNN7EXAMPLE".into());
    e.request_id = Some("Bearer abc.def.ghi".into());
    e.resource.service = "svc token=abcdef0123456789".into();
    e.resource.environment = Some("password=hunter2".into());
    e.resource.release = Some("Bearer abc.def.ghi".into());
    e.resource.host = Some("AKIAIOSFODNN7EXAMPLE".into());
    Redactor::default().event(&mut e);
    let text = serde_json::to_string(&e).unwrap();
    for secret in [
        "hunter2",
        "AKIAIOSFODNN7EXAMPLE",
        "abc.def.ghi",
        "abcdef0123456789",
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}

/// A small deterministic generator (xorshift), so that a failure names its seed.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }

    /// A short string of plain words, sometimes holding a key pattern, a rule anchor or a
    /// whole credential, in random ASCII case.
    fn string(&mut self, secrets: &[String]) -> String {
        let words = [
            "application/json",
            "127.0.0.1:8080",
            "GET",
            "/users/7",
            "identity",
            "ok",
            "",
            "password",
            "Token",
            "PWD",
            "://",
            ".ey",
            "akia",
            "Bearer",
            "basic",
            "github_pat_",
            "sk_live_",
            "xoxb-",
            "tpk_",
            "AIza",
            "secret",
            "API-KEY",
            "Credential",
            "=",
            ":",
            "\"",
            " ",
            "é",
            "\u{0}",
        ];
        let mut s = String::new();
        for _ in 0..self.next() % 5 {
            if self.next() % 8 == 0 {
                s.push_str(&secrets[(self.next() % secrets.len() as u64) as usize]);
            } else {
                let w = self.pick(&words);
                if self.next() % 2 == 0 {
                    s.push_str(&w.to_ascii_uppercase());
                } else {
                    s.push_str(w);
                }
            }
        }
        s
    }
}

/// The event redactor, which searches all of an event's short strings at once and skips the
/// per-string searches when nothing is found there, gives exactly what redacting each string
/// on its own gives (the reference: `text` per string, `is_secret_header` per header), on
/// generated events with key patterns, anchors and whole credentials in any string, in any
/// case, and split across neighbouring strings; and bodies (JSON, text, binary types) as
/// `captured_body` redacts them alone.
#[test]
fn the_one_search_over_an_event_masks_what_the_per_string_searches_mask() {
    let secrets = [
        format!("Bearer {}", token("", "aB3", 24)),
        jwt(),
        token("AKIA", "ABCDEFGHIJKLMNOP", 16),
        token("ghp_", "aB3dE", 36),
        token("sk_live_", "aB3dE", 24),
        "password=hunter2".to_owned(),
        "https://user:pa55@example.com".to_owned(),
    ];
    let r = Redactor::default();
    for seed in 1..=3000u64 {
        let mut g = Gen(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut e = Event::new(Kind::Request, Level::Info, g.string(&secrets));
        e.request_id = Some(g.string(&secrets));
        e.resource.host = Some(g.string(&secrets));
        let mut snapshot = RequestSnapshot {
            method: g.string(&secrets),
            path: g.string(&secrets),
            client_address: Some(g.string(&secrets)),
            ..Default::default()
        };
        for _ in 0..g.next() % 4 {
            let name = g.string(&secrets);
            snapshot.request_headers.push((name, g.string(&secrets)));
        }
        for _ in 0..g.next() % 3 {
            let name = g.pick(&["content-type", "set-cookie", "x-request-id", "X-Session"]);
            snapshot
                .response_headers
                .push((name.to_owned(), g.string(&secrets)));
        }
        for slot in [&mut snapshot.request_body, &mut snapshot.response_body] {
            let ct = g.pick(&["application/json", "text/plain", "application/octet-stream"]);
            *slot = match g.next() % 4 {
                0 => None,
                1 => Some(format!(
                    r#"{{"{}":"{}"}}"#,
                    g.string(&secrets),
                    g.string(&secrets)
                )),
                _ => Some(g.string(&secrets)),
            }
            .map(|text| CapturedBody {
                text,
                encoding: "utf8".into(),
                truncated: false,
                content_type: Some(ct.to_owned()),
            });
        }
        e.request = Some(snapshot);

        let mut expected = e.clone();
        let text = |s: &mut String| *s = r.text(s).into_owned();
        text(&mut expected.message);
        expected.request_id.as_mut().map(text);
        expected.resource.host.as_mut().map(text);
        text(&mut expected.resource.service);
        let req = expected.request.as_mut().unwrap();
        text(&mut req.method);
        text(&mut req.path);
        req.client_address.as_mut().map(text);
        for (k, v) in req
            .request_headers
            .iter_mut()
            .chain(req.response_headers.iter_mut())
        {
            text(k);
            if r.is_secret_header(k) {
                *v = REDACTED.to_owned();
            } else {
                text(v);
            }
        }
        for b in [&mut req.request_body, &mut req.response_body]
            .into_iter()
            .flatten()
        {
            r.captured_body(b);
        }

        let mut got = e.clone();
        r.event(&mut got);
        assert_eq!(
            serde_json::to_value(&got).unwrap(),
            serde_json::to_value(&expected).unwrap(),
            "seed {seed}: {e:?}"
        );
    }
}

/// A JSON body is kept as sent only when neither a key pattern nor an anchor occurs in it, in
/// any case, whether the packed (lowercased) search or the automaton decides.
#[test]
fn a_json_body_with_a_key_or_anchor_in_any_case_is_redacted() {
    let r = Redactor::default();
    for len in [0usize, 3, 15, 40, 200, 5000] {
        let pad = "x".repeat(len);
        for (doc, secret) in [
            (
                format!(r#"{{"a":"{pad}","PassWord":"hunter2"}}"#),
                "hunter2",
            ),
            (
                format!(r#"{{"a":"{pad}","b":"BEARER s3cr3tT0ken"}}"#),
                "s3cr3tT0ken",
            ),
            (format!(r#"{{"{pad}API_KEY":"k3y-v4lue"}}"#), "k3y-v4lue"),
        ] {
            let out = r.body(Some("application/json"), &doc);
            assert!(!out.contains(secret), "{len}: {out}");
            assert!(out.contains(REDACTED), "{len}: {out}");
        }
        let plain = format!(r#"{{"id":7,"name":"{pad}"}}"#);
        assert_eq!(r.body(Some("application/json"), &plain), plain);
    }
}
