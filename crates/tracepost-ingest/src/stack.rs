//! Browser stack traces (`error.stack`) parsed into frames, in both formats:
//!
//! - V8 (Chrome, Edge, Node): `    at fn (https://x/app.js:10:5)`, `    at https://x/app.js:10:5`,
//!   `    at async fn (…)`, `    at new Foo (…)`;
//! - SpiderMonkey and JavaScriptCore (Firefox, Safari): `fn@https://x/app.js:10:5`,
//!   `@https://x/app.js:10:5`, `fn/<@…`, `global code@…`.
//!
//! No regular expression is involved: each line is cut to [`MAX_LINE`] bytes first and then
//! split with linear string searches, so a long minified line costs linear time (a quadratic
//! regex froze a peer's pages for ~500 ms on one long line).

use serde::Serialize;

/// Lines are cut to this many bytes before parsing.
pub const MAX_LINE: usize = 1024;
/// At most this many frames are kept (the innermost).
pub const MAX_FRAMES: usize = 50;

/// One stack frame.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Frame {
    /// The function name, when the browser gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// The script URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 1-based line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// 1-based column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub col: Option<u32>,
    /// False for frames of browser extensions and native code.
    pub in_app: bool,
    /// True when a source map resolved this frame to its original position.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub mapped: bool,
}

/// Parses a raw `error.stack` into frames, innermost first. Lines that are not frames (the
/// `TypeError: message` header, blank lines) are skipped.
pub fn parse_stack(stack: &str) -> Vec<Frame> {
    stack
        .lines()
        .filter_map(|line| parse_line(tracepost_core::truncate_utf8(line, MAX_LINE)))
        .take(MAX_FRAMES)
        .collect()
}

/// Parses one stack line (callers cap its length first).
pub fn parse_line(line: &str) -> Option<Frame> {
    let line = line.trim();
    if let Some(rest) = line.strip_prefix("at ") {
        return Some(parse_v8(rest.trim()));
    }
    // Gecko / JavaScriptCore: `function@location`; the function part has no spaces except
    // Safari's `global code` / `eval code`.
    let at = line.rfind('@')?;
    // An `@` inside the URL (`https://user@host/…`) would put `://` before it.
    let (function, location) = (&line[..at], &line[at + 1..]);
    if function.contains("://") || location.is_empty() {
        return None;
    }
    let function = (!function.is_empty()).then(|| function.to_owned());
    let mut frame = parse_location(location);
    frame.function = function;
    Some(frame)
}

fn parse_v8(rest: &str) -> Frame {
    let rest = rest.strip_prefix("async ").unwrap_or(rest);
    // `fn (location)`: the location is in the last parentheses.
    if rest.ends_with(')') {
        if let Some(open) = find_location_paren(rest) {
            let function = rest[..open].trim();
            let mut inner = &rest[open + 1..rest.len() - 1];
            // `eval at g (url:1:2), <anonymous>:1:3`: the eval'd code's own position.
            if let Some(i) = inner.rfind(", ") {
                inner = &inner[i + 2..];
            }
            let mut frame = parse_location(inner);
            frame.function = (!function.is_empty()).then(|| function.to_owned());
            return frame;
        }
    }
    // `at url:l:c` (anonymous) or `at <anonymous>`.
    parse_location(rest)
}

/// The index of the `(` that opens the trailing location of a V8 frame.
fn find_location_paren(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 0usize;
    for (i, &b) in bytes.iter().enumerate().rev() {
        match b {
            b')' => depth += 1,
            b'(' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `url:line:col`, `url:line` or `url`.
fn parse_location(loc: &str) -> Frame {
    let loc = loc.trim();
    let mut frame = Frame::default();
    let (rest, last) = split_num(loc);
    let (file, line, col) = match last {
        Some(c) => match split_num(rest) {
            (f, Some(l)) => (f, Some(l), Some(c)),
            _ => (rest, Some(c), None),
        },
        None => (loc, None, None),
    };
    frame.line = line;
    frame.col = col;
    if !file.is_empty() {
        frame.in_app = !(file == "<anonymous>"
            || file == "native"
            || file == "[native code]"
            || file.starts_with("chrome-extension://")
            || file.starts_with("moz-extension://")
            || file.starts_with("safari-extension://")
            || file.starts_with("safari-web-extension://")
            || file.starts_with("webkit-masked-url:"));
        frame.file = Some(file.to_owned());
    }
    frame
}

/// Splits a trailing `:123` off `s`.
fn split_num(s: &str) -> (&str, Option<u32>) {
    match s.rfind(':') {
        Some(i) if i + 1 < s.len() && s[i + 1..].bytes().all(|b| b.is_ascii_digit()) => {
            match s[i + 1..].parse() {
                Ok(n) => (&s[..i], Some(n)),
                Err(_) => (s, None),
            }
        }
        _ => (s, None),
    }
}

/// The frames as a backtrace in the Rust standard library's layout (`  0: function` then
/// `             at file:line:col`), which the pipeline's fingerprint stage reads: the
/// function names of the top in-app frames take part in the fingerprint, the positions do
/// not, and frames of extensions or native code are listed without their `N:` prefix. A frame without a function name is named after its script (`<anonymous>@app.js`).
pub fn to_backtrace(frames: &[Frame]) -> String {
    let mut out = String::new();
    for (i, f) in frames.iter().enumerate() {
        let name = match (&f.function, &f.file) {
            (Some(n), _) => n.clone(),
            (None, Some(file)) => format!("<anonymous>@{}", script_name(file)),
            (None, None) => "<anonymous>".to_owned(),
        };
        if f.in_app {
            out.push_str(&format!("{i:4}: {name}\n"));
        } else {
            // No `N: ` prefix: the fingerprint stage only reads numbered lines.
            out.push_str(&format!("{i:4}  {name} (not in app)\n"));
        }
        if let Some(file) = &f.file {
            out.push_str(&format!("             at {file}"));
            if let Some(l) = f.line {
                out.push_str(&format!(":{l}"));
                if let Some(c) = f.col {
                    out.push_str(&format!(":{c}"));
                }
            }
            out.push('\n');
        }
    }
    out
}

/// The last path segment of a script URL, without query or fragment.
fn script_name(url: &str) -> &str {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    url.rsplit('/').next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(function: Option<&str>, file: &str, line: u32, col: u32) -> Frame {
        Frame {
            function: function.map(str::to_owned),
            file: Some(file.to_owned()),
            line: Some(line),
            col: Some(col),
            in_app: true,
            mapped: false,
        }
    }

    #[test]
    fn chrome_stacks() {
        let stack = "TypeError: Cannot read properties of undefined (reading 'x')\n    at handleClick (https://shop.example/assets/app.js:10:15)\n    at https://shop.example/assets/app.js:20:3\n    at async Promise.all (index 0)\n    at new Widget (https://shop.example/w.js:1:2)\n    at eval (eval at run (https://shop.example/a.js:1:1), <anonymous>:1:5)\n    at <anonymous>";
        let frames = parse_stack(stack);
        assert_eq!(
            frames[0],
            f(
                Some("handleClick"),
                "https://shop.example/assets/app.js",
                10,
                15
            )
        );
        assert_eq!(
            frames[1],
            f(None, "https://shop.example/assets/app.js", 20, 3)
        );
        assert_eq!(frames[2].function.as_deref(), Some("Promise.all"));
        assert_eq!(
            frames[3],
            f(Some("new Widget"), "https://shop.example/w.js", 1, 2)
        );
        assert_eq!(frames[4].file.as_deref(), Some("<anonymous>"));
        assert!(!frames[4].in_app);
        assert_eq!(frames.len(), 6);
    }

    #[test]
    fn firefox_and_safari_stacks() {
        let stack = "handleClick@https://shop.example/app.js:10:15\nlistener/<@https://shop.example/app.js:3:7\n@https://shop.example/app.js:1:1\nglobal code@https://shop.example/app.js:30:1\nforEach@[native code]\n";
        let frames = parse_stack(stack);
        assert_eq!(
            frames[0],
            f(Some("handleClick"), "https://shop.example/app.js", 10, 15)
        );
        assert_eq!(frames[1].function.as_deref(), Some("listener/<"));
        assert_eq!(frames[2], f(None, "https://shop.example/app.js", 1, 1));
        assert_eq!(frames[3].function.as_deref(), Some("global code"));
        assert!(!frames[4].in_app);
        let bt = to_backtrace(&frames);
        assert!(
            bt.starts_with(
                "   0: handleClick\n             at https://shop.example/app.js:10:15\n"
            ),
            "{bt}"
        );
        assert!(bt.contains("2: <anonymous>@app.js\n"), "{bt}");
    }

    #[test]
    fn long_lines_are_cut_first() {
        let line = format!("at f (https://x/{}.js:1:2)", "a".repeat(10 * MAX_LINE));
        let frames = parse_stack(&line);
        assert!(frames[0].file.as_ref().is_none_or(|f| f.len() <= MAX_LINE));
        let many = "at f (https://x/a.js:1:2)\n".repeat(10 * MAX_FRAMES);
        assert_eq!(parse_stack(&many).len(), MAX_FRAMES);
    }
}
