//! Error fingerprints: the same bug gets the same fingerprint across runs, hosts and deploys,
//! and different bugs get different ones.
//!
//! A fingerprint hashes the error type, the message with its variable parts normalised
//! (numbers, hex, UUIDs, quoted strings become placeholders) and the top in-app frames of the
//! backtrace (function names only, without addresses, hashes or line numbers, which change
//! between builds). Without a backtrace the route stands in for the frames.

/// How many in-app frames take part in a fingerprint.
pub const FRAMES: usize = 3;

/// Computes the fingerprint (16 hex digits) of an error.
pub fn fingerprint(
    error_type: &str,
    message: &str,
    backtrace: Option<&str>,
    route: Option<&str>,
) -> String {
    let mut h = Fnv64::new();
    h.write(error_type.as_bytes());
    h.write(&[0]);
    h.write(normalize_message(message).as_bytes());
    h.write(&[0]);
    let frames = backtrace
        .map(|b| in_app_frames(b, FRAMES))
        .unwrap_or_default();
    if frames.is_empty() {
        h.write(route.unwrap_or("").as_bytes());
    } else {
        for f in &frames {
            h.write(f.as_bytes());
            h.write(&[0]);
        }
    }
    format!("{:016x}", h.finish())
}

/// Replaces the variable parts of a message with placeholders: UUIDs → `<uuid>`,
/// hex runs of 8+ → `<hex>`, numbers → `<n>`, quoted strings → `<str>`.
pub fn normalize_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let chars: Vec<char> = message.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            if let Some(len) = chars[i + 1..].iter().position(|&d| d == c) {
                out.push_str("<str>");
                i += len + 2;
                continue;
            }
        }
        if c.is_ascii_hexdigit() && (i == 0 || !chars[i - 1].is_alphanumeric()) {
            let run = chars[i..]
                .iter()
                .take_while(|d| d.is_ascii_hexdigit() || **d == '-')
                .count();
            let word: String = chars[i..i + run].iter().collect();
            let is_uuid = run == 36 && word.matches('-').count() == 4;
            let end_ok = chars.get(i + run).is_none_or(|d| !d.is_alphanumeric());
            if end_ok && is_uuid {
                out.push_str("<uuid>");
                i += run;
                continue;
            }
            let hex_run = chars[i..]
                .iter()
                .take_while(|d| d.is_ascii_hexdigit())
                .count();
            let end_ok = chars.get(i + hex_run).is_none_or(|d| !d.is_alphanumeric());
            if end_ok && hex_run >= 8 && chars[i..i + hex_run].iter().any(|d| d.is_ascii_digit()) {
                out.push_str("<hex>");
                i += hex_run;
                continue;
            }
        }
        if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            out.push_str("<n>");
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// The first `n` application frames of a Rust backtrace (as printed by `std::backtrace`):
/// function names with the hash suffix removed, skipping the standard library, the runtime,
/// the web framework and tracepost itself.
pub fn in_app_frames(backtrace: &str, n: usize) -> Vec<String> {
    const SKIP: &[&str] = &[
        "std::",
        "core::",
        "alloc::",
        "tokio::",
        "tower::",
        "tower_http::",
        "axum::",
        "axum_core::",
        "hyper::",
        "hyper_util::",
        "futures_util::",
        "futures_core::",
        "futures::",
        "tracepost",
        "backtrace::",
        "rust_begin_unwind",
        "__rust",
        "<core::",
        "<alloc::",
        "<std::",
        "<tokio::",
        "<tower",
        "<axum",
        "<hyper",
        "<futures",
        "<tracepost",
        "actix_",
        "<actix_",
        "tracing::",
        "<tracing",
        "__libc",
        "_start",
        "clone3",
        "start_thread",
    ];
    backtrace
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            // "12: crate::module::function::h0123456789abcdef" (frame lines, not "at file:line")
            let (num, rest) = line.split_once(": ")?;
            num.parse::<u32>().ok()?;
            Some(strip_hash(rest.trim()))
        })
        .filter(|f| is_app_frame(f, SKIP))
        .take(n)
        .collect()
}

/// A frame is the application's unless it is in a skipped crate, or is a trait impl
/// (`<T as Trait>::method`) for a generic parameter or a skipped crate's type.
fn is_app_frame(frame: &str, skip: &[&str]) -> bool {
    if skip.iter().any(|s| frame.starts_with(s)) {
        return false;
    }
    if let Some(rest) = frame.strip_prefix('<') {
        let self_ty = rest.split(" as ").next().unwrap_or(rest);
        let generic_param = self_ty.len() <= 2
            && self_ty
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        let framework = skip
            .iter()
            .any(|s| self_ty.starts_with(s.trim_start_matches('<')));
        return !(generic_param || framework);
    }
    true
}

fn strip_hash(f: &str) -> String {
    match f.rfind("::h") {
        Some(i) if f.len() - i == 19 && f[i + 3..].chars().all(|c| c.is_ascii_hexdigit()) => {
            f[..i].to_owned()
        }
        _ => f.to_owned(),
    }
}

/// FNV-1a, 64-bit: tiny, and stable across Rust versions (unlike `DefaultHasher`).
struct Fnv64(u64);

impl Fnv64 {
    fn new() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BT: &str = "   0: std::backtrace::Backtrace::force_capture::h1111111111111111
             at /rustc/x/library/std/src/backtrace.rs:312:13
   1: tracepost_tower::panic::hook::h2222222222222222
   2: shop::handlers::checkout::h3333333333333333
             at ./src/handlers.rs:42:9
   3: shop::cart::total::h4444444444444444
   4: <F as axum::handler::Handler<((),),S>>::call::{{closure}}
   5: <shop::Cart as core::fmt::Display>::fmt::h6666666666666666
   6: tokio::runtime::task::harness::poll::h5555555555555555";

    #[test]
    fn normalises_variable_parts() {
        assert_eq!(
            normalize_message("user 42 not found in 'eu-west' (id 0b6d1c2e-5f1a-4c3b-9d8e-7f6a5b4c3d2e, key deadbeef12)"),
            "user <n> not found in <str> (id <uuid>, key <hex>)"
        );
        assert_eq!(normalize_message("took 12.5ms"), "took <n>ms");
    }

    #[test]
    fn keeps_app_frames_without_hashes() {
        assert_eq!(
            in_app_frames(BT, 3),
            vec![
                "shop::handlers::checkout",
                "shop::cart::total",
                "<shop::Cart as core::fmt::Display>::fmt"
            ]
        );
    }

    #[test]
    fn same_bug_same_fingerprint_different_bug_different() {
        let a = fingerprint("panic", "user 42 not found", Some(BT), Some("/users/{id}"));
        let b = fingerprint(
            "panic",
            "user 7 not found",
            Some(&BT.replace("h3333", "h9999")),
            Some("/other"),
        );
        assert_eq!(a, b, "ids, hashes and routes must not split one bug");
        let c = fingerprint("panic", "cart empty", Some(BT), None);
        assert_ne!(a, c);
        let d = fingerprint("http_5xx", "500 Internal Server Error", None, Some("/a"));
        let e = fingerprint("http_5xx", "500 Internal Server Error", None, Some("/b"));
        assert_ne!(d, e, "without frames the route separates errors");
        assert_eq!(a.len(), 16);
        // Stable across runs and builds: a fixed input has a fixed value.
        assert_eq!(
            fingerprint("t", "m", None, None),
            fingerprint("t", "m", None, None)
        );
    }
}
