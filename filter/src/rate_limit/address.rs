//! Who the per-address budget for invalid tokens counts: an IPv4 address, or an IPv6 client's
//! prefix. An IPv6 client usually holds a whole /64 and picks any address in it for free, so
//! counting single IPv6 addresses would give it a fresh budget per request.

use std::net::{IpAddr, Ipv6Addr};

/// The default prefix length IPv6 clients are counted by.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// The owner of `ip`'s bucket: an IPv4 address as it is (also when written IPv4-mapped), an IPv6
/// address as its first `ipv6_prefix` bits (`2001:db8::/64`), anything unparsable as it is.
pub fn address_owner(ip: &str, ipv6_prefix: u8) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let bits = u32::from(ipv6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                let masked = Ipv6Addr::from(u128::from(v6) & mask);
                format!("{masked}/{bits}")
            }
        },
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => ip.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_by_their_prefix() {
        let a = address_owner("2001:db8:1:2:aaaa::1", 64);
        assert_eq!(a, "2001:db8:1:2::/64");
        assert_eq!(address_owner("2001:db8:1:2:ffff:ffff:ffff:ffff", 64), a);
        assert_ne!(address_owner("2001:db8:1:3::1", 64), a);
        assert_eq!(address_owner("2001:db8:1:3::1", 48), "2001:db8:1::/48");
        assert_eq!(address_owner("2001:db8::1", 128), "2001:db8::1/128");
        assert_eq!(address_owner("::ffff:192.0.2.7", 64), "192.0.2.7");
        assert_eq!(address_owner("192.0.2.7", 64), "192.0.2.7");
        assert_eq!(address_owner("not an address", 64), "not an address");
    }
}
