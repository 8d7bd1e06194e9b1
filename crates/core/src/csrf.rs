//! CSRF tokens of signed-in browsers: an HMAC of the session cookie under a server key, so
//! only a page that can read our responses (same origin) learns it, and it cannot be computed
//! from the cookie alone.

use crate::token::Secret;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The key CSRF tokens are computed under (derived from the deployment's server secret).
#[derive(Clone)]
pub struct CsrfKey([u8; 32]);

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfKey(***)")
    }
}

impl CsrfKey {
    /// Derives the key from the deployment's server secret, domain-separated from the other
    /// uses of that secret.
    pub fn derive(server_secret: &[u8]) -> Self {
        let mut key = [0u8; 32];
        if let Ok(mut m) = Hmac::<Sha256>::new_from_slice(server_secret) {
            m.update(b"butterfly/csrf-token/v1");
            key.copy_from_slice(&m.finalize().into_bytes());
        }
        CsrfKey(key)
    }

    /// A key known to nobody (for a process that never issues tokens).
    pub fn random() -> Result<Self, String> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| format!("no randomness available: {e}"))?;
        Ok(CsrfKey(key))
    }

    /// The token for a session cookie value (and, optionally, a purpose, so a token for one
    /// form is not valid for another).
    pub fn token(&self, session_cookie: &str, purpose: &str) -> Secret {
        let Ok(mut m) = Hmac::<Sha256>::new_from_slice(&self.0) else { return Secret::new("") };
        m.update(purpose.as_bytes());
        m.update(&[0]);
        m.update(session_cookie.as_bytes());
        Secret::new(URL_SAFE_NO_PAD.encode(m.finalize().into_bytes()))
    }

    /// Constant-time check of a presented token.
    pub fn verify(&self, session_cookie: &str, purpose: &str, presented: &str) -> bool {
        let expected = self.token(session_cookie, purpose);
        !presented.is_empty() && bool::from(presented.as_bytes().ct_eq(expected.expose().as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_keyed_and_bound_to_cookie_and_purpose() {
        let k = CsrfKey::derive(b"server secret");
        let t = k.token("cookie-a", "api");
        assert!(k.verify("cookie-a", "api", t.expose()));
        assert!(!k.verify("cookie-b", "api", t.expose()));
        assert!(!k.verify("cookie-a", "logout", t.expose()));
        assert!(!k.verify("cookie-a", "api", ""));
        let other = CsrfKey::derive(b"another deployment");
        assert!(!other.verify("cookie-a", "api", t.expose()), "an unkeyed hash of the cookie is not the token");
    }
}
