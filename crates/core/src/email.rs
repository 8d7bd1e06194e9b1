//! Email addresses: the syntax check behind `userName`, Unicode case folding for uniqueness,
//! and email domains.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Unicode default case folding (the comparison SCIM's `caseExact: false` asks for).
pub fn fold(s: &str) -> String {
    caseless::default_case_fold_str(s)
}

/// Checks the practical syntax of an address (RFC 5321 lengths, RFC 6531 allows UTF-8):
/// one `@`, a dot-atom local part of at most 64 octets, and a domain of at least two labels.
/// Quoted local parts and IP literals are refused: no identity provider sends them as logins.
pub fn check_email(s: &str) -> Result<(), String> {
    if s.len() > 254 {
        return Err("is longer than 254 characters".into());
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return Err("has no '@'".into());
    };
    if local.is_empty() {
        return Err("has nothing before the '@'".into());
    }
    if local.len() > 64 {
        return Err("has a local part longer than 64 characters".into());
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("has a misplaced dot in the local part".into());
    }
    const ATEXT: &str = "!#$%&'*+-/=?^_`{|}~.";
    if let Some(c) = local.chars().find(|c| {
        !(c.is_alphanumeric() || ATEXT.contains(*c) || (!c.is_ascii() && !c.is_control() && !c.is_whitespace()))
    }) {
        return Err(format!("has the character {c:?} in the local part"));
    }
    check_domain(domain)
}

/// Checks a DNS domain name as used in an email address.
pub fn check_domain(domain: &str) -> Result<(), String> {
    if domain.is_empty() {
        return Err("has no domain after the '@'".into());
    }
    if domain.len() > 253 {
        return Err("has a domain longer than 253 characters".into());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err(format!("has the domain {domain:?}, which is not a fully qualified domain"));
    }
    for label in &labels {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("has an empty or over-long label in the domain {domain:?}"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("has a label starting or ending with '-' in the domain {domain:?}"));
        }
        if !label.chars().all(|c| c.is_alphanumeric() || c == '-') {
            return Err(format!("has an invalid character in the domain {domain:?}"));
        }
    }
    Ok(())
}

/// A user's `userName`: an email address, kept with its original case, compared case-folded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName {
    original: String,
    folded: String,
}

impl UserName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let trimmed = s.trim();
        if trimmed.is_empty() {
            return Err("userName is required and must be an email address".into());
        }
        check_email(trimmed).map_err(|why| format!("userName {trimmed:?} is not a valid email address: it {why}"))?;
        Ok(UserName { original: trimmed.to_string(), folded: fold(trimmed) })
    }
    pub fn as_str(&self) -> &str {
        &self.original
    }
    /// The case-folded form used for uniqueness and `eq` lookups.
    pub fn folded(&self) -> &str {
        &self.folded
    }
    /// The domain part, lower-cased.
    pub fn domain(&self) -> &str {
        self.folded.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

impl Serialize for UserName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.original)
    }
}

impl<'de> Deserialize<'de> for UserName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        // Stored values were validated on the way in; re-derive the folded form only.
        let folded = fold(&s);
        Ok(UserName { original: s, folded })
    }
}

/// A normalised email domain (lower case, no trailing dot), e.g. `example.com`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EmailDomain(String);

impl EmailDomain {
    pub fn parse(s: &str) -> Result<Self, String> {
        let d = fold(s.trim().trim_start_matches('@').trim_end_matches('.'));
        check_domain(&d).map_err(|why| format!("email domain {s:?} is not valid: it {why}"))?;
        Ok(EmailDomain(d))
    }
    /// Parses a comma-separated list, dropping duplicates.
    pub fn parse_list(s: &str) -> Result<Vec<Self>, String> {
        let mut out: Vec<EmailDomain> = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let d = EmailDomain::parse(part)?;
            if !out.contains(&d) {
                out.push(d);
            }
        }
        Ok(out)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Public mailbox providers: their domains can never route sign-ins to one tenant.
const CONSUMER_DOMAINS: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "yahoo.co.uk",
    "yahoo.fr",
    "ymail.com",
    "outlook.com",
    "hotmail.com",
    "hotmail.co.uk",
    "hotmail.fr",
    "live.com",
    "msn.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "aol.com",
    "proton.me",
    "protonmail.com",
    "pm.me",
    "gmx.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "mail.com",
    "yandex.com",
    "yandex.ru",
    "mail.ru",
    "qq.com",
    "163.com",
    "126.com",
    "zoho.com",
    "fastmail.com",
    "tutanota.com",
    "hey.com",
    "orange.fr",
    "free.fr",
    "t-online.de",
    "comcast.net",
    "verizon.net",
];

impl EmailDomain {
    /// Whether this is a public mailbox provider's domain (refused as a tenant domain).
    pub fn is_consumer(&self) -> bool {
        CONSUMER_DOMAINS.contains(&self.0.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_logins() {
        for ok in [
            "test.user@okta.local",
            "Runscope123Abcdefghi123@atko.com",
            "a+tag@sub.example.co.uk",
            "o'brien@example.ie",
            "jürgen@müller.de",
            "x@y.io",
        ] {
            assert!(UserName::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_non_emails_with_a_reason() {
        for (bad, why) in [
            ("", "required"),
            ("plainname", "no '@'"),
            ("@example.com", "nothing before"),
            ("a@localhost", "fully qualified"),
            ("a..b@example.com", "misplaced dot"),
            ("a b@example.com", "character"),
            ("a@-x.com", "starting or ending"),
            ("a@exa_mple.com", "invalid character"),
            ("438646be-ef11-4c4e-9a8c-0e2a3a0e5d4c", "no '@'"),
        ] {
            let err = UserName::parse(bad).err().unwrap_or_default();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn folds_unicode_case_but_keeps_the_original() {
        let a = UserName::parse("Straße@Example.COM").unwrap_or_else(|e| panic!("{e}"));
        let b = UserName::parse("STRASSE@example.com").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.folded(), b.folded());
        assert_eq!(a.as_str(), "Straße@Example.COM");
        assert_eq!(a.domain(), "example.com");
    }

    #[test]
    fn consumer_domains_are_recognised() {
        assert!(EmailDomain::parse("Gmail.com").unwrap().is_consumer());
        assert!(!EmailDomain::parse("acme.com").unwrap().is_consumer());
    }

    #[test]
    fn normalises_domain_lists() {
        let l = EmailDomain::parse_list(" Example.com, @b.org., example.com ,").unwrap_or_default();
        assert_eq!(l.iter().map(|d| d.as_str()).collect::<Vec<_>>(), vec!["example.com", "b.org"]);
        assert!(EmailDomain::parse_list("a.com, nodot").is_err());
    }
}
