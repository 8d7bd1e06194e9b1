//! Single sign-on: the domain types of OIDC login. SSO settings of a tenant, the issuer and
//! return-path newtypes (parsed once, at the boundary), login transactions, sessions, the
//! identity-provider port and the SSO error.

use crate::clock::Timestamp;
use crate::ids::{TenantId, UserId};
use crate::token::{Secret, TokenHash};
use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// The scopes Butterfly asks for (the only ones an OIN app may use).
pub const SCOPES: &str = "openid email profile";

/// An OpenID Provider's issuer identifier, normalised: `https://host[:port][/path]` with no
/// trailing slash, query, fragment or credentials. `http://` only for loopback hosts, and only
/// where the caller allows it (the local stack).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Issuer(String);

impl Issuer {
    /// Parses what an admin typed: an issuer URL, or an Okta domain (`acme.okta.com`), which
    /// means the org authorization server `https://acme.okta.com`.
    pub fn parse(input: &str, allow_loopback_http: bool) -> Result<Issuer, String> {
        let s = input.trim();
        if s.is_empty() {
            return Err("the issuer is required: your Okta domain (e.g. acme.okta.com) or an issuer URL".into());
        }
        if s.len() > 512 {
            return Err("the issuer is longer than 512 characters".into());
        }
        let with_scheme = if s.contains("://") { s.to_string() } else { format!("https://{s}") };
        let url = url::Url::parse(&with_scheme).map_err(|e| format!("the issuer {s:?} is not a URL: {e}"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("the issuer must not contain credentials".into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("the issuer must not have a query or fragment".into());
        }
        crate::egress::check_url(&url, allow_loopback_http)?;
        let mut out = format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default());
        if let Some(p) = url.port() {
            out.push_str(&format!(":{p}"));
        }
        out.push_str(url.path().trim_end_matches('/'));
        Ok(Issuer(out))
    }

    /// An issuer as received in a request (`iss` of an IdP-initiated login): exact form, only
    /// a trailing slash is ignored. Never parsed into a fetch target.
    pub fn lookup_key(received: &str) -> String {
        received.trim().trim_end_matches('/').to_string()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Issuer({})", self.0)
    }
}

/// A place on this site to send the browser after sign-in: a relative path, never another
/// origin (no open redirect).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReturnPath(String);

impl Default for ReturnPath {
    fn default() -> Self {
        ReturnPath("/".into())
    }
}

impl ReturnPath {
    /// Accepts `/path[?query]` only: no scheme, no host, no `//` or `/\` prefix (browsers read
    /// those as another host), no backslashes, no control characters, at most 1024 bytes.
    pub fn parse(s: &str) -> Option<ReturnPath> {
        if s.is_empty() || s.len() > 1024 || !s.starts_with('/') {
            return None;
        }
        if s.contains('\\') || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return None;
        }
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("//") || lower.starts_with("/%2f") || lower.starts_with("/%5c") || lower.contains('#') {
            return None;
        }
        // The same origin after resolution, as a browser would resolve it.
        let base = url::Url::parse("https://butterfly.invalid/").ok()?;
        let joined = base.join(s).ok()?;
        (joined.origin() == base.origin()).then(|| ReturnPath(s.to_string()))
    }

    /// A `target_link_uri` of an IdP-initiated login: a relative path, or an absolute URL on
    /// `origin` (this site), reduced to its path.
    pub fn from_target(target: &str, origin: &str) -> Option<ReturnPath> {
        if target.starts_with('/') {
            return ReturnPath::parse(target);
        }
        let t = url::Url::parse(target).ok()?;
        let o = url::Url::parse(origin).ok()?;
        if t.origin() != o.origin() || !t.username().is_empty() || t.password().is_some() {
            return None;
        }
        let mut p = t.path().to_string();
        if let Some(q) = t.query() {
            p.push('?');
            p.push_str(q);
        }
        ReturnPath::parse(&p)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A tenant's single sign-on settings. The client secret is not here: it lives in the secret
/// store and is write-only. The email domains are the tenant's `domains`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SsoConfig {
    pub issuer: Issuer,
    pub client_id: String,
    pub enabled: bool,
    pub updated: Timestamp,
    /// When the issuer was bound to the tenant: a super_admin completed a test sign-in through
    /// it, or the operator set it. Until then the issuer is not claimed, routes no sign-in and
    /// is trusted for no logout token. Settings saved before binding existed count as bound.
    #[serde(default = "bound_before_binding_existed")]
    pub bound_at: Option<Timestamp>,
    /// While this issuer waits for its binding: the provider bound before it. It stays claimed by
    /// the tenant and trusted for its logout messages (its sessions still run) until this one
    /// is bound; then its sessions end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<PreviousProvider>,
}

/// The provider a pending issuer change replaces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousProvider {
    pub issuer: Issuer,
    pub client_id: String,
}

fn bound_before_binding_existed() -> Option<Timestamp> {
    Some(Timestamp(0))
}

/// The user's identity at the tenant's provider: (`iss`, `sub`), unique within a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub issuer: String,
    pub sub: String,
}

/// Why a login was started: what the callback may do with it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginPurpose {
    /// From our login page: the user typed their email here.
    #[default]
    SignIn,
    /// Started by the provider (a dashboard tile, `/sso/initiate`): it must never silently
    /// replace a session the browser already has.
    ProviderInitiated,
    /// A super_admin's test of the tenant's SSO settings: every check runs and is reported,
    /// nobody is signed in, and a not yet bound issuer is bound if all pass.
    Test,
}

/// A login in progress between the start (redirect to the provider) and the callback. Stored
/// server side under the hash of `state`, consumed once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginTransaction {
    #[serde(default)]
    pub purpose: LoginPurpose,
    /// For a test: the super_admin who started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tester: Option<UserId>,
    pub state_hash: TokenHash,
    /// Hash of the random value held in the browser's transaction cookie.
    pub binding_hash: TokenHash,
    pub tenant: TenantId,
    pub issuer: Issuer,
    /// Our client ID at the provider when the sign-in started (a test binds only that pair).
    #[serde(default)]
    pub client_id: String,
    pub redirect_uri: String,
    pub pkce_verifier: Secret,
    pub nonce: Secret,
    pub return_to: ReturnPath,
    pub created: Timestamp,
    pub expires: Timestamp,
}

/// A signed-in browser. Stored under the hash of the cookie value; the value itself is
/// never stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub hash: TokenHash,
    pub tenant: TenantId,
    pub user: UserId,
    pub issuer: String,
    pub subject: String,
    /// The provider's session id (`sid` claim), when it sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The ID token, kept server side as the `id_token_hint` of a provider logout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<Secret>,
    pub created: Timestamp,
    pub last_seen: Timestamp,
    /// Absolute expiry: the session ends then whatever the activity.
    pub expires: Timestamp,
    /// `false` for a provider-initiated sign-in waiting for the user to confirm that it may
    /// replace the session the browser had: such a session authenticates nothing.
    #[serde(default = "confirmed_by_default", skip_serializing_if = "is_true")]
    pub confirmed: bool,
    /// The tenant's idle timeout when the session started, if it set one (else the
    /// deployment's applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_secs: Option<i64>,
}

fn confirmed_by_default() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// How long an unconfirmed (provider-initiated) sign-in waits for the user's answer.
pub const CONFIRMATION_TTL_SECS: i64 = 300;

impl Session {
    /// Whether the session is still valid at `now`: confirmed, before its absolute expiry, and
    /// used within its idle timeout (its tenant's, else `default_idle_secs`).
    pub fn is_live(&self, now: Timestamp, default_idle_secs: i64) -> bool {
        let idle = self.idle_secs.unwrap_or(default_idle_secs);
        self.confirmed && now < self.expires && now < self.last_seen.plus_secs(idle)
    }
}

/// 256 random bits, base64url: session ids, `state`, nonces, PKCE verifiers, bindings.
pub fn random_secret() -> Result<Secret, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness available: {e}"))?;
    Ok(Secret::new(URL_SAFE_NO_PAD.encode(bytes)))
}

/// SHA-256 of a secret value: how sessions, transactions and bindings are looked up.
pub fn hash_secret(s: &str) -> TokenHash {
    TokenHash::from_bytes(Sha256::digest(s.as_bytes()).into())
}

/// Whether a presented value has the shape of one of our random secrets (43 base64url
/// characters); anything else is refused without a store round trip.
pub fn is_secret_shaped(s: &str) -> bool {
    s.len() == 43 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The RFC 7636 S256 code challenge of a verifier.
pub fn pkce_challenge(verifier: &Secret) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.expose().as_bytes()))
}

/// What discovery told us about a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderInfo {
    pub issuer: Issuer,
    pub authorization_endpoint: String,
    pub end_session_endpoint: Option<String>,
    /// RFC 9207: the provider puts `iss` in authorization responses, so we require it.
    pub iss_parameter_supported: bool,
}

/// What an ID token must match: the tenant's provider and client, and the login's nonce.
pub struct IdTokenExpectations<'a> {
    pub issuer: &'a Issuer,
    pub client_id: &'a str,
    pub client_secret: &'a Secret,
    pub redirect_uri: &'a str,
    pub nonce: &'a Secret,
}

/// A code to redeem at the provider's token endpoint, and what the ID token it returns must match.
pub struct CodeRedemption<'a> {
    pub expect: IdTokenExpectations<'a>,
    pub code: &'a str,
    pub pkce_verifier: &'a Secret,
}

/// The claims of an ID token whose signature, issuer, audience, expiry and nonce were verified.
#[derive(Debug, Clone)]
pub struct VerifiedIdToken {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    /// The provider's `email_verified` claim (from the ID token, else from userinfo); absent
    /// means not verified.
    pub email_verified: Option<bool>,
    pub preferred_username: Option<String>,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub sid: Option<String>,
    pub raw: Secret,
}

/// Which kind of provider-signed JWT is verified, with its `typ` rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtKind {
    /// OIDC Back-Channel Logout token: `typ` `logout+jwt` (or `JWT`, or none, for older providers).
    LogoutToken,
    /// Okta Universal Logout: `typ` exactly `global-token-revocation+jwt`; `nbf` required.
    GlobalTokenRevocation,
}

/// The identity-provider port: OpenID Connect discovery and the code exchange with ID token
/// verification. The adapter caches discovery and keys; it never follows redirects and never
/// fetches from private addresses.
#[async_trait]
pub trait IdentityProvider: Send + Sync {
    /// The provider's metadata, from cache unless `fresh`. Fails if discovery is unreachable,
    /// malformed, or names another issuer.
    async fn discover(&self, issuer: &Issuer, fresh: bool) -> Result<ProviderInfo, SsoError>;
    /// Exchanges the code (confidential client, PKCE) and verifies the ID token.
    async fn redeem(&self, r: CodeRedemption<'_>) -> Result<VerifiedIdToken, SsoError>;
    /// Verifies a JWT signed with the issuer's published keys (asymmetric algorithms only, an
    /// unknown `kid` refetches the keys once — `ProviderUnavailable` if they were refetched too
    /// recently, so the sender retries): `typ` per `kind`, `iss` = the issuer, `aud` contains
    /// `audience`, `exp` (and `nbf`, `iat`) with a minute of leeway. Returns the claims.
    async fn verify_jwt(
        &self,
        issuer: &Issuer,
        token: &str,
        audience: &str,
        kind: JwtKind,
    ) -> Result<serde_json::Map<String, serde_json::Value>, SsoError>;
}

/// Why a sign-in step was refused or failed. `reason()` is a stable code for logs and audit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsoError {
    /// The input is malformed (an email that is not one, a bad parameter).
    #[error("{0}")]
    InvalidInput(String),
    /// Single sign-on does not apply to this email domain.
    #[error("single sign-on is not set up for this email domain")]
    NoSso,
    /// An IdP-initiated login named an issuer no tenant uses.
    #[error("this identity provider is not connected to Butterfly")]
    UnknownIssuer,
    /// The callback or the ID token failed a check; nothing was signed in.
    #[error("sign-in refused ({reason}): {detail}")]
    Rejected { reason: &'static str, detail: String },
    /// The user exists but is deactivated.
    #[error("this account is deactivated")]
    Deactivated,
    /// No valid session.
    #[error("not signed in")]
    Unauthenticated,
    /// Settings were refused (bad issuer, discovery failed, domain taken, ...).
    #[error("{0}")]
    Settings(String),
    /// An identity was not linked to an existing account (unverified email, look-alike
    /// address, a link to another identity): nobody was signed in, nothing was created.
    #[error("{0}")]
    LinkRefused(String),
    /// The provider could not be reached or answered nonsense.
    #[error("the identity provider could not be reached: {0}")]
    ProviderUnavailable(String),
    /// Too many sign-in starts for this email domain or issuer; retry after the delay.
    #[error("too many sign-in attempts; retry in {0} seconds")]
    Throttled(u32),
    /// A store failure (or a domain error from a store call).
    #[error(transparent)]
    Store(#[from] crate::Error),
}

impl SsoError {
    pub fn rejected(reason: &'static str, detail: impl Into<String>) -> Self {
        SsoError::Rejected { reason, detail: detail.into() }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            SsoError::InvalidInput(_) => "invalid_input",
            SsoError::NoSso => "no_sso",
            SsoError::UnknownIssuer => "unknown_issuer",
            SsoError::Rejected { reason, .. } => reason,
            SsoError::Deactivated => "user_deactivated",
            SsoError::Unauthenticated => "unauthenticated",
            SsoError::Settings(_) => "invalid_settings",
            SsoError::LinkRefused(_) => "account_link_refused",
            SsoError::ProviderUnavailable(_) => "provider_unavailable",
            SsoError::Throttled(_) => "throttled",
            SsoError::Store(_) => "store_error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_normalise_and_refuse_unsafe_targets() {
        let ok = |s: &str| Issuer::parse(s, false).map(|i| i.0).unwrap_or_else(|e| e);
        assert_eq!(ok("acme.okta.com"), "https://acme.okta.com");
        assert_eq!(ok("https://acme.okta.com/"), "https://acme.okta.com");
        assert_eq!(ok("https://acme.okta.com/oauth2/default/"), "https://acme.okta.com/oauth2/default");
        assert_eq!(ok("HTTPS://Acme.Okta.com:8443/x"), "https://acme.okta.com:8443/x");
        for bad in [
            "",
            "http://acme.okta.com",
            "https://127.0.0.1",
            "http://127.0.0.1:4000",
            "https://localhost",
            "https://10.0.0.1",
            "https://169.254.169.254/latest",
            "https://[::1]",
            "https://[fe80::1]",
            "https://[::ffff:10.0.0.1]",
            "https://100.64.0.1",
            "https://u:p@acme.okta.com",
            "https://acme.okta.com/?x=1",
            "https://acme.okta.com/#f",
            "ftp://acme.okta.com",
        ] {
            assert!(Issuer::parse(bad, false).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            Issuer::parse("http://127.0.0.1:4000/oauth2/default", true).map(|i| i.0),
            Ok("http://127.0.0.1:4000/oauth2/default".to_string())
        );
        assert!(Issuer::parse("http://10.0.0.1", true).is_err());
        assert!(Issuer::parse("https://192.168.1.1", true).is_err());
        assert!(Issuer::parse("http://acme.okta.com", true).is_err());
    }

    #[test]
    fn return_paths_stay_on_this_site() {
        for ok in ["/", "/app", "/app?x=1&y=http://evil.example", "/a/b/../c", "/%41"] {
            assert!(ReturnPath::parse(ok).is_some(), "{ok}");
        }
        for bad in [
            "",
            "app",
            "//evil.example",
            "/\\evil.example",
            "/%2Fevil.example",
            "/%5cevil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "/\tx",
            "/x\r\nSet-Cookie: a=b",
            "/x#frag",
            "\\\\evil.example",
        ] {
            assert!(ReturnPath::parse(bad).is_none(), "{bad:?} accepted");
        }
        let origin = "https://id.butterfly.example";
        assert_eq!(
            ReturnPath::from_target("https://id.butterfly.example/app?x=1", origin).map(|p| p.0),
            Some("/app?x=1".to_string())
        );
        assert!(ReturnPath::from_target("https://evil.example/app", origin).is_none());
        assert!(ReturnPath::from_target("http://id.butterfly.example/app", origin).is_none());
        assert!(ReturnPath::from_target("https://id.butterfly.example.evil.example/", origin).is_none());
        assert!(ReturnPath::from_target("//evil.example", origin).is_none());
    }

    #[test]
    fn secrets_are_random_and_pkce_matches_rfc_7636() {
        let a = random_secret().unwrap();
        assert!(is_secret_shaped(a.expose()));
        assert_ne!(a, random_secret().unwrap());
        // RFC 7636 appendix B.
        let v = Secret::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(pkce_challenge(&v), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(!is_secret_shaped("short"));
        assert!(!is_secret_shaped(&"a".repeat(42)));
    }

    #[test]
    fn sessions_expire_on_idle_and_absolute_timeouts() {
        let s = Session {
            hash: hash_secret("x"),
            tenant: TenantId::generate(),
            user: UserId::generate(),
            issuer: "https://i".into(),
            subject: "s".into(),
            sid: None,
            id_token: None,
            created: Timestamp(0),
            last_seen: Timestamp(1_000),
            expires: Timestamp(100_000),
            confirmed: true,
            idle_secs: None,
        };
        assert!(s.is_live(Timestamp(10_000), 60));
        assert!(!s.is_live(Timestamp(61_000), 60));
        assert!(!s.is_live(Timestamp(100_000), 1_000));
        // The tenant's idle timeout, when the session carries one, wins over the default.
        let s = Session { idle_secs: Some(30), ..s };
        assert!(!s.is_live(Timestamp(31_000), 60));
        assert!(s.is_live(Timestamp(30_000), 60));
    }
}
/// Timeouts and what the deployment allows.
#[derive(Debug, Clone)]
pub struct SsoPolicy {
    /// How long a started login may take to come back (RFC 9700 advice: minutes).
    pub transaction_ttl_secs: i64,
    /// A session unused this long ends (OWASP: 15–30 minutes).
    pub idle_secs: i64,
    /// A session ends this long after sign-in whatever the activity (OWASP: 4–8 hours).
    pub absolute_secs: i64,
    /// Activity is written at most this often per session.
    pub touch_every_secs: i64,
    /// `http://` issuers on loopback (the local stack with a local test provider).
    pub allow_loopback_http: bool,
}

impl Default for SsoPolicy {
    fn default() -> Self {
        SsoPolicy {
            transaction_ttl_secs: 600,
            idle_secs: 30 * 60,
            absolute_secs: 8 * 3600,
            touch_every_secs: 60,
            allow_loopback_http: false,
        }
    }
}
