//! The identity-provider adapter: OpenID Connect discovery, code exchange and ID token
//! verification with the `openidconnect` crate, over an HTTP client that is safe to point at
//! tenant-supplied URLs (no redirects, timeouts, no private or link-local addresses).
//!
//! Discovery documents and key sets are cached per issuer for the life of the process (a warm
//! Lambda keeps them across invocations). A token signed with a key we do not know triggers
//! one refetch of the key set, at most once per [`JWKS_REFETCH_INTERVAL`] per issuer.

use async_trait::async_trait;
use butterfly_core::sso::{
    check_endpoint, ip_allowed, CodeRedemption, IdTokenExpectations, IdentityProvider, Issuer, JwtKind, ProviderInfo,
    SsoError, VerifiedIdToken,
};
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
    IssuerUrl, JsonWebKeySet, Nonce, PkceCodeVerifier, ProviderMetadata, RedirectUrl, RequestTokenError,
    SignatureVerificationError, StandardErrorResponse, StandardTokenResponse, TokenResponse,
};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

/// How long a discovery document is reused.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// A key set is fetched again for an unknown `kid` at most this often per issuer.
pub const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

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

/// Resolves host names and drops every address a tenant must not make us fetch from.
struct GuardedResolver {
    allow_loopback: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs.into_iter().filter(|a| ip_allowed(a.ip(), allow_loopback)).collect();
            if allowed.is_empty() {
                return Err(format!("{host} resolves only to private, loopback or link-local addresses").into());
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The HTTP client for provider calls: no redirects (SSRF), short timeouts, rustls, guarded DNS.
pub fn provider_http_client(allow_loopback_http: bool) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(3))
        .timeout(Duration::from_secs(6))
        .pool_idle_timeout(Duration::from_secs(60))
        .dns_resolver(Arc::new(GuardedResolver { allow_loopback: allow_loopback_http }))
        .user_agent(concat!("butterfly-identity/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

struct Cached {
    metadata: Metadata,
    fetched: Instant,
    /// When an unknown `kid` last made us fetch the key set again.
    jwks_refetched: Option<Instant>,
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
    fn new(metadata: Metadata, fetched: Instant, jwks_refetched: Option<Instant>) -> Arc<Self> {
        let decoding = decoding_keys(&metadata);
        Arc::new(Cached { metadata, fetched, jwks_refetched, decoding })
    }
}

/// The OpenID Connect adapter. Build one per process and share it.
pub struct OidcProvider {
    http: reqwest::Client,
    allow_loopback_http: bool,
    cache: RwLock<HashMap<String, Arc<Cached>>>,
}

impl OidcProvider {
    pub fn new(allow_loopback_http: bool) -> Result<Self, String> {
        Ok(OidcProvider {
            http: provider_http_client(allow_loopback_http)?,
            allow_loopback_http,
            cache: RwLock::new(HashMap::new()),
        })
    }

    fn check(&self, what: &str, url: &str) -> Result<(), SsoError> {
        let parsed = url::Url::parse(url).map_err(|e| SsoError::Settings(format!("the {what} {url:?}: {e}")))?;
        check_endpoint(&parsed, self.allow_loopback_http).map_err(|e| SsoError::Settings(format!("the {what} {e}")))
    }

    async fn fetch(&self, issuer: &Issuer) -> Result<Arc<Cached>, SsoError> {
        let url = IssuerUrl::new(issuer.as_str().to_string()).map_err(|e| SsoError::Settings(e.to_string()))?;
        let md = Metadata::discover_async(url, &self.http)
            .await
            .map_err(|e| SsoError::ProviderUnavailable(error_chain(&e)))?;
        self.accept(issuer, md).await
    }

    /// Installs a provider's discovery document and key set as if just fetched, after the same
    /// checks (offline use: the verification benchmarks, air-gapped tests).
    pub async fn insert_discovery(&self, issuer: &Issuer, metadata: &str, jwks: &str) -> Result<(), SsoError> {
        let md: Metadata = serde_json::from_str(metadata)
            .map_err(|e| SsoError::Settings(format!("unreadable discovery document: {e}")))?;
        if md.issuer().as_str().trim_end_matches('/') != issuer.as_str() {
            return Err(SsoError::Settings(format!(
                "the discovery document names the issuer {}",
                md.issuer().as_str()
            )));
        }
        let keys: JsonWebKeySet<CoreJsonWebKey> =
            serde_json::from_str(jwks).map_err(|e| SsoError::Settings(format!("unreadable key set: {e}")))?;
        self.accept(issuer, md.set_jwks(keys)).await.map(|_| ())
    }

    /// Checks a discovered provider's endpoints and caches it.
    async fn accept(&self, issuer: &Issuer, md: Metadata) -> Result<Arc<Cached>, SsoError> {
        self.check("authorization endpoint", md.authorization_endpoint().as_str())?;
        self.check("key set URL", md.jwks_uri().as_str())?;
        match md.token_endpoint() {
            Some(t) => self.check("token endpoint", t.as_str())?,
            None => return Err(SsoError::Settings("the provider publishes no token endpoint".into())),
        }
        let entry = Cached::new(md, Instant::now(), None);
        self.cache.write().await.insert(issuer.as_str().to_string(), entry.clone());
        Ok(entry)
    }

    async fn cached(&self, issuer: &Issuer) -> Result<Arc<Cached>, SsoError> {
        if let Some(c) = self.cache.read().await.get(issuer.as_str()) {
            if c.fetched.elapsed() < DISCOVERY_TTL {
                return Ok(c.clone());
            }
        }
        self.fetch(issuer).await
    }

    /// Fetches the key set again after a token named a key we do not have (key rotation);
    /// `None` if the last fetch was too recent.
    async fn refetch_keys(&self, issuer: &Issuer, seen: &Arc<Cached>) -> Result<Option<Arc<Cached>>, SsoError> {
        let mut cache = self.cache.write().await;
        if let Some(current) = cache.get(issuer.as_str()) {
            if !Arc::ptr_eq(current, seen) {
                return Ok(Some(current.clone())); // someone refreshed meanwhile
            }
        }
        if seen.jwks_refetched.is_some_and(|t| t.elapsed() < JWKS_REFETCH_INTERVAL) {
            return Ok(None);
        }
        let jwks = JsonWebKeySet::fetch_async(seen.metadata.jwks_uri(), &self.http)
            .await
            .map_err(|e| SsoError::ProviderUnavailable(error_chain(&e)))?;
        let metadata = seen.metadata.clone().set_jwks(jwks);
        let entry = Cached::new(metadata, seen.fetched, Some(Instant::now()));
        cache.insert(issuer.as_str().to_string(), entry.clone());
        Ok(Some(entry))
    }

    /// Verifies an ID token as the callback does (signature with the cached key set, one refetch
    /// for an unknown key; `iss`, `aud`, `azp`, `exp`, `iat`, nonce), without a code exchange.
    pub async fn verify_id_token(
        &self,
        expect: &IdTokenExpectations<'_>,
        id_token: &str,
    ) -> Result<VerifiedIdToken, SsoError> {
        let token: OidcIdToken =
            id_token.parse().map_err(|e| SsoError::rejected("invalid_id_token", format!("malformed ID token: {e}")))?;
        let entry = self.cached(expect.issuer).await?;
        self.verify_id(expect, entry, &token).await
    }

    async fn verify_id(
        &self,
        want: &IdTokenExpectations<'_>,
        mut entry: Arc<Cached>,
        id_token: &OidcIdToken,
    ) -> Result<VerifiedIdToken, SsoError> {
        let nonce = Nonce::new(want.nonce.expose().to_string());
        let mut refetched = false;
        let claims = loop {
            let client = Self::client(&entry.metadata, want.client_id, want.client_secret, want.redirect_uri)?;
            let verifier = client.id_token_verifier();
            match id_token.claims(&verifier, &nonce) {
                Ok(c) => break c.clone(),
                Err(ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey))
                    if !refetched =>
                {
                    refetched = true;
                    match self.refetch_keys(want.issuer, &entry).await? {
                        Some(e) => entry = e,
                        None => {
                            return Err(SsoError::rejected(
                                "invalid_id_token",
                                "the ID token is signed with an unknown key",
                            ))
                        }
                    }
                }
                Err(ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey)) => {
                    return Err(SsoError::rejected("invalid_id_token", "the ID token is signed with an unknown key"))
                }
                Err(e) => return Err(SsoError::rejected("invalid_id_token", error_chain(&e))),
            }
        };
        let sid = claims.additional_claims().sid.clone().filter(|s| !s.is_empty() && s.len() <= 255);
        Ok(VerifiedIdToken {
            issuer: claims.issuer().as_str().trim_end_matches('/').to_string(),
            subject: claims.subject().as_str().to_string(),
            email: claims.email().map(|e| e.as_str().to_string()),
            preferred_username: claims.preferred_username().map(|u| u.as_str().to_string()),
            name: claims.name().and_then(|n| n.get(None)).map(|n| n.as_str().to_string()),
            given_name: claims.given_name().and_then(|n| n.get(None)).map(|n| n.as_str().to_string()),
            family_name: claims.family_name().and_then(|n| n.get(None)).map(|n| n.as_str().to_string()),
            sid: sid.filter(|s| !s.chars().any(char::is_control)),
            raw: Secret::new(id_token.to_string()),
        })
    }

    fn client(md: &Metadata, client_id: &str, secret: &Secret, redirect_uri: &str) -> Result<OidcClient, SsoError> {
        let redirect = RedirectUrl::new(redirect_uri.to_string()).map_err(|e| SsoError::Settings(e.to_string()))?;
        // Okta and most providers take HTTP Basic; use the form body only where it is the only way.
        let methods = md.token_endpoint_auth_methods_supported();
        let post_only = methods.is_some_and(|m| {
            m.contains(&CoreClientAuthMethod::ClientSecretPost) && !m.contains(&CoreClientAuthMethod::ClientSecretBasic)
        });
        let client = OidcClient::from_provider_metadata(
            md.clone(),
            ClientId::new(client_id.to_string()),
            Some(ClientSecret::new(secret.expose().to_string())),
        )
        .set_redirect_uri(redirect)
        .set_auth_type(if post_only { AuthType::RequestBody } else { AuthType::BasicAuth });
        Ok(client)
    }
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

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
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
        let entry = if fresh { self.fetch(issuer).await? } else { self.cached(issuer).await? };
        Ok(info(issuer, &entry.metadata))
    }

    async fn redeem(&self, r: CodeRedemption<'_>) -> Result<VerifiedIdToken, SsoError> {
        let want = &r.expect;
        let entry = self.cached(want.issuer).await?;
        let client = Self::client(&entry.metadata, want.client_id, want.client_secret, want.redirect_uri)?;
        let response = client
            .exchange_code(AuthorizationCode::new(r.code.to_string()))
            .map_err(|e| SsoError::Settings(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(r.pkce_verifier.expose().to_string()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(resp) => SsoError::rejected(
                    "code_exchange_failed",
                    format!(
                        "the provider refused the code: {}{}",
                        resp.error().as_ref(),
                        resp.error_description().map(|d| format!(" ({d})")).unwrap_or_default()
                    ),
                ),
                RequestTokenError::Request(e) => SsoError::ProviderUnavailable(error_chain(&e)),
                other => SsoError::rejected("code_exchange_failed", error_chain(&other)),
            })?;
        let id_token = response
            .id_token()
            .ok_or_else(|| SsoError::rejected("invalid_id_token", "the token response has no ID token"))?;
        self.verify_id(want, entry, id_token).await
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
        let header = jsonwebtoken::decode_header(token).map_err(|e| jwt_rejected(format!("malformed JWT: {e}")))?;
        if !matches!(header.alg, A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512 | A::ES256 | A::ES384)
        {
            return Err(jwt_rejected("the JWT must be signed with the provider's asymmetric key"));
        }
        if !typ_allowed(header.typ.as_deref(), kind) {
            return Err(jwt_rejected(format!("the JWT has the wrong typ {:?}", header.typ)));
        }
        let kid = header.kid.clone().ok_or_else(|| jwt_rejected("the JWT names no key (kid)"))?;
        let mut entry = self.cached(issuer).await?;
        let mut refetched = false;
        let key = loop {
            let keys = entry.decoding.as_ref().map_err(|e| SsoError::ProviderUnavailable(e.clone()))?;
            match keys.get(&kid) {
                Some(Ok(key)) => break key.clone(),
                Some(Err(e)) => return Err(jwt_rejected(e.clone())),
                None if !refetched => {
                    refetched = true;
                    match self.refetch_keys(issuer, &entry).await? {
                        Some(e) => entry = e,
                        None => return Err(jwt_rejected("the JWT is signed with an unknown key")),
                    }
                }
                None => return Err(jwt_rejected("the JWT is signed with an unknown key")),
            }
        };
        let mut v = jsonwebtoken::Validation::new(header.alg);
        v.set_issuer(&[issuer.as_str()]);
        v.set_audience(&[audience]);
        v.leeway = 60;
        match kind {
            JwtKind::LogoutToken => v.set_required_spec_claims(&["iss", "aud", "exp", "iat"]),
            JwtKind::GlobalTokenRevocation => {
                v.validate_nbf = true;
                v.set_required_spec_claims(&["iss", "aud", "exp", "nbf"]);
            }
        }
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &v)
            .map_err(|e| jwt_rejected(format!("the JWT failed verification: {e}")))?;
        Ok(data.claims)
    }
}
