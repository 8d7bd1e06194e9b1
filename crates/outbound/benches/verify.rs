//! Micro-benchmarks of the token checks on the sign-in and revocation paths, through the real
//! adapter (`OidcProvider`, discovery and key set installed offline, keys cached as in a warm
//! Lambda): an ID token at the SSO callback, an OIDC back-channel logout token, and an Okta
//! Universal Logout (global token revocation) JWT, each RS256 with a 2048-bit key. The raw
//! RS256 signature check (jsonwebtoken alone, key already parsed; aws-lc) is the floor they
//! compare to, and RustCrypto's `rsa` check of the same signature (what openidconnect uses for
//! ID tokens, and what logout tokens used before) is measured beside it in the same run.
//! `cargo bench --workspace --bench verify`; CI runs each once (`cargo test --benches`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use butterfly_core::sso::{IdTokenExpectations, IdentityProvider, Issuer, JwtKind};
use butterfly_core::token::Secret;
use butterfly_outbound::{DnsServers, GuardedHttp, Limits, OidcProvider};
use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use std::hint::black_box;

const ISSUER: &str = "https://bench.okta.example/oauth2/default";
const CLIENT_ID: &str = "0oabenchclient";
const KID: &str = "bench-key-1";
const GTR_AUDIENCE: &str = "https://id.butterfly.example/sso/universal-logout/0b8f5f2e-6d1c-4b0e-9f57-3c1d2a4e5f60";

struct Fixture {
    key: EncodingKey,
    jwks: Value,
    decoding: jsonwebtoken::DecodingKey,
    public: rsa::RsaPublicKey,
}

fn fixture() -> Fixture {
    let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
    let der = private.to_pkcs1_der().unwrap();
    let public = private.to_public_key();
    let (n, e) = (URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()), URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()));
    let jwks = json!({"keys": [
        // A second key first, as during a provider's key rotation.
        {"kty": "RSA", "kid": "bench-key-0", "use": "sig", "alg": "RS256", "n": n, "e": e},
        {"kty": "RSA", "kid": KID, "use": "sig", "alg": "RS256", "n": n, "e": e}
    ]});
    Fixture {
        key: EncodingKey::from_rsa_der(der.as_bytes()),
        decoding: jsonwebtoken::DecodingKey::from_rsa_components(&n, &e).unwrap(),
        jwks,
        public,
    }
}

fn sign(f: &Fixture, typ: &str, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some(KID.into());
    h.typ = Some(typ.into());
    jsonwebtoken::encode(&h, claims, &f.key).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let f = fixture();
    let issuer = Issuer::parse(ISSUER, false).unwrap();
    let provider = rt.block_on(async {
        OidcProvider::new(GuardedHttp::new(&DnsServers::System, false, Limits::default()).unwrap())
    });
    let metadata = json!({
        "issuer": ISSUER,
        "authorization_endpoint": format!("{ISSUER}/v1/authorize"),
        "token_endpoint": format!("{ISSUER}/v1/token"),
        "jwks_uri": format!("{ISSUER}/v1/keys"),
        "end_session_endpoint": format!("{ISSUER}/v1/logout"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
    });
    provider.insert_discovery(&issuer, &metadata.to_string(), &f.jwks.to_string()).unwrap();
    let t = now();

    let nonce = Secret::new("n-0S6_WzA2Mj");
    let secret = Secret::new("bench-client-secret");
    let id_token = sign(
        &f,
        "JWT",
        &json!({"iss": ISSUER, "sub": "00u1benchuser", "aud": CLIENT_ID, "iat": t, "exp": t + 3600,
            "nonce": nonce.expose(), "email": "bench.user@atko.com", "name": "Bench User",
            "preferred_username": "bench.user@atko.com", "sid": "102bench-session", "auth_time": t}),
    );
    let expect = IdTokenExpectations {
        issuer: &issuer,
        client_id: CLIENT_ID,
        client_secret: &secret,
        redirect_uri: "https://id.butterfly.example/sso/callback",
        nonce: &nonce,
    };
    let verified = rt.block_on(provider.verify_id_token(&expect, &id_token)).unwrap();
    assert_eq!(verified.subject, "00u1benchuser");
    c.bench_function("jwt: ID token (callback: signature, iss, aud, exp, nonce)", |b| {
        b.iter(|| rt.block_on(provider.verify_id_token(&expect, black_box(&id_token))).unwrap())
    });

    let logout = sign(
        &f,
        "logout+jwt",
        &json!({"iss": ISSUER, "aud": CLIENT_ID, "iat": t, "exp": t + 120, "jti": "bcl-jti-1",
            "sub": "00u1benchuser", "sid": "102bench-session",
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}}}),
    );
    rt.block_on(provider.verify_jwt(&issuer, &logout, CLIENT_ID, JwtKind::LogoutToken)).unwrap();
    c.bench_function("jwt: back-channel logout token", |b| {
        b.iter(|| {
            rt.block_on(provider.verify_jwt(&issuer, black_box(&logout), CLIENT_ID, JwtKind::LogoutToken)).unwrap()
        })
    });

    let gtr = sign(
        &f,
        "global-token-revocation+jwt",
        &json!({"iss": ISSUER, "sub": CLIENT_ID, "aud": GTR_AUDIENCE, "iat": t, "nbf": t, "exp": t + 300,
            "jti": "gtr-jti-1"}),
    );
    let kind = JwtKind::GlobalTokenRevocation;
    rt.block_on(provider.verify_jwt(&issuer, &gtr, GTR_AUDIENCE, kind)).unwrap();
    c.bench_function("jwt: Universal Logout (global token revocation)", |b| {
        b.iter(|| rt.block_on(provider.verify_jwt(&issuer, black_box(&gtr), GTR_AUDIENCE, kind)).unwrap())
    });

    // The floor: the RS256 check alone, key parsed once.
    let mut v = jsonwebtoken::Validation::new(Algorithm::RS256);
    v.set_audience(&[CLIENT_ID]);
    v.set_issuer(&[ISSUER]);
    c.bench_function("jwt: RS256 signature + claims alone (jsonwebtoken, key parsed once)", |b| {
        b.iter(|| jsonwebtoken::decode::<Value>(black_box(&logout), &f.decoding, &v).unwrap())
    });
    // The peer in the same run: the same RS256 signature checked by RustCrypto's `rsa`.
    let (signed, signature) = logout.rsplit_once('.').unwrap();
    let signature = rsa::pkcs1v15::Signature::try_from(URL_SAFE_NO_PAD.decode(signature).unwrap().as_slice()).unwrap();
    let rustcrypto = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(f.public.clone());
    {
        use rsa::signature::Verifier;
        rustcrypto.verify(signed.as_bytes(), &signature).unwrap();
        c.bench_function("jwt: RS256 signature alone (RustCrypto rsa, the peer)", |b| {
            b.iter(|| rustcrypto.verify(black_box(signed.as_bytes()), &signature).unwrap())
        });
    }
}

criterion_group!(verify, benches);
criterion_main!(verify);
