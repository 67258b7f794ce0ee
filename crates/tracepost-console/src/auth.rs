//! Who may use the console: an admin token exchanged for a cookie session, or the host's own
//! auth layer; and CSRF protection for every state-changing request.
//!
//! * **Admin token**: `POST BASE/login` with the token (compared in constant time) sets
//!   `tracepost_console=<random 256-bit id>; HttpOnly; SameSite=Strict; Path=BASE`
//!   (`Secure` with [`ConsoleBuilder::secure_cookie`](crate::ConsoleBuilder::secure_cookie)).
//!   Sessions live in memory for [`SESSION_TTL`], at most [`MAX_SESSIONS`] (the oldest is
//!   signed out first); a restart signs everyone out.
//! * **Host auth**: the host wraps the router in its own authentication layer; the console
//!   trusts every request that reaches it.
//! * **CSRF**: every `POST` carries the session's random token in a `csrf` form field, and a
//!   browser's `Sec-Fetch-Site`, when sent, must be `same-origin` (or `none`). The cookie's
//!   `SameSite=Strict` is a third fence.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, HeaderValue, Method};
use parking_lot::Mutex;
use rand::RngCore;
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const COOKIE: &str = "tracepost_console";
/// How long a console session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at once.
pub const MAX_SESSIONS: usize = 256;

/// How requests are authenticated.
pub(crate) enum AuthMode {
    /// Sign in with this token.
    Token(String),
    /// The host's auth layer in front; one CSRF token for the instance.
    Host { csrf: String },
}

/// A signed-in user's session.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub(crate) csrf: String,
}

pub(crate) struct Auth {
    pub(crate) mode: AuthMode,
    pub(crate) secure_cookie: bool,
    sessions: Mutex<HashMap<String, (Session, Instant)>>,
}

/// 32 random bytes as hex.
pub(crate) fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl Auth {
    pub(crate) fn new(mode: AuthMode, secure_cookie: bool) -> Self {
        Auth {
            mode,
            secure_cookie,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// The session of this request, if it has one.
    pub(crate) fn session(&self, headers: &HeaderMap) -> Option<Session> {
        match &self.mode {
            AuthMode::Host { csrf } => Some(Session { csrf: csrf.clone() }),
            AuthMode::Token(_) => {
                let id = cookie_value(headers, COOKIE)?;
                let mut sessions = self.sessions.lock();
                match sessions.get(id) {
                    Some((s, expires)) if *expires > Instant::now() => Some(s.clone()),
                    Some(_) => {
                        sessions.remove(id);
                        None
                    }
                    None => None,
                }
            }
        }
    }

    /// True when `given` is the admin token (constant time).
    pub(crate) fn check_token(&self, given: &str) -> bool {
        match &self.mode {
            AuthMode::Token(t) => t.as_bytes().ct_eq(given.as_bytes()).into(),
            AuthMode::Host { .. } => false,
        }
    }

    /// Starts a session: its `Set-Cookie` value.
    pub(crate) fn sign_in(&self) -> HeaderValue {
        let id = random_token();
        let now = Instant::now();
        let mut sessions = self.sessions.lock();
        sessions.retain(|_, (_, exp)| *exp > now);
        if sessions.len() >= MAX_SESSIONS {
            if let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, (_, exp))| *exp)
                .map(|(k, _)| k.clone())
            {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(
            id.clone(),
            (
                Session {
                    csrf: random_token(),
                },
                now + SESSION_TTL,
            ),
        );
        self.cookie(&id, SESSION_TTL.as_secs())
    }

    /// Ends the request's session: the `Set-Cookie` value that clears it.
    pub(crate) fn sign_out(&self, headers: &HeaderMap) -> HeaderValue {
        if let Some(id) = cookie_value(headers, COOKIE) {
            self.sessions.lock().remove(id);
        }
        self.cookie("", 0)
    }

    fn cookie(&self, value: &str, max_age: u64) -> HeaderValue {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{COOKIE}={value}; Path={}; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}",
            crate::BASE
        ))
        .expect("cookie value is ASCII")
    }
}

/// Why a state-changing request was refused.
pub(crate) fn csrf_problem(
    method: &Method,
    headers: &HeaderMap,
    session: &Session,
    token: &str,
) -> Option<&'static str> {
    if *method != Method::POST {
        return None;
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site != "same-origin" && site != "none" {
            return Some("cross-site request refused (Sec-Fetch-Site)");
        }
    }
    if !bool::from(session.csrf.as_bytes().ct_eq(token.as_bytes())) {
        return Some("missing or wrong CSRF token (field csrf)");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_and_csrf() {
        let auth = Auth::new(AuthMode::Token("t".repeat(20)), false);
        assert!(auth.check_token(&"t".repeat(20)));
        assert!(!auth.check_token("nope"));
        let cookie = auth.sign_in();
        let text = cookie.to_str().unwrap();
        assert!(text.contains("HttpOnly") && text.contains("SameSite=Strict"));
        let id = text.split(';').next().unwrap().to_owned();
        let mut h = HeaderMap::new();
        assert!(auth.session(&h).is_none());
        h.insert(header::COOKIE, HeaderValue::from_str(&id).unwrap());
        let s = auth.session(&h).expect("signed in");
        assert_eq!(csrf_problem(&Method::POST, &h, &s, &s.csrf), None);
        assert!(csrf_problem(&Method::POST, &h, &s, "forged").is_some());
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(csrf_problem(&Method::POST, &h, &s, &s.csrf).is_some());
        auth.sign_out(&h);
        assert!(auth.session(&h).is_none());
    }
}
