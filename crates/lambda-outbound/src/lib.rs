//! The parts of the Lambdas that call out: to tenants' identity providers (the OIDC adapter
//! over the guarded HTTP client) and to DNS. Built once, in the init phase, by the sign-in,
//! session, logout and admin functions (through `butterfly_lambda::serve`) and the domain
//! re-check. `scim-users` does not depend on this crate, so it links no OIDC client.

use butterfly_api::sso::CookiePolicy;
use butterfly_api::AppParts;
use butterfly_aws::SecretsManagerStore;
use butterfly_core::clock::SystemClock;
use butterfly_core::csrf::CsrfKey;
use butterfly_core::sso::SsoPolicy;
use butterfly_lambda::{limits, Aws, Config, InitError};
use butterfly_outbound::{DnsServers, GuardedHttp, Limits, OidcProvider, TxtLookup};
use std::sync::Arc;

/// The name server `DNS_SERVER` names: unset (or `system`) is the system's resolver.
pub fn dns_servers(cfg: &Config) -> Result<DnsServers, InitError> {
    match &cfg.dns_server {
        Some(s) => DnsServers::parse(s).map_err(|e| InitError::Invalid("DNS_SERVER", e)),
        None => Ok(DnsServers::System),
    }
}

/// Domain-verification TXT lookups through the configured name server.
pub fn txt_lookup(cfg: &Config) -> Result<TxtLookup, InitError> {
    TxtLookup::new(&dns_servers(cfg)?).map_err(InitError::Http)
}

/// Whether a function serves browser sessions (and so needs the server secret's CSRF key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sessions {
    /// Sets or checks session cookies and CSRF tokens: refuses to start without the key.
    Served,
    /// Never issues or checks a CSRF token (the login start, provider logout calls).
    NotServed,
}

/// The routers' parts over AWS, for [`butterfly_lambda::serve`]: the table, Secrets Manager for
/// client secrets, the OIDC adapter over the guarded client (https only, public addresses only;
/// its caches live as long as the Lambda instance), the configured DNS (the system's by
/// default), `__Host-` cookies.
pub fn app_parts(sessions: Sessions) -> impl FnOnce(&Config, &Aws) -> Result<AppParts, InitError> {
    move |cfg, aws| {
        let dns = dns_servers(cfg)?;
        let http = GuardedHttp::new(&dns, false, Limits::default()).map_err(InitError::Http)?;
        let txt = TxtLookup::new(&dns).map_err(InitError::Http)?;
        let csrf = match (&aws.keys, sessions) {
            (Some(k), _) => k.csrf.clone(),
            (None, Sessions::Served) => return Err(InitError::Missing("CURSOR_KEY_SECRET_ID")),
            // Never used by this function's routers; a random key keeps any token it could see invalid.
            (None, Sessions::NotServed) => CsrfKey::random().map_err(InitError::Http)?,
        };
        Ok(AppParts {
            store: Arc::new(aws.store.clone()),
            secrets: Arc::new(SecretsManagerStore::new(aws.secrets.clone(), cfg.secrets_prefix.clone())),
            idp: Arc::new(OidcProvider::new(http)),
            clock: Arc::new(SystemClock),
            base_url: cfg.base_url(),
            cookies: CookiePolicy { secure: true },
            sso_policy: SsoPolicy::default(),
            csrf,
            dns: Arc::new(txt),
            limits: limits(cfg),
        })
    }
}
