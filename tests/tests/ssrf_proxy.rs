//! The guarded client follows no redirect and takes no proxy from the environment. In its own
//! test binary: it sets proxy variables for the whole process, which would send every other
//! test's plain HTTP client through the counting "proxy".
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use butterfly_outbound::{DnsServers, GuardedHttp, Limits};
use butterfly_tests::dns::TestDns;
use butterfly_tests::hostile::{Answer, CountingListener, FakeIdp};
use std::time::Duration;

fn client(dns: &TestDns, allow_loopback: bool, limits: Limits) -> GuardedHttp {
    GuardedHttp::new(&DnsServers::At(dns.addr), allow_loopback, limits).unwrap()
}

/// No redirect is followed and no proxy is taken from the environment.
#[tokio::test]
async fn redirects_are_not_followed_and_proxies_are_ignored() {
    let dns = TestDns::start(&["test"]).await;
    let idp = FakeIdp::start().await;
    let proxy = CountingListener::start().await;
    let internal = CountingListener::start().await;
    idp.answer("/go", Answer { status: 302, body: vec![], delay: Duration::ZERO, content_type: "text/plain" });
    // A proxy in the environment would see every request of a client that reads it.
    std::env::set_var("HTTP_PROXY", format!("http://{}", proxy.addr));
    std::env::set_var("http_proxy", format!("http://{}", proxy.addr));
    std::env::set_var("ALL_PROXY", format!("http://{}", proxy.addr));
    let c = client(&dns, true, Limits::default());
    let r = c.get_json(&url::Url::parse(&format!("{}/go", idp.origin())).unwrap()).await.unwrap();
    assert_eq!(r.status, 302, "the 3xx comes back as it is");
    assert_eq!(idp.hits("/go"), 1);
    assert_eq!(proxy.connections(), 0, "an environment proxy was used");
    assert_eq!(internal.connections(), 0);
}
