//! A real DNS server on loopback for the suites (hickory's authoritative server over UDP and
//! TCP, one in-memory zone per test domain), whose records the tests add and remove while it
//! runs: domain-verification TXT records, and A/AAAA records that point provider host names at
//! addresses the outbound client must refuse.

use hickory_server::proto::rr::rdata::{A, AAAA, SOA, TXT};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType, RrKey};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use hickory_server::Server;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

type Zone = InMemoryZoneHandler<hickory_server::net::runtime::TokioRuntimeProvider>;

/// A running DNS server, authoritative for the zones it was started with.
pub struct TestDns {
    pub addr: SocketAddr,
    zones: Vec<(Name, Arc<Zone>)>,
    serial: AtomicU32,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn name(s: &str) -> Name {
    let fq = if s.ends_with('.') { s.to_string() } else { format!("{s}.") };
    Name::from_str(&fq).expect("a DNS name")
}

impl TestDns {
    /// Starts a server on 127.0.0.1 (a free port) authoritative for `zones` (e.g. `acme.test`).
    pub async fn start(zones: &[&str]) -> TestDns {
        let mut catalog = Catalog::new();
        let mut handles = Vec::new();
        for z in zones {
            let origin = name(z);
            let zone = Zone::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
            let soa = SOA::new(name(&format!("ns.{z}")), name(&format!("hostmaster.{z}")), 1, 3600, 600, 86400, 0);
            assert!(zone.upsert(Record::from_rdata(origin.clone(), 0, RData::SOA(soa)), 1).await, "SOA");
            let zone = Arc::new(zone);
            catalog.upsert(LowerName::new(&origin), vec![zone.clone()]);
            handles.push((origin, zone));
        }
        // UDP and TCP on the same port: retry until a free UDP port is also free for TCP.
        let mut bound = None;
        for _ in 0..50 {
            let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind DNS UDP");
            let addr = udp.local_addr().expect("addr");
            if let Ok(tcp) = tokio::net::TcpListener::bind(addr).await {
                bound = Some((udp, tcp, addr));
                break;
            }
        }
        let (udp, tcp, addr) = bound.expect("a port free for both UDP and TCP");
        let mut server = Server::new(catalog);
        server.register_socket(udp);
        server.register_listener(tcp, std::time::Duration::from_secs(5), 64 * 1024);
        let task = tokio::spawn(async move {
            let _ = server.block_until_done().await;
        });
        TestDns { addr, zones: handles, serial: AtomicU32::new(2), server: task }
    }

    fn zone_of(&self, n: &Name) -> &Arc<Zone> {
        self.zones
            .iter()
            .filter(|(origin, _)| origin.zone_of(n))
            .max_by_key(|(origin, _)| origin.num_labels())
            .map(|(_, z)| z)
            .unwrap_or_else(|| panic!("{n} is in no zone of this test DNS server"))
    }

    async fn put(&self, record: Record) {
        let serial = self.serial.fetch_add(1, Ordering::SeqCst);
        let zone = self.zone_of(&record.name).clone();
        assert!(zone.upsert(record, serial).await, "upsert");
    }

    /// Publishes a TXT record (TTL 0: resolvers must ask again next time).
    pub async fn add_txt(&self, at: &str, value: &str) {
        self.put(Record::from_rdata(name(at), 0, RData::TXT(TXT::new(vec![value.to_string()])))).await;
    }

    /// Points a host name at an address (A or AAAA by its family).
    pub async fn add_ip(&self, at: &str, ip: IpAddr) {
        let data = match ip {
            IpAddr::V4(v4) => RData::A(A(v4)),
            IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
        };
        self.put(Record::from_rdata(name(at), 0, data)).await;
    }

    /// Removes every record of `kind` at `at`.
    pub async fn remove(&self, at: &str, kind: RecordType) {
        let n = name(at);
        let zone = self.zone_of(&n).clone();
        let mut records = zone.records_mut().await;
        records.remove(&RrKey::new(LowerName::new(&n), kind));
    }

    /// `IP:PORT`, as `--dns-server` takes it.
    pub fn server_arg(&self) -> String {
        self.addr.to_string()
    }
}
