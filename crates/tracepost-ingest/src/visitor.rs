//! Cookieless visitors: when a batch carries no `visitor_id`, the server derives one, as
//! Plausible does: `SHA-256(daily salt ‖ project ‖ client address ‖ User-Agent)`, cut to 16
//! hex digits and prefixed `c_`. The salt is random, held only in memory, and replaced at
//! each UTC midnight, so the same browser gets the same id all day and an unlinkable one
//! the next; the address itself is never stored.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Derives daily visitor ids.
#[derive(Default)]
pub struct DailySalt {
    current: Mutex<Option<(u64, [u8; 32])>>,
}

impl std::fmt::Debug for DailySalt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DailySalt(***)")
    }
}

impl DailySalt {
    /// The visitor id of `ip` + `user_agent` in `project` at `now`.
    pub fn visitor_id(
        &self,
        project: &str,
        ip: Option<IpAddr>,
        user_agent: &str,
        now: SystemTime,
    ) -> String {
        let day = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / 86_400);
        let salt = {
            let mut cur = self.current.lock();
            match *cur {
                Some((d, salt)) if d == day => salt,
                _ => {
                    let mut salt = [0u8; 32];
                    rand::thread_rng().fill_bytes(&mut salt);
                    *cur = Some((day, salt));
                    salt
                }
            }
        };
        let mut h = Sha256::new();
        h.update(salt);
        h.update(project.as_bytes());
        h.update([0]);
        h.update(ip.map(|i| i.to_string()).unwrap_or_default().as_bytes());
        h.update([0]);
        h.update(user_agent.as_bytes());
        let digest = h.finalize();
        let mut out = String::from("c_");
        for b in &digest[..8] {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn same_day_same_id_next_day_another() {
        let salt = DailySalt::default();
        let ip = Some("203.0.113.5".parse().unwrap());
        let noon = UNIX_EPOCH + Duration::from_secs(20_000 * 86_400 + 43_200);
        let a = salt.visitor_id("p", ip, "UA", noon);
        assert_eq!(
            a,
            salt.visitor_id("p", ip, "UA", noon + Duration::from_secs(3600))
        );
        assert_ne!(a, salt.visitor_id("p", ip, "UA2", noon));
        assert_ne!(
            a,
            salt.visitor_id("p", ip, "UA", noon + Duration::from_secs(86_400))
        );
        assert_eq!(a.len(), 18);
    }
}
