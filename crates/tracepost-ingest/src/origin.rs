//! Origins, client addresses and the CDN country: who is sending, as far as the config lets
//! the server believe the request's headers.

use std::net::{IpAddr, Ipv6Addr};

use http::HeaderMap;

use crate::config::IngestConfig;

/// Whether the `Origin` header value `origin` (`https://shop.example:8080`) names the host in
/// the `Host` header (`shop.example:8080`): a page served by the same host as the routes.
pub fn same_host(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    rest.is_some_and(|r| !r.is_empty() && r.eq_ignore_ascii_case(host))
}

/// Whether pages of `origin` may send, per the allow-list (`*` allows any) or because the
/// page comes from the same host.
pub fn origin_allowed(config: &IngestConfig, origin: &str, host: Option<&str>) -> bool {
    same_host(origin, host)
        || config
            .allowed_origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
}

/// The client's address: the peer address, unless the peer is a trusted proxy — then the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries to its left
/// were written by the client and prove nothing). `None` when the peer is unknown.
pub fn client_ip(
    config: &IngestConfig,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
) -> Option<IpAddr> {
    let peer = peer?;
    if !config.is_trusted_proxy(peer) {
        return Some(peer);
    }
    let mut client = peer;
    // Walk the headers right to left (the last one was appended by the nearest proxy).
    let values: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    for value in values.iter().rev() {
        for entry in value.rsplit(',') {
            let Ok(ip) = entry.trim().parse::<IpAddr>() else {
                return Some(client);
            };
            client = ip;
            if !config.is_trusted_proxy(ip) {
                return Some(ip);
            }
        }
    }
    Some(client)
}

/// The rate-limit key of a client address: IPv4 as is, IPv6 by its /64 network (one
/// subscriber usually holds a whole /64, and could otherwise rotate through it).
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The client's country (ISO 3166-1 alpha-2, upper case) from the first configured CDN
/// header that holds one; Cloudflare's `XX` (unknown) and `T1` (Tor) are not countries.
pub fn country(config: &IngestConfig, headers: &HeaderMap) -> Option<String> {
    config.country_headers.iter().find_map(|name| {
        let v = headers.get(name.as_str())?.to_str().ok()?.trim();
        let ok = v.len() == 2 && v.bytes().all(|b| b.is_ascii_alphabetic());
        let v = v.to_ascii_uppercase();
        (ok && v != "XX" && v != "T1").then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let untrusted = IngestConfig::default();
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        let h = headers(&["1.2.3.4"]);
        assert_eq!(client_ip(&untrusted, Some(peer), &h), Some(peer));
        let trusted =
            IngestConfig::default().trusted_proxy("10.0.0.0/8".parse::<ipnet::IpNet>().unwrap());
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        // The client wrote "1.1.1.1" itself; the proxy appended the real address.
        let h = headers(&["1.1.1.1, 198.51.100.7"]);
        assert_eq!(
            client_ip(&trusted, Some(proxy), &h),
            Some("198.51.100.7".parse().unwrap())
        );
        let h = headers(&["1.1.1.1", "198.51.100.7, 10.9.9.9"]);
        assert_eq!(
            client_ip(&trusted, Some(proxy), &h),
            Some("198.51.100.7".parse().unwrap())
        );
        let h = headers(&["garbage"]);
        assert_eq!(client_ip(&trusted, Some(proxy), &h), Some(proxy));
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let a = limit_key("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = limit_key("2001:db8:1:2:bbbb::2".parse().unwrap());
        assert_eq!(a, b);
        assert_eq!(
            limit_key("::ffff:1.2.3.4".parse().unwrap()),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn country_only_from_configured_headers() {
        let mut h = HeaderMap::new();
        h.insert("cf-ipcountry", "de".parse().unwrap());
        assert_eq!(country(&IngestConfig::default(), &h), None);
        let c = IngestConfig::default().country_header("cf-ipcountry");
        assert_eq!(country(&c, &h).as_deref(), Some("DE"));
        h.insert("cf-ipcountry", "XX".parse().unwrap());
        assert_eq!(country(&c, &h), None);
    }

    #[test]
    fn same_host_pages_are_allowed() {
        let c = IngestConfig::default();
        assert!(origin_allowed(
            &c,
            "http://localhost:3000",
            Some("localhost:3000")
        ));
        assert!(!origin_allowed(
            &c,
            "http://evil.example",
            Some("localhost:3000")
        ));
        let c = c.allowed_origin("https://shop.example");
        assert!(origin_allowed(
            &c,
            "https://shop.example",
            Some("api.example")
        ));
    }
}
