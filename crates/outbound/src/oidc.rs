//! The identity-provider adapter: OpenID Connect discovery, key sets, the code exchange,
//! userinfo and the verification of provider-signed JWTs, all over the one guarded client
//! ([`GuardedHttp`]).
//!
//! Discovery is done here, not by the `openidconnect` crate (whose discovery fetches the key
//! set before anyone can look at its URL): the document is fetched, its `issuer` must be
//! exactly the configured one, and every endpoint it names (`*_endpoint`, `jwks_uri`) must be
//! https on the issuer's own host ([`check_provider_url`]) before anything is fetched from it.
//!
//! Per issuer, one fetch is in flight at a time and no lock is held across I/O for anyone
//! else: a slow or hostile provider delays only the sign-ins of its own tenant. Good results
//! are reused for [`DISCOVERY_TTL`] (and served stale, while a refresh is under way or failing,
//! for up to [`MAX_STALE`]); failures are remembered per issuer and not retried before a
//! back-off of [`FAILURE_BACKOFF`] (doubling, at most [`MAX_FAILURE_BACKOFF`]), so anonymous
//! requests naming an issuer cannot make us fetch again and again. A token signed with a key we
//! do not know refetches the key set at most once per [`JWKS_REFETCH_INTERVAL`] per issuer,
//! failures included.

use crate::http::{error_chain, FetchError, GuardedHttp};
use async_trait::async_trait;
use butterfly_core::egress::check_provider_url;
use butterfly_core::sso::{
    CodeRedemption, IdTokenExpectations, IdentityProvider, Issuer, JwtKind, ProviderInfo, SsoError, VerifiedIdToken,
};
use butterfly_core::text;
use butterfly_core::token::Secret;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreErrorResponseType,
    CoreGenderClaim, CoreGrantType, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreSubjectIdentifierType, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AdditionalProviderMetadata, AuthType, AuthorizationCode, ClaimsVerificationError, Client,
    ClientId, ClientSecret, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields,
    IdTokenVerifier, JsonWebKeySet, Nonce, OAuth2TokenResponse, PkceCodeVerifier, ProviderMetadata, RedirectUrl,
    RequestTokenError, SignatureVerificationError, StandardErrorResponse, StandardTokenResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a discovery document and its key set are reused.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// How long an expired document may still be used while its refresh is under way or failing.
pub const MAX_STALE: Duration = Duration::from_secs(24 * 3600);
/// A failed discovery is not retried before this (doubling on each further failure)...
pub const FAILURE_BACKOFF: Duration = Duration::from_secs(30);
/// ...up to this.
pub const MAX_FAILURE_BACKOFF: Duration = Duration::from_secs(300);
/// A key set is fetched again for an unknown `kid` at most this often per issuer.
pub const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// Clock skew allowed on `iat`, `exp` and `nbf`.
pub const CLOCK_SKEW_SECS: i64 = 60;
/// Issuers remembered at most (the least recently used are forgotten beyond this).
pub const MAX_ISSUERS: usize = 512;
/// Keys a provider's key set may have (Okta publishes two or three).
pub const MAX_KEYS: usize = 50;

/// Discovery members the crate does not model.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ExtraMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_response_iss_parameter_supported: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_session_endpoint: Option<String>,
}
impl AdditionalProviderMetadata for ExtraMetadata {}

type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// ID token claims beyond the standard ones: the provider session id (for back-channel logout).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ExtraClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}
impl AdditionalClaims for ExtraClaims {}

type IdFields = IdTokenFields<
    ExtraClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type TokenResp = StandardTokenResponse<IdFields, CoreTokenType>;
type OidcIdToken =
    openidconnect::IdToken<ExtraClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

type OidcClient = Client<
    ExtraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResp,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// ID tokens and provider JWTs must be signed with the provider's asymmetric keys (never with
/// the client secret, never `none`).
const ID_TOKEN_ALGS: [CoreJwsSigningAlgorithm; 8] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
];

/// A provider's checked discovery document and key set.
struct Cached {
    metadata: Metadata,
    fetched: Instant,
    /// The key set as jsonwebtoken keys by `kid`, converted once per fetch (logout tokens and
    /// Universal Logout JWTs are checked with them).
    decoding: DecodingKeys,
}

type DecodingKeys = Result<HashMap<String, Result<jsonwebtoken::DecodingKey, String>>, String>;

fn decoding_keys(md: &Metadata) -> DecodingKeys {
    let set: jsonwebtoken::jwk::JwkSet = serde_json::to_value(md.jwks())
        .and_then(serde_json::from_value)
        .map_err(|e| format!("unreadable key set: {e}"))?;
    Ok(set
        .keys
        .iter()
        .filter_map(|k| {
            let kid = k.common.key_id.clone()?;
            let key = jsonwebtoken::DecodingKey::from_jwk(k).map_err(|e| format!("unusable key {kid}: {e}"));
            Some((kid, key))
        })
        .collect())
}

impl Cached {
    fn new(metadata: Metadata, fetched: Instant) -> Arc<Self> {
        let decoding = decoding_keys(&metadata);
        Arc::new(Cached { metadata, fetched, decoding })
    }
}

/// What is known about one issuer. Locked only for reads and writes of these fields, never
/// across I/O.
#[derive(Default)]
struct SlotState {
    entry: Option<Arc<Cached>>,
    /// The last failed discovery: when, how long to wait before the next, why (for logs).
    failure: Option<(Instant, Duration, String)>,
    /// When the key set was last refetched for an unknown `kid` (successfully or not).
    keys_refetched: Option<Instant>,
}

#[derive(Default)]
struct Slot {
    state: Mutex<SlotState>,
    /// Held while this issuer is being fetched: one fetch in flight per issuer.
    fetching: tokio::sync::Mutex<()>,
    /// When the slot was last asked for (milliseconds since the process started), for eviction.
    last_used: std::sync::atomic::AtomicU64,
}

fn process_millis() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

impl Slot {
    fn state(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The OpenID Connect adapter. Build one per process and share it.
pub struct OidcProvider {
    http: GuardedHttp,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

fn unavailable(e: impl std::fmt::Display) -> SsoError {
    SsoError::ProviderUnavailable(text::clean(&e.to_string(), 300))
}

impl OidcProvider {
    pub fn new(http: GuardedHttp) -> Self {
        OidcProvider { http, slots: Mutex::new(HashMap::new()) }
    }

    /// How many issuers the cache holds (bounded by [`MAX_ISSUERS`]).
    pub fn cached_issuers(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or(0)
    }

    fn allow_loopback(&self) -> bool {
        self.http.allows_loopback()
    }

    fn slot(&self, issuer: &Issuer) -> Arc<Slot> {
        let now = process_millis();
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = slots.get(issuer.as_str()) {
            s.last_used.store(now, std::sync::atomic::Ordering::Relaxed);
            return s.clone();
        }
        if slots.len() >= MAX_ISSUERS {
            // Forget the least recently used quarter (never one being fetched): memory stays
            // bounded whatever issuers tenants name.
            let mut idle: Vec<(String, u64)> = slots
                .iter()
                .filter(|(_, s)| s.fetching.try_lock().is_ok())
                .map(|(k, s)| (k.clone(), s.last_used.load(std::sync::atomic::Ordering::Relaxed)))
                .collect();
            idle.sort_by_key(|(_, t)| *t);
            for (k, _) in idle.into_iter().take(MAX_ISSUERS / 4) {
                slots.remove(&k);
            }
        }
        let s = Arc::new(Slot::default());
        s.last_used.store(now, std::sync::atomic::Ordering::Relaxed);
        slots.insert(issuer.as_str().to_string(), s.clone());
        s
    }

    /// The issuer's checked metadata and keys: from cache when fresh, else fetched (one fetch
    /// per issuer at a time; others use the stale entry meanwhile, or wait for that fetch).
    /// `fresh` (an admin saving settings) fetches now whatever the cache and the back-off say.
    async fn provider(&self, issuer: &Issuer, fresh: bool) -> Result<Arc<Cached>, SsoError> {
        let slot = self.slot(issuer);
        let asked = Instant::now();
        let stale = {
            let st = slot.state();
            if !fresh {
                if let Some(e) = st.entry.as_ref().filter(|e| e.fetched.elapsed() < DISCOVERY_TTL) {
                    return Ok(e.clone());
                }
                if let Some((at, wait, why)) = &st.failure {
                    if at.elapsed() < *wait {
                        return match st.entry.as_ref().filter(|e| e.fetched.elapsed() < MAX_STALE) {
                            Some(e) => Ok(e.clone()),
                            None => Err(unavailable(format!("discovery failed recently: {why}"))),
                        };
                    }
                }
            }
            st.entry.clone().filter(|e| !fresh && e.fetched.elapsed() < MAX_STALE)
        };
        let _guard = match (&stale, slot.fetching.try_lock()) {
            (_, Ok(g)) => g,
            // Someone is refreshing this issuer: use what we have rather than wait.
            (Some(e), Err(_)) => return Ok(e.clone()),
            (None, Err(_)) => slot.fetching.lock().await,
        };
        {
            // Fetched while we waited for the lock?
            let st = slot.state();
            if let Some(e) =
                st.entry.as_ref().filter(|e| e.fetched >= asked || (!fresh && e.fetched.elapsed() < DISCOVERY_TTL))
            {
                return Ok(e.clone());
            }
            if let Some((at, wait, why)) = &st.failure {
                if !fresh && *at >= asked && at.elapsed() < *wait {
                    return Err(unavailable(format!("discovery failed: {why}")));
                }
            }
        }
        match self.discover_now(issuer).await {
            Ok(entry) => {
                let mut st = slot.state();
                st.entry = Some(entry.clone());
                st.failure = None;
                Ok(entry)
            }
            Err(e) => {
                let mut st = slot.state();
                let wait = match &st.failure {
                    Some((_, w, _)) => (*w * 2).min(MAX_FAILURE_BACKOFF),
                    None => FAILURE_BACKOFF,
                };
                st.failure = Some((Instant::now(), wait, e.to_string()));
                match (fresh, st.entry.as_ref().filter(|e| e.fetched.elapsed() < MAX_STALE)) {
                    (false, Some(entry)) => Ok(entry.clone()),
                    _ => Err(e),
                }
            }
        }
    }

    /// Fetches and checks the discovery document, then the key set.
    async fn discover_now(&self, issuer: &Issuer) -> Result<Arc<Cached>, SsoError> {
        let issuer_url = url::Url::parse(issuer.as_str())
            .map_err(|e| SsoError::Settings(format!("the issuer is not a URL: {e}")))?;
        let well_known = url::Url::parse(&format!("{}/.well-known/openid-configuration", issuer.as_str()))
            .map_err(|e| SsoError::Settings(format!("the issuer is not a URL: {e}")))?;
        let doc = self.fetch_json(&well_known, "the discovery document").await?;
        let md = self.check_metadata(issuer, &issuer_url, &doc)?;
        let jwks_url =
            url::Url::parse(md.jwks_uri().as_str()).map_err(|e| unavailable(format!("bad jwks_uri: {e}")))?;
        let keys = self.fetch_keys(&jwks_url).await?;
        Ok(Cached::new(md.set_jwks(keys), Instant::now()))
    }

    async fn fetch_json(&self, url: &url::Url, what: &str) -> Result<Vec<u8>, SsoError> {
        let r = self.http.get_json(url).await.map_err(|e| match e {
            FetchError::Refused(m) => SsoError::Settings(format!("{what}: {m}")),
            other => unavailable(format!("{what}: {other}")),
        })?;
        if r.status != 200 {
            return Err(unavailable(format!("{what} answered HTTP {}", r.status)));
        }
        Ok(r.body.to_vec())
    }

    async fn fetch_keys(&self, url: &url::Url) -> Result<JsonWebKeySet<CoreJsonWebKey>, SsoError> {
        let body = self.fetch_json(url, "the key set").await?;
        let keys: JsonWebKeySet<CoreJsonWebKey> =
            serde_json::from_slice(&body).map_err(|e| unavailable(format!("unreadable key set: {e}")))?;
        if keys.keys().len() > MAX_KEYS {
            return Err(SsoError::Settings(format!("the provider's key set has more than {MAX_KEYS} keys")));
        }
        Ok(keys)
    }

    /// Parses a discovery document and applies the checks above. Nothing is fetched.
    fn check_metadata(&self, issuer: &Issuer, issuer_url: &url::Url, doc: &[u8]) -> Result<Metadata, SsoError> {
        let raw: Map<String, Value> = serde_json::from_slice(doc)
            .map_err(|e| unavailable(format!("the discovery document is not a JSON object: {e}")))?;
        let named = raw.get("issuer").and_then(Value::as_str).unwrap_or("");
        if named.trim_end_matches('/') != issuer.as_str() {
            return Err(SsoError::Settings(format!(
                "the discovery document names another issuer ({})",
                text::clean(named, 120)
            )));
        }
        for (name, value) in &raw {
            if !(name.ends_with("_endpoint") || name == "jwks_uri") {
                continue;
            }
            // The member's name is the provider's text too: cleaned and bounded like any.
            let name = text::clean(name, 64);
            let url = value
                .as_str()
                .and_then(|s| url::Url::parse(s).ok())
                .ok_or_else(|| SsoError::Settings(format!("the discovery document's {name} is not a URL")))?;
            check_provider_url(&url, issuer_url, self.allow_loopback())
                .map_err(|m| SsoError::Settings(format!("the discovery document's {name}: {m}")))?;
        }
        let md: Metadata =
            serde_json::from_slice(doc).map_err(|e| unavailable(format!("unreadable discovery document: {e}")))?;
        if md.token_endpoint().is_none() {
            return Err(SsoError::Settings("the provider publishes no token endpoint".into()));
        }
        Ok(md)
    }

    /// Installs a provider's discovery document and key set as if just fetched, after the same
    /// checks (offline use: the verification benchmarks).
    pub fn insert_discovery(&self, issuer: &Issuer, metadata: &str, jwks: &str) -> Result<(), SsoError> {
        let issuer_url = url::Url::parse(issuer.as_str())
            .map_err(|e| SsoError::Settings(format!("the issuer is not a URL: {e}")))?;
        let md = self.check_metadata(issuer, &issuer_url, metadata.as_bytes())?;
        let keys: JsonWebKeySet<CoreJsonWebKey> =
            serde_json::from_str(jwks).map_err(|e| SsoError::Settings(format!("unreadable key set: {e}")))?;
        let slot = self.slot(issuer);
        slot.state().entry = Some(Cached::new(md.set_jwks(keys), Instant::now()));
        Ok(())
    }

    /// Fetches the key set again after a token named a key we do not have (key rotation);
    /// `None` if it was refetched too recently (successfully or not).
    async fn refetch_keys(&self, issuer: &Issuer, seen: &Arc<Cached>) -> Result<Option<Arc<Cached>>, SsoError> {
        let slot = self.slot(issuer);
        let recent = |st: &SlotState| st.keys_refetched.is_some_and(|t| t.elapsed() < JWKS_REFETCH_INTERVAL);
        {
            let st = slot.state();
            if let Some(current) = st.entry.as_ref().filter(|c| !Arc::ptr_eq(c, seen)) {
                return Ok(Some(current.clone()));
            }
            if recent(&st) {
                return Ok(None);
            }
        }
        let _guard = slot.fetching.lock().await;
        {
            let mut st = slot.state();
            if let Some(current) = st.entry.as_ref().filter(|c| !Arc::ptr_eq(c, seen)) {
                return Ok(Some(current.clone()));
            }
            if recent(&st) {
                return Ok(None);
            }
            st.keys_refetched = Some(Instant::now());
        }
        let jwks_url = url::Url::parse(seen.metadata.jwks_uri().as_str())
            .map_err(|e| unavailable(format!("bad jwks_uri: {e}")))?;
        let keys = self.fetch_keys(&jwks_url).await?;
        let entry = Cached::new(seen.metadata.clone().set_jwks(keys), seen.fetched);
        slot.state().entry = Some(entry.clone());
        Ok(Some(entry))
    }

    fn client(md: &Metadata, client_id: &str, secret: &Secret, redirect_uri: &str) -> Result<OidcClient, SsoError> {
        let redirect = RedirectUrl::new(redirect_uri.to_string()).map_err(|e| SsoError::Settings(e.to_string()))?;
        // Okta and most providers take HTTP Basic; use the form body only where it is the only way.
        let methods = md.token_endpoint_auth_methods_supported();
        let post_only = methods.is_some_and(|m| {
            m.contains(&CoreClientAuthMethod::ClientSecretPost) && !m.contains(&CoreClientAuthMethod::ClientSecretBasic)
        });
        Ok(OidcClient::from_provider_metadata(
            md.clone(),
            ClientId::new(client_id.to_string()),
            Some(ClientSecret::new(secret.expose().to_string())),
        )
        .set_redirect_uri(redirect)
        .set_auth_type(if post_only { AuthType::RequestBody } else { AuthType::BasicAuth }))
    }

    /// Verifies an ID token as the callback does (signature with the cached key set, one
    /// refetch for an unknown key; `iss`, `aud`, `azp`, `exp`, `iat`, nonce), without a code
    /// exchange.
    pub async fn verify_id_token(
        &self,
        expect: &IdTokenExpectations<'_>,
        id_token: &str,
    ) -> Result<VerifiedIdToken, SsoError> {
        let token = id_token
            .parse::<OidcIdToken>()
            .map_err(|_| SsoError::rejected("invalid_id_token", "the ID token is malformed"))?;
        let entry = self.provider(expect.issuer, false).await?;
        self.verify_id(expect, entry, &token).await
    }

    async fn verify_id(
        &self,
        want: &IdTokenExpectations<'_>,
        mut entry: Arc<Cached>,
        id_token: &OidcIdToken,
    ) -> Result<VerifiedIdToken, SsoError> {
        let nonce = Nonce::new(want.nonce.expose().to_string());
        let issuer_url = openidconnect::IssuerUrl::new(want.issuer.as_str().to_string())
            .map_err(|e| SsoError::Settings(e.to_string()))?;
        let mut refetched = false;
        let claims = loop {
            let verifier = IdTokenVerifier::new_public_client(
                ClientId::new(want.client_id.to_string()),
                issuer_url.clone(),
                entry.metadata.jwks().clone(),
            )
            .set_allowed_algs(ID_TOKEN_ALGS);
            match id_token.claims(&verifier, &nonce) {
                Ok(c) => break c.clone(),
                Err(ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey))
                    if !refetched =>
                {
                    refetched = true;
                    match self.refetch_keys(want.issuer, &entry).await? {
                        Some(e) => entry = e,
                        None => return Err(key_not_fetched_yet()),
                    }
                }
                Err(ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey)) => {
                    return Err(unknown_key())
                }
                Err(e) => {
                    tracing::info!(error = %error_chain(&e), "ID token refused");
                    return Err(SsoError::rejected("invalid_id_token", id_token_refusal(&e)));
                }
            }
        };
        if let Some(azp) = claims.authorized_party() {
            if azp.as_str() != want.client_id {
                return Err(SsoError::rejected("invalid_id_token", "the ID token was issued to another client (azp)"));
            }
        }
        if claims.issue_time().timestamp() > now_secs() + CLOCK_SKEW_SECS {
            return Err(SsoError::rejected("invalid_id_token", "the ID token is issued in the future (iat)"));
        }
        let sid = claims.additional_claims().sid.clone().filter(|s| !s.is_empty() && s.len() <= 255);
        Ok(VerifiedIdToken {
            issuer: claims.issuer().as_str().trim_end_matches('/').to_string(),
            subject: claims.subject().as_str().to_string(),
            email: claims.email().map(|e| e.as_str().to_string()),
            email_verified: claims.email_verified(),
            preferred_username: claims.preferred_username().map(|u| u.as_str().to_string()),
            name: claims.name().and_then(|n| n.get(None)).map(|n| n.as_str().to_string()),
            given_name: claims.given_name().and_then(|n| n.get(None)).map(|n| n.as_str().to_string()),
            family_name: claims.family_name().and_then(|n| n.get(None)).map(|n| n.as_str().to_string()),
            sid: sid.filter(|s| !s.chars().any(char::is_control)),
            raw: Secret::new(id_token.to_string()),
        })
    }

    /// The `email_verified` claim from the userinfo endpoint, for providers whose ID tokens
    /// leave it out (Okta's "thin" ID tokens). Counts only if userinfo names the same subject
    /// and the same email.
    async fn userinfo_email_verified(
        &self,
        md: &Metadata,
        access_token: &str,
        token: &VerifiedIdToken,
    ) -> Option<bool> {
        let endpoint = md.userinfo_endpoint()?;
        let url = url::Url::parse(endpoint.as_str()).ok()?;
        let req = http::Request::get(url.as_str())
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::AUTHORIZATION, format!("Bearer {access_token}"))
            .body(Vec::new())
            .ok()?;
        let r = match self.http.send(req).await {
            Ok(r) if r.status == 200 => r,
            Ok(r) => {
                tracing::info!(status = r.status, "userinfo did not answer 200; email not verified");
                return None;
            }
            Err(e) => {
                tracing::info!(error = %e, "userinfo failed; email not verified");
                return None;
            }
        };
        let v: Map<String, Value> = serde_json::from_slice(&r.body).ok()?;
        let same_sub = v.get("sub").and_then(Value::as_str) == Some(token.subject.as_str());
        let same_email = v.get("email").and_then(Value::as_str) == token.email.as_deref();
        if !(same_sub && same_email) {
            return None;
        }
        v.get("email_verified").and_then(Value::as_bool)
    }
}

/// Why an ID token was refused, in our words (the crate's messages quote claim values the
/// provider chose).
fn id_token_refusal(e: &ClaimsVerificationError) -> &'static str {
    match e {
        ClaimsVerificationError::Expired(_) => "the ID token has expired",
        ClaimsVerificationError::InvalidAudience(_) => "the ID token's audience is another client (aud)",
        ClaimsVerificationError::InvalidIssuer(_) => "the ID token names another issuer",
        ClaimsVerificationError::InvalidNonce(_) => "the ID token does not carry this sign-in's nonce",
        ClaimsVerificationError::SignatureVerification(_) => "the ID token's signature is not valid",
        ClaimsVerificationError::InvalidSubject(_) => "the ID token has no usable subject",
        ClaimsVerificationError::Unsupported(_) => "the ID token's signature algorithm is not accepted",
        _ => "the ID token failed verification",
    }
}

fn unknown_key() -> SsoError {
    SsoError::rejected("invalid_id_token", "the ID token is signed with an unknown key")
}

/// A token names a key we do not have, and the key set was fetched again too recently to
/// fetch it now ([`JWKS_REFETCH_INTERVAL`]). Anyone can send a token naming a random key and
/// so spend that refetch: a provider that has just rotated its key must then be told to retry
/// (503), not that its token is bad, or its logout is lost.
fn key_not_fetched_yet() -> SsoError {
    unavailable(format!(
        "the token names a key not in the provider's key set as last fetched; it is fetched again within {} s",
        JWKS_REFETCH_INTERVAL.as_secs()
    ))
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

fn jwt_rejected(detail: impl Into<String>) -> SsoError {
    SsoError::rejected("invalid_jwt", detail)
}

/// `typ` rules: RFC 8725 explicit typing, accepting the `application/` form too.
fn typ_allowed(typ: Option<&str>, kind: JwtKind) -> bool {
    let t = typ.map(|t| t.to_ascii_lowercase());
    let t = t.as_deref().map(|t| t.strip_prefix("application/").unwrap_or(t));
    match kind {
        JwtKind::LogoutToken => matches!(t, None | Some("logout+jwt") | Some("jwt")),
        JwtKind::GlobalTokenRevocation => t == Some("global-token-revocation+jwt"),
    }
}

fn info(issuer: &Issuer, md: &Metadata) -> ProviderInfo {
    let extra = md.additional_metadata();
    ProviderInfo {
        issuer: issuer.clone(),
        authorization_endpoint: md.authorization_endpoint().as_str().to_string(),
        end_session_endpoint: extra.end_session_endpoint.clone(),
        iss_parameter_supported: extra.authorization_response_iss_parameter_supported.unwrap_or(false),
    }
}

#[async_trait]
impl IdentityProvider for OidcProvider {
    async fn discover(&self, issuer: &Issuer, fresh: bool) -> Result<ProviderInfo, SsoError> {
        let entry = self.provider(issuer, fresh).await?;
        Ok(info(issuer, &entry.metadata))
    }

    async fn redeem(&self, r: CodeRedemption<'_>) -> Result<VerifiedIdToken, SsoError> {
        let want = &r.expect;
        let entry = self.provider(want.issuer, false).await?;
        let client = Self::client(&entry.metadata, want.client_id, want.client_secret, want.redirect_uri)?;
        let guarded = self.http.clone();
        let http = move |req: openidconnect::HttpRequest| {
            let guarded = guarded.clone();
            async move { guarded.send(req).await.map(to_response) }
        };
        let response = client
            .exchange_code(AuthorizationCode::new(r.code.to_string()))
            .map_err(|e| SsoError::Settings(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(r.pkce_verifier.expose().to_string()))
            .request_async(&http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(resp) => {
                    // The provider's words go to our log (bounded, cleaned); the page says ours,
                    // with the error code only if it looks like one.
                    let code = text::code(resp.error().as_ref()).unwrap_or_else(|| "invalid".into());
                    tracing::info!(
                        code = %code,
                        description = %text::clean(resp.error_description().map(String::as_str).unwrap_or(""), 200),
                        "the identity provider refused the authorization code"
                    );
                    SsoError::rejected(
                        "code_exchange_failed",
                        format!("the identity provider refused the sign-in ({code})"),
                    )
                }
                RequestTokenError::Request(e) => unavailable(format!("token endpoint: {e}")),
                other => {
                    tracing::info!(error = %error_chain(&other), "unreadable token response");
                    SsoError::rejected(
                        "code_exchange_failed",
                        "the identity provider's token response could not be read",
                    )
                }
            })?;
        let id_token = response
            .id_token()
            .ok_or_else(|| SsoError::rejected("invalid_id_token", "the token response has no ID token"))?;
        let mut verified = self.verify_id(want, entry.clone(), id_token).await?;
        if verified.email_verified.is_none() && verified.email.is_some() {
            verified.email_verified =
                self.userinfo_email_verified(&entry.metadata, response.access_token().secret(), &verified).await;
        }
        Ok(verified)
    }

    async fn verify_jwt(
        &self,
        issuer: &Issuer,
        token: &str,
        audience: &str,
        kind: JwtKind,
    ) -> Result<Map<String, Value>, SsoError> {
        use jsonwebtoken::Algorithm as A;
        // `alg: none` and unknown algorithms fail to parse here.
        let header = jsonwebtoken::decode_header(token).map_err(|_| jwt_rejected("malformed JWT"))?;
        if !matches!(header.alg, A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512 | A::ES256 | A::ES384)
        {
            return Err(jwt_rejected("the JWT must be signed with the provider's asymmetric key"));
        }
        if !typ_allowed(header.typ.as_deref(), kind) {
            return Err(jwt_rejected("the JWT has the wrong typ"));
        }
        let kid = header.kid.clone().ok_or_else(|| jwt_rejected("the JWT names no key (kid)"))?;
        let mut entry = self.provider(issuer, false).await?;
        let mut refetched = false;
        let key = loop {
            let keys = entry.decoding.as_ref().map_err(unavailable)?;
            match keys.get(&kid) {
                Some(Ok(key)) => break key.clone(),
                // The provider's key set is broken: the provider's to fix, and to retry.
                Some(Err(e)) => return Err(unavailable(e)),
                None if !refetched => {
                    refetched = true;
                    match self.refetch_keys(issuer, &entry).await? {
                        Some(e) => entry = e,
                        None => return Err(key_not_fetched_yet()),
                    }
                }
                None => return Err(jwt_rejected("the JWT is signed with an unknown key")),
            }
        };
        let mut v = jsonwebtoken::Validation::new(header.alg);
        v.set_issuer(&[issuer.as_str()]);
        v.set_audience(&[audience]);
        v.leeway = CLOCK_SKEW_SECS as u64;
        match kind {
            JwtKind::LogoutToken => v.set_required_spec_claims(&["iss", "aud", "exp", "iat"]),
            JwtKind::GlobalTokenRevocation => {
                v.validate_nbf = true;
                v.set_required_spec_claims(&["iss", "aud", "exp", "nbf"]);
            }
        }
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &v).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                // The provider's key does not suit its own algorithm: not the token's fault.
                K::InvalidKeyFormat | K::InvalidRsaKey(_) | K::InvalidEcdsaKey => {
                    unavailable(format!("the provider's key {kid} is unusable ({:?})", e.kind()))
                }
                // Our words only: a claim's decoding error would quote the token's content.
                K::ExpiredSignature => jwt_rejected("the JWT has expired (exp)"),
                K::ImmatureSignature => jwt_rejected("the JWT is not valid yet (nbf)"),
                K::InvalidIssuer => jwt_rejected("the JWT is from another issuer (iss)"),
                K::InvalidAudience => jwt_rejected("the JWT is for another audience (aud)"),
                K::InvalidSignature => jwt_rejected("the JWT's signature does not verify"),
                K::MissingRequiredClaim(c) => {
                    jwt_rejected(format!("the JWT lacks a required claim ({})", text::clean(c, 8)))
                }
                _ => jwt_rejected("the JWT failed verification"),
            }
        })?;
        if let Some(iat) = data.claims.get("iat") {
            match iat.as_i64() {
                Some(t) if t <= now_secs() + CLOCK_SKEW_SECS => {}
                Some(_) => return Err(jwt_rejected("the JWT is issued in the future (iat)")),
                None => return Err(jwt_rejected("the JWT's iat is not a number")),
            }
        }
        Ok(data.claims)
    }
}

fn to_response(f: crate::http::Fetched) -> openidconnect::HttpResponse {
    let mut resp = http::Response::new(f.body.to_vec());
    *resp.status_mut() = http::StatusCode::from_u16(f.status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    *resp.headers_mut() = f.headers;
    resp
}
