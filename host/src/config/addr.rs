//! Listen addresses as operators write them: `127.0.0.1:5000`,
//! `[::1]:5000`, registry:2's `:5000` (every interface) and
//! `localhost:5000` or `host:port` (resolved once, at start).

use serde::{Deserialize, Deserializer};
use std::net::{SocketAddr, ToSocketAddrs as _};

/// What an address may look like, for error messages.
pub const FORMS: &str =
    "`:5000` (all interfaces), `127.0.0.1:5000`, `[::1]:5000` or `localhost:5000`";

/// Reads `text` as a listen address. A host name is resolved; with both an
/// IPv4 and an IPv6 address, the IPv4 one is used, as clients dialling
/// `localhost` expect.
pub fn parse(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let bad = |why: &str| format!("{text:?} {why}; write {FORMS}");
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(port) = text.strip_prefix(':') {
        let port: u16 = port.parse().map_err(|_| bad("has no valid port"))?;
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(bad("has no port"));
    };
    if host.is_empty() || host.contains(':') || host.starts_with('[') {
        return Err(bad("is not an address"));
    }
    let port: u16 = port.parse().map_err(|_| bad("has no valid port"))?;
    let resolved: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{text:?}: cannot resolve {host:?}: {e}"))?
        .collect();
    resolved
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| resolved.first())
        .copied()
        .ok_or_else(|| format!("{text:?}: {host:?} resolves to no address"))
}

/// `#[serde(deserialize_with)]` for an address field.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    parse(&text).map_err(serde::de::Error::custom)
}

/// `#[serde(deserialize_with)]` for an optional address field (with
/// `default`: a missing key stays `None`).
pub fn deserialize_optional<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    parse(&text).map(Some).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn accepts_the_usual_forms() {
        for (text, want) in [
            ("127.0.0.1:5000", "127.0.0.1:5000"),
            ("[::1]:5000", "[::1]:5000"),
            (":5000", "0.0.0.0:5000"),
            ("0.0.0.0:80", "0.0.0.0:80"),
            ("localhost:5000", "127.0.0.1:5000"),
        ] {
            assert_eq!(parse(text).expect(text).to_string(), want, "{text}");
        }
    }

    #[test]
    fn refuses_others_showing_the_forms() {
        for bad in [
            "",
            "5000",
            "localhost",
            ":",
            ":99999",
            "127.0.0.1:x",
            "::1:5000",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(err.contains("localhost:5000"), "{bad}: {err}");
        }
    }
}
