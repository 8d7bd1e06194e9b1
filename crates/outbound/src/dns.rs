//! DNS, through one resolver library (hickory): the addresses the guarded HTTP client connects
//! to, and the TXT records that prove a tenant owns an email domain. The name server is the
//! system's (`/etc/resolv.conf`, as on Lambda) or one given explicitly (the local stack and the
//! tests point it at a DNS server on loopback).

use async_trait::async_trait;
use butterfly_core::domain::TxtResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Which name server answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DnsServers {
    /// The system's configuration.
    #[default]
    System,
    /// One server (UDP and TCP on its port).
    At(SocketAddr),
}

impl DnsServers {
    /// `system`, or `IP:PORT`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.trim().eq_ignore_ascii_case("system") || s.trim().is_empty() {
            return Ok(DnsServers::System);
        }
        s.trim().parse::<SocketAddr>().map(DnsServers::At).map_err(|_| format!("{s:?} is not IP:PORT or `system`"))
    }
}

fn resolver(servers: &DnsServers, cache: bool) -> Result<TokioResolver, String> {
    let mut builder = match servers {
        DnsServers::System => {
            TokioResolver::builder_tokio().map_err(|e| format!("cannot read the DNS configuration: {e}"))?
        }
        DnsServers::At(addr) => {
            let mut udp = ConnectionConfig::udp();
            udp.port = addr.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = addr.port();
            let ns = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
            let mut b = TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![ns]),
                TokioRuntimeProvider::default(),
            );
            *b.options_mut() = ResolverOpts::default();
            b
        }
    };
    let opts = builder.options_mut();
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 2;
    if cache {
        // Addresses are reused for at most a minute whatever the record's TTL.
        opts.positive_max_ttl = Some(Duration::from_secs(60));
        opts.negative_max_ttl = Some(Duration::from_secs(30));
    } else {
        opts.cache_size = 0;
    }
    builder.build().map_err(|e| format!("cannot build the DNS resolver: {e}"))
}

/// Host name → addresses, for the guarded HTTP client (which judges every address).
pub struct AddressResolver {
    inner: TokioResolver,
}

impl AddressResolver {
    pub fn new(servers: &DnsServers) -> Result<Self, String> {
        Ok(AddressResolver { inner: resolver(servers, true)? })
    }

    /// Every address the name resolves to (A and AAAA).
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        let fqdn = if host.ends_with('.') { host.to_string() } else { format!("{host}.") };
        let found = self.inner.lookup_ip(fqdn.as_str()).await.map_err(|e| format!("cannot resolve {host}: {e}"))?;
        Ok(found.iter().collect())
    }
}

/// TXT lookups for domain verification: never cached here, so a record added or removed is
/// seen at the next check.
pub struct TxtLookup {
    inner: TokioResolver,
}

impl TxtLookup {
    pub fn new(servers: &DnsServers) -> Result<Self, String> {
        Ok(TxtLookup { inner: resolver(servers, false)? })
    }
}

#[async_trait]
impl TxtResolver for TxtLookup {
    async fn txt(&self, name: &str) -> Result<Vec<String>, String> {
        let fqdn = if name.ends_with('.') { name.to_string() } else { format!("{name}.") };
        match self.inner.txt_lookup(fqdn.as_str()).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(t) => Some(t.txt_data.iter().map(|s| String::from_utf8_lossy(s)).collect::<String>()),
                    _ => None,
                })
                .collect()),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(vec![]),
            Err(e) => {
                tracing::info!(name, error = %e, "TXT lookup failed");
                Err(format!("the DNS lookup of {name} did not answer"))
            }
        }
    }
}
