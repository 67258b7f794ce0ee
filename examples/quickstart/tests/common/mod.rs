//! The quickstart binary as a child process, for the tests that drive it from outside (the
//! copy-paste clients, the Node OpenTelemetry SDK).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running quickstart with its own data directory; killed when dropped.
pub struct Quickstart {
    pub child: Child,
    /// `host:port` it listens on.
    pub addr: String,
    pub data: tempfile::TempDir,
    /// What it printed on stderr so far (the console sink's lines).
    pub stderr: Arc<Mutex<String>>,
}

impl Quickstart {
    /// Starts it on a free port with `env` added, and waits for its banner.
    pub fn start(env: &[(&str, &str)]) -> Quickstart {
        Self::start_in(tempfile::tempdir().unwrap(), env)
    }

    /// Starts it with `data` as its data directory.
    pub fn start_in(data: tempfile::TempDir, env: &[(&str, &str)]) -> Quickstart {
        let mut child = Command::new(env!("CARGO_BIN_EXE_quickstart"))
            .env("QUICKSTART_ADDR", "127.0.0.1:0")
            .env("TRACEPOST_DATA", data.path())
            .env("RUST_LOG", "warn")
            // The developer's own replay settings don't leak into the tests.
            .env_remove("QUICKSTART_RRWEB_JS")
            .env_remove("QUICKSTART_RRWEB_PLAYER")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let stderr = stderr.clone();
            let mut pipe = BufReader::new(child.stderr.take().unwrap());
            std::thread::spawn(move || {
                let mut line = String::new();
                while pipe.read_line(&mut line).unwrap_or(0) > 0 {
                    stderr.lock().unwrap().push_str(&line);
                    line.clear();
                }
            });
        }
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut addr = None;
        let mut line = String::new();
        while addr.is_none() && stdout.read_line(&mut line).unwrap() > 0 {
            addr = line
                .split("listening on http://")
                .nth(1)
                .map(|a| a.trim().to_owned());
            line.clear();
        }
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let addr = addr
            .unwrap_or_else(|| panic!("no banner; stderr:\n{}", stderr.lock().unwrap().as_str()));
        Quickstart {
            child,
            addr,
            data,
            stderr,
        }
    }

    /// The events in its NDJSON files.
    pub fn ndjson(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for f in tracepost::sinks::JsonlFile::files(self.data.path()).unwrap_or_default() {
            for l in std::fs::read_to_string(f).unwrap_or_default().lines() {
                if let Ok(e) = serde_json::from_str(l) {
                    out.push(e);
                }
            }
        }
        out
    }

    /// The NDJSON events for which `pick` holds, once there are `n` of them (or `within`
    /// has passed), then once more after `settle` to see any duplicate arrive too.
    pub fn wait_for(
        &self,
        n: usize,
        within: Duration,
        pick: impl Fn(&serde_json::Value) -> bool,
    ) -> Vec<serde_json::Value> {
        let start = Instant::now();
        while start.elapsed() < within {
            if self.ndjson().iter().filter(|e| pick(e)).count() >= n {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(500));
        self.ndjson().into_iter().filter(|e| pick(e)).collect()
    }
}

impl Drop for Quickstart {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 POST of `body` with `headers`: the response (head and body).
pub fn post(addr: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Whether `tool` runs; without it the test is skipped, except under `CI=true`.
pub fn have(tool: &str) -> bool {
    let ok = Command::new(tool).arg("--version").output().is_ok()
        || Command::new(tool).arg("version").output().is_ok();
    if !ok {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "{tool} is missing (scripts/setup.sh installs it)"
        );
        eprintln!("SKIPPED: {tool} is not installed (scripts/setup.sh installs it)");
    }
    ok
}
