//! Text that came from outside (an identity provider, a client, a header) on its way into a log
//! line, an audit event or an error message: bounded in length and free of control
//! characters, so it can neither grow an item without limit nor forge a line of its own.

/// At most `max` characters of `s` (on a character boundary), with `…` when cut.
pub fn bounded(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((i, _)) => {
            let mut out = s[..i].to_string();
            out.push('…');
            out
        }
    }
}

/// `s` with every control character (C0, DEL, C1, and the Unicode line and paragraph
/// separators and bidirectional controls) replaced by a space, then [`bounded`] to `max`.
pub fn clean(s: &str, max: usize) -> String {
    let cleaned: String = s.chars().map(|c| if is_unsafe(c) { ' ' } else { c }).collect();
    bounded(&cleaned, max)
}

/// Characters that must not reach a log line or a stored description unescaped.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// A short code from outside (an OAuth `error` value): kept only if it is 1 to 64 characters
/// of `[A-Za-z0-9_.-]`, else `None`.
pub fn code(s: &str) -> Option<String> {
    (!s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')))
        .then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_cleans() {
        assert_eq!(bounded("abc", 5), "abc");
        assert_eq!(bounded("abcdef", 3), "abc…");
        assert_eq!(bounded("ééé", 2), "éé…");
        assert_eq!(clean("a\nb\r\x1b[31mc\u{2028}d\u{202e}e", 100), "a b  [31mc d e");
        assert_eq!(clean(&"x".repeat(20_000), 200).chars().count(), 201);
        assert_eq!(code("access_denied").as_deref(), Some("access_denied"));
        assert_eq!(code("bad code"), None);
        assert_eq!(code(&"a".repeat(65)), None);
        assert_eq!(code(""), None);
    }
}
