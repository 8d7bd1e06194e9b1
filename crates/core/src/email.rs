//! Email addresses: the syntax check behind `userName`, the Unicode identifier rules that keep
//! look-alike names out, Unicode case folding for uniqueness, the strict form identities are
//! linked by, and email domains.

use precis_core::{IdentifierClass, StringClass};
use serde::{Deserialize, Serialize};
use std::fmt;
use unicode_normalization::UnicodeNormalization;
use unicode_security::MixedScript;

/// Unicode default case folding (the comparison SCIM's `caseExact: false` asks for). On ASCII
/// text it is ASCII lower-casing (A–Z are the only ASCII characters Unicode folds), taken
/// directly: nearly every userName is ASCII.
pub fn fold(s: &str) -> String {
    if s.is_ascii() {
        s.to_ascii_lowercase()
    } else {
        caseless::default_case_fold_str(s)
    }
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

/// Refuses addresses that could pass for another one: any code point the PRECIS
/// IdentifierClass (RFC 8264) disallows — compatibility forms such as fullwidth letters or the
/// Kelvin sign, zero-width joiners and other format or bidirectional controls, spaces,
/// symbols — and a local part or domain label that mixes scripts (UTS #39 single-script,
/// e.g. a Cyrillic `а` among Latin letters).
pub fn check_identifier(s: &str) -> Result<(), String> {
    if let Err(e) = IdentifierClass::default().allows(s) {
        return Err(match e {
            precis_core::Error::BadCodepoint(info) => format!(
                "contains the character U+{:04X}, which is not allowed in an identifier (invisible, \
                 compatibility or look-alike form)",
                info.cp
            ),
            _ => "contains characters that are not allowed in an identifier".into(),
        });
    }
    let (local, domain) = s.rsplit_once('@').unwrap_or((s, ""));
    for part in std::iter::once(local).chain(domain.split('.')) {
        if !part.is_empty() && !part.is_single_script() {
            return Err(format!("mixes scripts in {part:?} (look-alike characters)"));
        }
    }
    Ok(())
}

/// The form in which an identity's email is compared with a user's `userName` before the two
/// are linked: Unicode NFC, then lower case. Only addresses that pass [`check_identifier`]
/// have one, so no compatibility mapping and no case folding (`ß`/`ss`, the Kelvin sign) can
/// make two different addresses meet.
pub fn link_key(s: &str) -> Option<String> {
    let s = s.trim();
    check_email(s).ok()?;
    check_identifier(s).ok()?;
    Some(s.nfc().collect::<String>().to_lowercase())
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
        check_identifier(trimmed)
            .map_err(|why| format!("userName {:?} {why}", trimmed.escape_unicode().to_string()))?;
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
    fn ascii_folding_is_unicode_folding() {
        let all: String = (0u8..128).map(char::from).collect();
        assert_eq!(fold(&all), caseless::default_case_fold_str(&all));
        for c in (0u8..128).map(char::from) {
            assert_eq!(fold(&c.to_string()), caseless::default_case_fold_str(&c.to_string()), "{c:?}");
        }
        assert_eq!(fold("K\u{212a}"), "kk", "non-ASCII text still folds by Unicode (Kelvin sign)");
    }

    #[test]
    fn refuses_look_alike_user_names() {
        for bad in [
            "ad\u{200b}min@acme.test", // zero-width space
            "ad\u{200d}min@acme.test", // zero-width joiner
            "admin\u{202e}@acme.test", // right-to-left override
            "\u{ff41}dmin@acme.test",  // fullwidth a
            "\u{212a}ate@acme.test",   // Kelvin sign
            "\u{0430}dmin@acme.test",  // Cyrillic a among Latin letters
            "admin@\u{0430}cme.test",
            "ad\u{00ad}min@acme.test", // soft hyphen
        ] {
            let err = UserName::parse(bad).err().unwrap_or_default();
            assert!(err.contains("userName"), "{bad:?} accepted");
        }
        for ok in ["jürgen@müller.de", "straße@example.com", "ıd@example.com", "пётр@пример.рф", "o'brien@example.ie"]
        {
            assert!(UserName::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn link_keys_never_merge_distinct_addresses() {
        let k = |s: &str| link_key(s);
        assert_eq!(k("Kate@Acme.test"), k("kate@acme.test"));
        assert_eq!(k("JÜRGEN@müller.de"), k("jürgen@müller.de"));
        assert_eq!(k("u\u{308}ber@x.de"), k("\u{fc}ber@x.de"), "NFC: canonical equivalents are one address");
        assert_eq!(k("\u{212a}ate@acme.test"), None, "the Kelvin sign has no link key");
        assert_eq!(k("\u{ff4b}ate@acme.test"), None, "fullwidth has no link key");
        assert_ne!(k("strasse@example.com"), k("straße@example.com"));
        assert_ne!(k("id@example.com"), k("ıd@example.com"));
        assert_eq!(k("not an email"), None);
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
