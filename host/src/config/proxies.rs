//! `server.trusted_proxies`: addresses or CIDR ranges. A bare address is
//! the range of just that address, because that is how operators write one
//! load balancer (`10.0.0.5`), and `ipnet` alone would refuse it.

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};
use std::net::IpAddr;

/// Reads `10.0.0.0/8`, `10.0.0.5`, `fd00::/8` or `::1`.
pub fn parse(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net);
    }
    text.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
        format!("{text:?} is not an address or range like 10.0.0.5, 10.0.0.0/8 or fd00::/8")
    })
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|text| parse(text).map_err(serde::de::Error::custom))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn takes_ranges_and_bare_addresses() {
        for (text, shown) in [
            ("10.0.0.0/8", "10.0.0.0/8"),
            ("10.0.0.5", "10.0.0.5/32"),
            (" ::1 ", "::1/128"),
            ("fd00::/8", "fd00::/8"),
        ] {
            assert_eq!(parse(text).expect(text).to_string(), shown);
        }
        for bad in ["", "10.0.0", "10.0.0.0/33", "lb.example.com"] {
            assert!(parse(bad).is_err(), "{bad:?} must not parse");
        }
    }
}
