//! Who may use the admin API: requests whose `Host` is the listener's own address,
//! a loopback name, or a name allowed with `--admin-host` (so a web page elsewhere
//! cannot reach it through DNS rebinding); state-changing `POST`s must be
//! `application/json` (which a browser form cannot send cross-site); bodies are small.

use std::net::{IpAddr, SocketAddr};

use crate::error::ProxyError;
use crate::http::wire::header_str;

/// The largest admin request body.
pub const MAX_BODY: usize = 64 * 1024;

/// The admin API's gatekeeper.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// The listener's own address.
    listen: Option<SocketAddr>,
    /// Extra host names allowed (`--admin-host`), lowercase.
    names: Vec<String>,
}

/// The host part of a `Host` value (`[::1]:8060` -> `::1`, `a:1` -> `a`).
fn host_part(authority: &str) -> &str {
    let a = authority.trim();
    if let Some(rest) = a.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match a.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => a,
    }
}

impl Guard {
    pub fn new(listen: Option<SocketAddr>, names: &[String]) -> Guard {
        Guard {
            listen,
            names: names.iter().map(|n| n.to_ascii_lowercase()).collect(),
        }
    }

    /// Whether a `Host` (or `:authority`) names this listener.
    fn host_allowed(&self, authority: &str) -> bool {
        let host = host_part(authority).to_ascii_lowercase();
        if host == "localhost" || host.ends_with(".localhost") || self.names.contains(&host) {
            return true;
        }
        match host.parse::<IpAddr>() {
            Ok(ip) => ip.is_loopback() || self.listen.is_some_and(|l| l.ip() == ip),
            Err(_) => false,
        }
    }

    /// Refuses a request the admin API must not act on: `403` for a foreign host,
    /// `415` for a state-changing request that is not JSON, `413` for a large body.
    pub fn check(&self, parts: &http::request::Parts, body_len: usize) -> Result<(), ProxyError> {
        let authority = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| header_str(&parts.headers, "host").map(str::to_string));
        match authority {
            Some(a) if self.host_allowed(&a) => {}
            Some(a) => {
                return Err(ProxyError::Refused(format!(
                    "the admin API answers only requests for this listener or a loopback name, not `{}` \
                     (allow a name with --admin-host)",
                    crate::matching::clip(&a, 100)
                )))
            }
            None => return Err(ProxyError::Refused("an admin request needs a Host header".into())),
        }
        if parts.method == http::Method::POST {
            let json = header_str(&parts.headers, "content-type")
                .and_then(|v| v.split(';').next())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
            if !json {
                return Err(ProxyError::UnsupportedMedia(
                    "admin requests that change state must be sent as content-type: application/json".into(),
                ));
            }
        }
        if body_len > MAX_BODY {
            return Err(ProxyError::TooLarge(MAX_BODY));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, host: Option<&str>, ct: Option<&str>) -> http::request::Parts {
        let mut b = http::Request::builder().method(method).uri("/_graphvcr/sessions");
        if let Some(h) = host {
            b = b.header("host", h);
        }
        if let Some(c) = ct {
            b = b.header("content-type", c);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn loopback_own_and_allowed_hosts_pass_others_do_not() {
        let g = Guard::new(Some("10.0.0.5:8060".parse().unwrap()), &["graphvcr".into()]);
        for ok in [
            "127.0.0.1:8060",
            "localhost",
            "[::1]:8060",
            "10.0.0.5:8060",
            "GraphVCR:8060",
            "app.localhost",
        ] {
            assert!(g.check(&parts("GET", Some(ok), None), 0).is_ok(), "{ok}");
        }
        for bad in ["evil.example:8060", "10.0.0.6:8060", "127.0.0.1.evil.example"] {
            assert!(
                matches!(g.check(&parts("GET", Some(bad), None), 0), Err(ProxyError::Refused(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn state_changes_must_be_json_and_small() {
        let g = Guard::default();
        let plain = parts("POST", Some("127.0.0.1"), Some("text/plain"));
        assert!(matches!(g.check(&plain, 2), Err(ProxyError::UnsupportedMedia(_))));
        let json = parts("POST", Some("127.0.0.1"), Some("application/json; charset=utf-8"));
        assert!(g.check(&json, 2).is_ok());
        assert!(matches!(g.check(&json, MAX_BODY + 1), Err(ProxyError::TooLarge(_))));
        assert!(g.check(&parts("DELETE", Some("127.0.0.1"), None), 0).is_ok());
    }
}
