//! Where Butterfly may connect on a tenant's behalf (identity-provider fetches): the address
//! policy and the URL policy. Both are pure; the outbound HTTP client applies the address
//! policy to every socket address right before it connects, and the URL policy to every URL
//! before it is fetched or handed to a browser.
//!
//! The address policy refuses every range of the IANA IPv4 and IPv6 special-purpose address
//! registries (globally reachable or not), multicast, the deprecated site-local and
//! IPv4-compatible IPv6 ranges, and everything outside global unicast `2000::/3`. IPv6 forms
//! that embed an IPv4 address (mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`) are judged
//! by the embedded address; 6to4 (`2002::/16`) and Teredo (`2001::/32`) are refused outright,
//! since they tunnel to an address we cannot see. Loopback is allowed only where the caller
//! says so (the local stack talking to a test provider).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IPv4 network: address and prefix length.
type V4Net = (u32, u8);

/// The IANA IPv4 special-purpose registry, plus multicast and limited broadcast. Loopback
/// (127/8) is handled separately.
const V4_REFUSED: &[V4Net] = &[
    (0x0000_0000, 8),  // 0.0.0.0/8 "this network"
    (0x0A00_0000, 8),  // 10.0.0.0/8 private use
    (0x6440_0000, 10), // 100.64.0.0/10 shared address space (carrier-grade NAT)
    (0xA9FE_0000, 16), // 169.254.0.0/16 link local (cloud metadata endpoints)
    (0xAC10_0000, 12), // 172.16.0.0/12 private use
    (0xC000_0000, 24), // 192.0.0.0/24 IETF protocol assignments
    (0xC000_0200, 24), // 192.0.2.0/24 TEST-NET-1
    (0xC01F_C400, 24), // 192.31.196.0/24 AS112-v4
    (0xC034_C100, 24), // 192.52.193.0/24 AMT
    (0xC058_6300, 24), // 192.88.99.0/24 deprecated 6to4 relay anycast
    (0xC0A8_0000, 16), // 192.168.0.0/16 private use
    (0xC0AF_3000, 24), // 192.175.48.0/24 direct delegation AS112
    (0xC612_0000, 15), // 198.18.0.0/15 benchmarking
    (0xC633_6400, 24), // 198.51.100.0/24 TEST-NET-2
    (0xCB00_7100, 24), // 203.0.113.0/24 TEST-NET-3
    (0xE000_0000, 4),  // 224.0.0.0/4 multicast
    (0xF000_0000, 4),  // 240.0.0.0/4 reserved, and 255.255.255.255 limited broadcast
];

/// An IPv6 network: address and prefix length.
type V6Net = (u128, u8);

/// The IANA IPv6 special-purpose registry ranges inside `2000::/3` (everything outside it is
/// refused anyway), except the embedding forms decoded in [`embedded_v4`].
const V6_REFUSED_IN_GLOBAL: &[V6Net] = &[
    (0x2001_0000_0000_0000_0000_0000_0000_0000, 23), // IETF protocol assignments (Teredo, ORCHID, benchmarking, AMT, AS112, drone DETs, anycast)
    (0x2001_0db8_0000_0000_0000_0000_0000_0000, 32), // documentation
    (0x2002_0000_0000_0000_0000_0000_0000_0000, 16), // 6to4
    (0x2620_004f_8000_0000_0000_0000_0000_0000, 48), // AS112-v6 direct delegation
    (0x3fff_0000_0000_0000_0000_0000_0000_0000, 20), // documentation
];

fn in_v4(ip: u32, (net, len): V4Net) -> bool {
    len == 0 || (ip ^ net) >> (32 - u32::from(len)) == 0
}

fn in_v6(ip: u128, (net, len): V6Net) -> bool {
    len == 0 || (ip ^ net) >> (128 - u32::from(len)) == 0
}

/// The IPv4 address an IPv6 address stands for, where the form only embeds one: IPv4-mapped
/// (`::ffff:0:0/96`) and the well-known NAT64 prefix (`64:ff9b::/96`).
pub fn embedded_v4(ip: &Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(*ip);
    let low = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    if in_v6(bits, (0x0000_0000_0000_0000_0000_ffff_0000_0000, 96))
        || in_v6(bits, (0x0064_ff9b_0000_0000_0000_0000_0000_0000, 96))
    {
        Some(low)
    } else {
        None
    }
}

/// Whether a connection to `ip` may be made for a tenant. `allow_loopback` admits 127/8 and
/// `::1` (and their mapped forms) and nothing else.
pub fn ip_allowed(ip: IpAddr, allow_loopback: bool) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_allowed(v4, allow_loopback),
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_v4(&v6) {
                return v4_allowed(v4, allow_loopback);
            }
            if v6 == Ipv6Addr::LOCALHOST {
                return allow_loopback;
            }
            let bits = u128::from(v6);
            // Only global unicast: this refuses ::/96 (unspecified, IPv4-compatible), 64:ff9b:1::/48,
            // 100::/64, fc00::/7, fe80::/10, fec0::/10, ff00::/8 and every unassigned range.
            in_v6(bits, (0x2000_0000_0000_0000_0000_0000_0000_0000, 3))
                && !V6_REFUSED_IN_GLOBAL.iter().any(|n| in_v6(bits, *n))
        }
    }
}

fn v4_allowed(ip: Ipv4Addr, allow_loopback: bool) -> bool {
    let bits = u32::from(ip);
    if in_v4(bits, (0x7F00_0000, 8)) {
        return allow_loopback;
    }
    !V4_REFUSED.iter().any(|n| in_v4(bits, *n))
}

fn is_loopback_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback() || embedded_v4(&ip).is_some_and(|v4| v4.is_loopback()),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Checks a URL we are about to fetch for a tenant, or to send a browser to: https (http only
/// on loopback, and only where allowed), no credentials, and an IP-literal host must pass
/// [`ip_allowed`]. Host names are checked again, address by address, when the outbound
/// client connects.
pub fn check_url(url: &url::Url, allow_loopback_http: bool) -> Result<(), String> {
    match url.scheme() {
        "https" => {}
        "http" if allow_loopback_http && is_loopback_host(url) => {}
        "http" => return Err(format!("{} must use https", redact(url))),
        other => return Err(format!("{} has the unsupported scheme {other:?}", redact(url))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL must not contain credentials".into());
    }
    match url.host() {
        None => Err(format!("{} has no host", redact(url))),
        Some(url::Host::Ipv4(ip)) if !ip_allowed(IpAddr::V4(ip), allow_loopback_http) => {
            Err(format!("{} points at a private, reserved or loopback address", redact(url)))
        }
        Some(url::Host::Ipv6(ip)) if !ip_allowed(IpAddr::V6(ip), allow_loopback_http) => {
            Err(format!("{} points at a private, reserved or loopback address", redact(url)))
        }
        Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") && !allow_loopback_http => {
            Err(format!("{} points at a loopback address", redact(url)))
        }
        _ => Ok(()),
    }
}

/// Checks a URL a provider's discovery document names: [`check_url`], and the same host and
/// port as the issuer (a provider's endpoints live on its own host; a document naming another
/// host is refused before anything is fetched from it).
pub fn check_provider_url(url: &url::Url, issuer: &url::Url, allow_loopback_http: bool) -> Result<(), String> {
    check_url(url, allow_loopback_http)?;
    if url.host() != issuer.host() || url.port_or_known_default() != issuer.port_or_known_default() {
        return Err(format!("{} is not on the issuer's host", redact(url)));
    }
    if url.scheme() != issuer.scheme() {
        return Err(format!("{} does not use the issuer's scheme", redact(url)));
    }
    Ok(())
}

/// A URL as it may appear in an error: scheme, host and path only (no query, no credentials),
/// at most 200 characters.
pub fn redact(url: &url::Url) -> String {
    let mut s = format!("{}://{}{}", url.scheme(), url.host_str().unwrap_or(""), port_suffix(url));
    s.push_str(url.path());
    crate::text::bounded(&s, 200)
}

fn port_suffix(url: &url::Url) -> String {
    url.port().map(|p| format!(":{p}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> bool {
        ip_allowed(s.parse().unwrap(), false)
    }

    #[test]
    fn refuses_every_ipv4_special_purpose_range() {
        for bad in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.1.2.3",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.1",
            "192.0.0.170",
            "192.0.2.1",
            "192.31.196.1",
            "192.52.193.1",
            "192.88.99.1",
            "192.168.1.1",
            "192.175.48.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.1",
            "203.0.113.1",
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!ok(bad), "{bad} allowed");
        }
        for good in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "198.20.0.1",
            "192.0.1.1",
            "223.255.255.255",
        ] {
            assert!(ok(good), "{good} refused");
        }
    }

    #[test]
    fn refuses_every_ipv6_special_purpose_range_and_decodes_embedded_ipv4() {
        for bad in [
            "::",
            "::1",
            "::a00:1",         // IPv4-compatible ::10.0.0.1
            "::8.8.8.8",       // IPv4-compatible, deprecated whatever it embeds
            "::ffff:10.0.0.1", // mapped private
            "::ffff:169.254.169.254",
            "::ffff:127.0.0.1",
            "::ffff:0:a00:1",  // ::ffff:0:0/96 SIIT form
            "64:ff9b::a00:1",  // NAT64 of 10.0.0.1
            "64:ff9b::7f00:1", // NAT64 of 127.0.0.1
            "64:ff9b:1::1",    // local-use translation
            "100::1",          // discard-only
            "2001::1",         // Teredo
            "2001:2::1",       // benchmarking
            "2001:10::1",      // ORCHID
            "2001:db8::1",     // documentation
            "2002:a00:1::1",   // 6to4 of 10.0.0.1
            "2002:808:808::1", // 6to4 of 8.8.8.8: refused outright
            "2620:4f:8000::1", // AS112
            "3fff::1",         // documentation
            "5f00::1",         // SRv6 SIDs
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1", // deprecated site-local
            "ff02::1",
        ] {
            assert!(!ok(bad), "{bad} allowed");
        }
        for good in ["2606:4700::1111", "2a00:1450:4001::1", "::ffff:8.8.8.8", "64:ff9b::808:808", "2001:200::1"] {
            assert!(ok(good), "{good} refused");
        }
    }

    #[test]
    fn loopback_only_where_allowed() {
        for lo in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            assert!(ip_allowed(lo.parse().unwrap(), true), "{lo}");
            assert!(!ip_allowed(lo.parse().unwrap(), false), "{lo}");
        }
        assert!(!ip_allowed("10.0.0.1".parse().unwrap(), true));
        assert!(!ip_allowed("169.254.169.254".parse().unwrap(), true));
    }

    #[test]
    fn urls_with_ip_literals_in_any_spelling_are_judged_by_their_address() {
        let check = |s: &str, lo: bool| check_url(&url::Url::parse(s).unwrap(), lo);
        for bad in [
            "http://10.0.0.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://2130706433/", // 127.0.0.1 as a number
            "https://0x7f.1/",
            "https://0177.0.0.1/",
            "https://127.1/",
            "https://[::ffff:a9fe:a9fe]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://[2002:a9fe:a9fe::]/",
            "https://[::a9fe:a9fe]/",
            "https://198.18.0.1/",
            "https://192.0.0.8/",
            "https://[fec0::1]/",
            "https://localhost/",
            "http://example.com/",
            "ftp://example.com/",
            "https://u:p@example.com/",
        ] {
            assert!(check(bad, false).is_err(), "{bad} accepted");
        }
        assert!(check("http://127.0.0.1:9001/", true).is_ok());
        assert!(check("http://127.0.0.1:9001/", false).is_err(), "the Lambda Runtime API");
        assert!(check("http://10.0.0.1/", true).is_err());
        assert!(check("https://acme.okta.com/oauth2/v1/keys", false).is_ok());
    }

    #[test]
    fn provider_urls_stay_on_the_issuers_host() {
        let iss = url::Url::parse("https://acme.okta.com").unwrap();
        let check = |s: &str| check_provider_url(&url::Url::parse(s).unwrap(), &iss, false);
        assert!(check("https://acme.okta.com/oauth2/v1/keys").is_ok());
        assert!(check("https://acme.okta.com:443/oauth2/v1/keys").is_ok());
        assert!(check("https://evil.example/keys").is_err());
        assert!(check("https://acme.okta.com.evil.example/keys").is_err());
        assert!(check("https://acme.okta.com:8443/keys").is_err());
        assert!(check("javascript:alert(1)").is_err());
        let local = url::Url::parse("http://127.0.0.1:4000/t1").unwrap();
        assert!(check_provider_url(&url::Url::parse("http://127.0.0.1:4000/t1/jwks").unwrap(), &local, true).is_ok());
        assert!(check_provider_url(&url::Url::parse("http://127.0.0.1:9001/").unwrap(), &local, true).is_err());
    }
}
