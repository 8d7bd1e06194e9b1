//! Abuse limits at the edge: a per-client-address limit on every anonymous endpoint (a
//! middleware), and the keyed throttle on a tenant's settings saves and domain checks. Both are
//! GCRA limiters (`governor`) kept per process; the SCIM per-tenant limit, which must hold
//! across Lambda instances, is in core (`TenantQuota`). Nothing an anonymous caller can spend
//! is keyed by anything but its own address.

use crate::auth_response::{no_store, oauth_error};
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use butterfly_core::limit::Throttle;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The anonymous endpoints' limits, per process.
#[derive(Debug, Clone, Copy)]
pub struct AnonymousLimits {
    /// Requests a minute one client address may make to the anonymous endpoints.
    pub per_address_per_minute: u32,
    /// SSO settings saves a minute per tenant (members; each fetches the provider afresh).
    pub settings_per_minute: u32,
}

impl Default for AnonymousLimits {
    fn default() -> Self {
        AnonymousLimits { per_address_per_minute: 120, settings_per_minute: 10 }
    }
}

/// A keyed GCRA limiter: `per_minute` a minute per key, with a burst of a tenth of it.
pub struct KeyedThrottle {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
    checks: AtomicU64,
}

impl KeyedThrottle {
    /// `per_minute` on average with a burst of a tenth of it.
    pub fn per_minute(per_minute: u32) -> Self {
        Self::per_minute_with_burst(per_minute, per_minute / 10)
    }

    /// `per_minute` on average, `burst` at once (both at least one).
    pub fn per_minute_with_burst(per_minute: u32, burst: u32) -> Self {
        let rate = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        KeyedThrottle {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_minute(rate).allow_burst(burst)),
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        }
    }
}

impl Throttle for KeyedThrottle {
    fn check(&self, key: &str) -> Result<(), u32> {
        // Keys are attacker-chosen: forget those back at full capacity now and then.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 1024 == 1023 {
            self.limiter.retain_recent();
        }
        let key: String = key.chars().take(256).collect();
        self.limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            u32::try_from(wait.as_secs() + 1).unwrap_or(u32::MAX).clamp(1, 3600)
        })
    }
}

/// The client address of a request: put there by the local server (`ConnectInfo`) or, on
/// Lambda, from API Gateway's request context.
pub fn client_address(req: &Request) -> Option<IpAddr> {
    req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip())
}

/// The key a client address is limited under: the address for IPv4, its /64 for IPv6 (one
/// host usually holds a whole /64).
fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// A 429 with an integer `Retry-After`: an OAuth-style JSON error, or a page for browsers.
pub fn too_many(retry_after_secs: u32, page: bool) -> Response {
    let mut resp = if page {
        let body = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Too many requests · Butterfly</title>\
             </head><body><main><h1>Too many requests</h1><p>Please wait {retry_after_secs} seconds and try again.</p>\
             </main></body></html>"
        );
        let mut r = (StatusCode::TOO_MANY_REQUESTS, body).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'"));
        no_store(r)
    } else {
        oauth_error(StatusCode::TOO_MANY_REQUESTS, "slow_down", "too many requests; retry after the delay")
    };
    if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// The per-address limit as a layer for an anonymous router.
pub fn by_address(throttle: Arc<KeyedThrottle>) -> AddressLimitLayer {
    AddressLimitLayer(throttle)
}

/// See [`by_address`].
#[derive(Clone)]
pub struct AddressLimitLayer(Arc<KeyedThrottle>);

impl<S> tower::Layer<S> for AddressLimitLayer {
    type Service = AddressLimit<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AddressLimit { inner, throttle: self.0.clone() }
    }
}

/// The service [`AddressLimitLayer`] wraps a route in.
#[derive(Clone)]
pub struct AddressLimit<S> {
    inner: S,
    throttle: Arc<KeyedThrottle>,
}

impl<S> tower::Service<Request> for AddressLimit<S>
where
    S: tower::Service<Request, Response = Response, Error = std::convert::Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response, std::convert::Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if let Some(refused) = refuse(&self.throttle, &req) {
            return Box::pin(async move { Ok(refused) });
        }
        Box::pin(self.inner.call(req))
    }
}

/// The 429 for a request whose client address is over its limit. Requests without a known
/// address (none in production: both servers set one) are not limited by address.
fn refuse(throttle: &KeyedThrottle, req: &Request) -> Option<Response> {
    let ip = client_address(req)?;
    let wait = throttle.check(&address_key(ip)).err()?;
    let path = req.uri().path();
    let page = req.method() == axum::http::Method::GET
        || path == "/login"
        || path.starts_with(crate::setup::SETUP_PATH)
        || path.starts_with("/sso/confirm")
        || path.starts_with("/sso/initiate");
    // Never the raw path: a setup link's path is its secret.
    tracing::info!(client = %ip, path = crate::setup::loggable_path(path), "client address over its limit");
    Some(too_many(wait, page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_callers_share_their_slash_64_and_mapped_ipv4_is_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        assert_eq!(address_key(a), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7");
        // Rotating through a /64 exhausts one budget.
        let t = KeyedThrottle::per_minute_with_burst(60, 3);
        let refused = (0u16..10)
            .filter(|i| {
                let ip = IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 2, *i, 0, 0, 1));
                t.check(&address_key(ip)).is_err()
            })
            .count();
        assert!(refused >= 6, "{refused} of 10 addresses in one /64 were refused");
    }

    #[test]
    fn a_burst_is_allowed_then_the_rate_holds() {
        let t = KeyedThrottle::per_minute_with_burst(10, 10);
        let passed = (0..15).filter(|_| t.check("settings:t").is_ok()).count();
        assert_eq!(passed, 10);
        assert!(t.check("settings:other").is_ok(), "another key has its own budget");
        let wait = t.check("settings:t").err();
        assert!(matches!(wait, Some(1..=6)), "{wait:?}");
    }
}
