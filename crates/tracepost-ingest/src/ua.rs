//! `User-Agent` → browser, OS and device, with the `woothee` crate (Project Woothee's rules:
//! pure Rust, no data file to load, a few µs per string). Results are cached per string.

use std::num::NonZeroUsize;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{Map, Value};

/// `User-Agent` strings are cut to this many bytes before parsing.
pub const MAX_USER_AGENT: usize = 512;

/// A parsed `User-Agent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAgent {
    /// The header as sent (cut to [`MAX_USER_AGENT`]).
    pub original: String,
    /// Browser name (`Chrome`, `Firefox`, `Safari`, …), when known.
    pub name: Option<String>,
    /// Browser version.
    pub version: Option<String>,
    /// OS name (`Windows 10`, `Mac OSX`, `Android`, `iPhone`, `Linux`, …).
    pub os: Option<String>,
    /// OS version.
    pub os_version: Option<String>,
    /// Device category: `pc`, `smartphone`, `mobilephone`, `crawler`, `appliance`, `misc`.
    pub device: Option<String>,
}

fn known(s: &str) -> Option<String> {
    (!s.is_empty() && s != woothee::woothee::VALUE_UNKNOWN).then(|| s.to_owned())
}

impl UserAgent {
    /// Parses `header`.
    pub fn parse(header: &str) -> Self {
        let original = tracepost_core::truncate_utf8(header, MAX_USER_AGENT).to_owned();
        let parsed = woothee::parser::Parser::new().parse(&original);
        match parsed {
            Some(r) => UserAgent {
                name: known(r.name),
                version: known(r.version),
                os: known(r.os),
                os_version: known(&r.os_version),
                device: known(r.category),
                original,
            },
            None => UserAgent {
                original,
                name: None,
                version: None,
                os: None,
                os_version: None,
                device: None,
            },
        }
    }

    /// Writes `user_agent.original`, `user_agent.name`, `user_agent.version`, `os.name`,
    /// `os.version` and `device.type` (OpenTelemetry's names where it has them).
    pub fn write_attributes(&self, map: &mut Map<String, Value>) {
        map.insert("user_agent.original".into(), self.original.clone().into());
        for (k, v) in [
            ("user_agent.name", &self.name),
            ("user_agent.version", &self.version),
            ("os.name", &self.os),
            ("os.version", &self.os_version),
            ("device.type", &self.device),
        ] {
            if let Some(v) = v {
                map.insert(k.into(), v.clone().into());
            }
        }
    }
}

/// A small LRU cache of parsed `User-Agent`s: a site's visitors share few of them.
pub struct UserAgentCache(Mutex<lru::LruCache<String, Arc<UserAgent>>>);

impl std::fmt::Debug for UserAgentCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserAgentCache")
    }
}

impl Default for UserAgentCache {
    fn default() -> Self {
        UserAgentCache(Mutex::new(lru::LruCache::new(
            NonZeroUsize::new(1024).expect("non-zero"),
        )))
    }
}

impl UserAgentCache {
    /// The parsed `header`, from the cache when seen recently.
    pub fn get(&self, header: &str) -> Arc<UserAgent> {
        let header = tracepost_core::truncate_utf8(header, MAX_USER_AGENT);
        if let Some(hit) = self.0.lock().get(header) {
            return hit.clone();
        }
        let parsed = Arc::new(UserAgent::parse(header));
        self.0.lock().put(header.to_owned(), parsed.clone());
        parsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_browsers() {
        let chrome = UserAgent::parse("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36");
        assert_eq!(chrome.name.as_deref(), Some("Chrome"));
        assert_eq!(chrome.version.as_deref(), Some("131.0.0.0"));
        assert_eq!(chrome.os.as_deref(), Some("Linux"));
        assert_eq!(chrome.device.as_deref(), Some("pc"));
        let iphone = UserAgent::parse("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1");
        assert_eq!(iphone.name.as_deref(), Some("Safari"));
        assert_eq!(iphone.device.as_deref(), Some("smartphone"));
        let junk = UserAgent::parse("curl/8.0");
        assert_eq!(junk.original, "curl/8.0");
    }
}
