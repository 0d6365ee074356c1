//! Who is asking, and by which URL they reached us: the client address the
//! upload limits and the request log count, and the scheme and host the
//! token challenge names. Resolved once per request, here.
//!
//! Behind a load balancer the TCP peer is the balancer, and the scheme the
//! client used (often `https`, terminated at the balancer) is not ours.
//! When the peer is one of `server.trusted_proxies`, its `X-Forwarded-For`,
//! `X-Forwarded-Proto` and `X-Forwarded-Host` (or, for a field none of
//! those carries, RFC 7239's `Forwarded`) say what the balancer saw. From
//! any other peer those headers are ignored entirely, so a client can spoof
//! neither its address nor the realm.

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Uri, header};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// What the front knows about a request's client, put on every request as
/// an extension by [`resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    /// The client's address; `None` only when the connection's peer is
    /// unknown (a router driven without the listener).
    pub addr: Option<IpAddr>,
    /// The scheme the client used.
    pub scheme: Scheme,
    /// The host (and port) the client asked for, checked to be a plain
    /// host name or address; `None` when it sent none usable.
    pub host: Option<String>,
}

/// Who the request turned out to be from, filled in by the auth layer
/// (inside) for the access log (outside): a slot the log's middleware puts
/// on the request before it runs.
#[derive(Debug, Clone, Default)]
pub struct CallerName(std::sync::Arc<std::sync::OnceLock<String>>);

impl CallerName {
    pub fn set(&self, name: &str) {
        let _ = self.0.set(name.to_owned());
    }

    pub fn get(&self) -> Option<String> {
        self.0.get().cloned()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        if value.eq_ignore_ascii_case("https") {
            Some(Scheme::Https)
        } else if value.eq_ignore_ascii_case("http") {
            Some(Scheme::Http)
        } else {
            None
        }
    }
}

/// How the front resolves clients: the proxies it believes, and the
/// scheme of its own listener.
#[derive(Debug, Clone)]
pub struct Clients {
    trusted: Arc<[IpNet]>,
    https: bool,
}

impl Clients {
    pub fn new(trusted: Vec<IpNet>, https: bool) -> Self {
        Self {
            trusted: trusted.into(),
            https,
        }
    }

    fn trusts(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        self.trusted.iter().any(|net| net.contains(&addr))
    }

    /// The client of a request from `peer` with these headers.
    pub fn resolve(&self, peer: Option<IpAddr>, headers: &HeaderMap, uri: &Uri) -> ClientInfo {
        let mut info = ClientInfo::direct(peer, headers, uri, self.https);
        let Some(peer) = peer.filter(|&p| self.trusts(p)) else {
            return info;
        };
        let forwarded = Forwarded::parse(headers);
        let chain = list(headers, "x-forwarded-for");
        info.addr = Some(if chain.is_empty() {
            self.client_from(peer, forwarded.iter().map(|f| f.for_.as_deref()))
        } else {
            self.client_from(peer, chain.iter().map(|s| Some(s.as_str())))
        });
        // The first value is what the client-facing proxy saw.
        let proto = list(headers, "x-forwarded-proto").into_iter().next();
        let proto = proto.or_else(|| forwarded.iter().find_map(|f| f.proto.clone()));
        if let Some(scheme) = proto.as_deref().and_then(Scheme::parse) {
            info.scheme = scheme;
        }
        let host = list(headers, "x-forwarded-host").into_iter().next();
        let host = host.or_else(|| forwarded.iter().find_map(|f| f.host.clone()));
        if let Some(host) = host.filter(|h| plain_host(h)) {
            info.host = Some(host);
        }
        info
    }

    /// Walks a forwarded-for chain from the right, past every trusted
    /// proxy: the first address not trusted is the client. An entry that
    /// is no address (`unknown`, an obfuscated name) stops the walk at the
    /// last trusted hop, which then counts as the client.
    fn client_from<'a>(
        &self,
        peer: IpAddr,
        chain: impl DoubleEndedIterator<Item = Option<&'a str>>,
    ) -> IpAddr {
        let mut client = peer;
        for entry in chain.rev() {
            let Some(addr) = entry.and_then(parse_addr) else {
                break;
            };
            client = addr;
            if !self.trusts(addr) {
                break;
            }
        }
        canonical(client)
    }
}

impl ClientInfo {
    /// What the connection itself says: the peer, our own scheme, `Host`
    /// (or HTTP/2's `:authority`).
    pub fn direct(peer: Option<IpAddr>, headers: &HeaderMap, uri: &Uri, https: bool) -> Self {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| uri.authority().map(|a| a.as_str()))
            .filter(|h| plain_host(h))
            .map(str::to_owned);
        Self {
            addr: peer.map(canonical),
            scheme: if https { Scheme::Https } else { Scheme::Http },
            host,
        }
    }
}

/// The middleware, outermost in the router: puts a [`ClientInfo`] on
/// every request.
pub async fn resolve(State(clients): State<Clients>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    let info = clients.resolve(peer, req.headers(), req.uri());
    req.extensions_mut().insert(info);
    next.run(req).await
}

/// A host name, IPv4 or bracketed IPv6 address, with an optional port:
/// nothing that could break out of a URL or a quoted challenge.
fn plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]_".contains(c))
}

/// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, what a dual-stack
/// socket reports) as the IPv4 address it is, so that one client is one
/// key and `10.0.0.0/8` matches it.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:80`.
fn parse_addr(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|rest| rest.strip_suffix(']'))
                .and_then(|inner| inner.parse().ok())
        })
}

/// Every comma-separated value of every `name` header, in order.
fn list(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One element of RFC 7239's `Forwarded`: what one proxy saw.
#[derive(Debug, Default, PartialEq, Eq)]
struct Forwarded {
    for_: Option<String>,
    proto: Option<String>,
    host: Option<String>,
}

impl Forwarded {
    /// The elements of every `Forwarded` header, in order. Values are
    /// tokens or quoted strings; none of the three we read may hold a
    /// comma or a semicolon, so splitting on them is enough.
    fn parse(headers: &HeaderMap) -> Vec<Self> {
        list(headers, "forwarded")
            .iter()
            .map(|element| {
                let mut hop = Forwarded::default();
                for pair in element.split(';') {
                    let Some((key, value)) = pair.split_once('=') else {
                        continue;
                    };
                    let value = value.trim();
                    let value = value
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(value)
                        .to_owned();
                    match key.trim().to_ascii_lowercase().as_str() {
                        "for" => hop.for_ = Some(value),
                        "proto" => hop.proto = Some(value),
                        "host" => hop.host = Some(value),
                        _ => {}
                    }
                }
                hop
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        map
    }

    fn clients(trusted: &[&str]) -> Clients {
        Clients::new(
            trusted.iter().map(|t| t.parse().expect("net")).collect(),
            false,
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn resolve(clients: &Clients, peer: &str, pairs: &[(&str, &str)]) -> ClientInfo {
        clients.resolve(Some(ip(peer)), &headers(pairs), &Uri::from_static("/v2/"))
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let c = clients(&["10.0.0.0/8"]);
        let info = resolve(
            &c,
            "192.0.2.7",
            &[
                ("host", "berth.lan:5000"),
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "evil.example"),
                (
                    "forwarded",
                    "for=198.51.100.1;proto=https;host=evil.example",
                ),
            ],
        );
        assert_eq!(
            info,
            ClientInfo {
                addr: Some(ip("192.0.2.7")),
                scheme: Scheme::Http,
                host: Some("berth.lan:5000".into()),
            }
        );
    }

    #[test]
    fn a_trusted_peer_names_the_client_scheme_and_host() {
        let c = clients(&["10.0.0.0/8"]);
        let info = resolve(
            &c,
            "10.1.2.3",
            &[
                ("host", "berth-internal:5000"),
                ("x-forwarded-for", "203.0.113.9"),
                ("x-forwarded-proto", "https"),
                ("x-forwarded-host", "registry.example.com"),
            ],
        );
        assert_eq!(
            info,
            ClientInfo {
                addr: Some(ip("203.0.113.9")),
                scheme: Scheme::Https,
                host: Some("registry.example.com".into()),
            }
        );
    }

    #[test]
    fn the_chain_is_read_from_the_right_past_trusted_hops() {
        let c = clients(&["10.0.0.0/8", "192.0.2.1/32"]);
        // The client put a fake first entry; the balancer appended the
        // real one, then an inner proxy its own.
        let chain = [("x-forwarded-for", "1.1.1.1, 203.0.113.9, 192.0.2.1")];
        assert_eq!(
            resolve(&c, "10.0.0.5", &chain).addr,
            Some(ip("203.0.113.9"))
        );
        // Split over several headers, with ports and IPv6.
        let split = [
            ("x-forwarded-for", "[2001:db8::7]:4711"),
            ("x-forwarded-for", "10.9.9.9:80"),
        ];
        assert_eq!(
            resolve(&c, "10.0.0.5", &split).addr,
            Some(ip("2001:db8::7"))
        );
        // Every hop trusted: the leftmost is as far as we can see.
        let inside = [("x-forwarded-for", "10.3.3.3, 10.2.2.2")];
        assert_eq!(resolve(&c, "10.0.0.5", &inside).addr, Some(ip("10.3.3.3")));
        // Garbage stops the walk at the last trusted hop.
        let garbage = [("x-forwarded-for", "203.0.113.9, unknown, 10.2.2.2")];
        assert_eq!(resolve(&c, "10.0.0.5", &garbage).addr, Some(ip("10.2.2.2")));
        // No header: the proxy itself.
        assert_eq!(resolve(&c, "10.0.0.5", &[]).addr, Some(ip("10.0.0.5")));
    }

    #[test]
    fn rfc_7239_forwarded_fills_what_x_forwarded_does_not() {
        let c = clients(&["10.0.0.0/8"]);
        let info = resolve(
            &c,
            "10.0.0.5",
            &[(
                "forwarded",
                "for=\"[2001:db8::1]:4711\";proto=https;host=registry.example.com, for=10.4.4.4",
            )],
        );
        assert_eq!(info.addr, Some(ip("2001:db8::1")));
        assert_eq!(info.scheme, Scheme::Https);
        assert_eq!(info.host.as_deref(), Some("registry.example.com"));
        // X-Forwarded-For wins where both are sent.
        let both = [
            ("forwarded", "for=198.51.100.1"),
            ("x-forwarded-for", "203.0.113.9"),
        ];
        assert_eq!(resolve(&c, "10.0.0.5", &both).addr, Some(ip("203.0.113.9")));
    }

    #[test]
    fn forwarded_values_that_could_break_the_realm_are_ignored() {
        let c = clients(&["127.0.0.1/32"]);
        let info = resolve(
            &c,
            "127.0.0.1",
            &[
                ("host", "berth.lan"),
                ("x-forwarded-proto", "gopher"),
                ("x-forwarded-host", "evil\",x=\"y"),
            ],
        );
        assert_eq!(info.scheme, Scheme::Http);
        assert_eq!(info.host.as_deref(), Some("berth.lan"));
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_ranges() {
        let c = clients(&["10.0.0.0/8"]);
        let info = resolve(&c, "::ffff:10.0.0.5", &[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(info.addr, Some(ip("203.0.113.9")));
        let direct = resolve(&c, "::ffff:192.0.2.7", &[]);
        assert_eq!(direct.addr, Some(ip("192.0.2.7")));
    }
}
