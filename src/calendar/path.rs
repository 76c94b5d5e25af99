//! The one spelling of a calendar collection's path. A grant and a link are
//! compared as strings (`calendar_grants.path = calendar_links.path`), while the
//! CalDAV server acts on what the path *means*: `/bob/%70rivate/`, `/bob/private`
//! and `/bob//private/` can all reach `/bob/private/`. So both routes store the
//! canonical form and anything two servers could read differently is refused:
//!
//! - percent-escapes of unreserved characters (RFC 3986 §2.3: letters, digits,
//!   `-._~`) and of the path's allowed delimiters (`!$&'()*+,;=:@`) are decoded;
//!   every other escape is kept with upper-case hex (§6.2.2.1); raw non-ASCII is
//!   escaped as its UTF-8 bytes, so `/é/` and `/%c3%a9/` are one path;
//! - an escaped `/`, `\` or control character, a raw space, `?`, `#`, `\` or
//!   control character, an empty segment (`//`) and a `.` or `..` segment (also
//!   escaped, `%2e%2e`) are refused: servers resolve them differently;
//! - a collection's path ends in `/` (RFC 4918 §5.2): one is appended if missing;
//! - case is kept: paths are case-sensitive (RFC 3986 §6.2.2.1 folds only the
//!   scheme, host and hex digits), so `/Bob/` and `/bob/` are two collections.

/// Longest canonical path accepted (bytes).
pub const MAX_LEN: usize = 1024;

/// Why a path was refused (the API answers `validation_failed` with it).
pub const REFUSED: &str = "`path` must be an absolute path on the server: no `.` or `..` \
    or empty segments, no spaces, `?`, `#`, `\\` or control characters, and no escaped \
    `/`, `\\` or control characters";

/// The canonical form of `path`, or `None` if it is refused.
pub fn canonical(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return None;
    }
    let mut out = String::with_capacity(path.len() + 1);
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        if byte == b'%' {
            let value = bytes
                .get(at + 1..at + 3)
                .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())?;
            if value == b'/' || value == b'\\' || value.is_ascii_control() {
                return None;
            }
            if value.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&value) {
                out.push(char::from(value));
            } else {
                push_escaped(&mut out, value);
            }
            at += 3;
            continue;
        }
        if byte.is_ascii_control() || b" ?#\\".contains(&byte) {
            return None;
        }
        if byte.is_ascii() {
            if b"\"<>^`{|}[]".contains(&byte) {
                // Not allowed raw in a path: its escaped form is the canonical one.
                push_escaped(&mut out, byte);
            } else {
                out.push(char::from(byte));
            }
        } else {
            push_escaped(&mut out, byte);
        }
        at += 1;
    }
    if !out.ends_with('/') {
        out.push('/');
    }
    // Segments between the leading and the trailing `/` (none for `/`).
    let inner = out.get(1..out.len() - 1).unwrap_or_default();
    let bad_segment = |seg: &str| seg.is_empty() || seg == "." || seg == "..";
    if out.len() > 1 && inner.split('/').any(bad_segment) {
        return None;
    }
    if out.len() > MAX_LEN {
        return None;
    }
    Some(out)
}

fn push_escaped(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(byte >> 4)]));
    out.push(char::from(HEX[usize::from(byte & 0xf)]));
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn one_spelling_per_collection() {
        let same = [
            ("/bob/private/", "/bob/private/"),
            ("/bob/private", "/bob/private/"),
            ("/bob/%70rivate/", "/bob/private/"),
            ("/bob/%70%72ivate", "/bob/private/"),
            ("/a%2Db/", "/a-b/"),
            ("/a%40b/", "/a@b/"),
            ("/caf%c3%a9/", "/caf%C3%A9/"),
            ("/café/", "/caf%C3%A9/"),
            ("/a%25b/", "/a%25b/"),
            ("/a{b}/", "/a%7Bb%7D/"),
            ("/a%7bb%7d/", "/a%7Bb%7D/"),
            ("/", "/"),
        ];
        for (given, want) in same {
            assert_eq!(canonical(given).as_deref(), Some(want), "{given}");
        }
    }

    #[test]
    fn case_is_kept() {
        assert_eq!(canonical("/Bob/Private/").as_deref(), Some("/Bob/Private/"));
        assert_ne!(canonical("/Bob/private/"), canonical("/bob/private/"));
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for path in [
            "",
            "bob/private/",
            "http://x/bob/",
            "/bob//private/",
            "//bob/",
            "/bob/./private/",
            "/bob/../alice/",
            "/bob/%2e%2e/alice/",
            "/bob/%2E/",
            "/bob%2fprivate/",
            "/bob%2Fprivate/",
            "/bob%5cprivate/",
            "/bob\\private/",
            "/bob/pri vate/",
            "/bob/%00/",
            "/bob/\u{7}/",
            "/bob/?x",
            "/bob/#x",
            "/bob/%zz/",
            "/bob/%4",
            "/bob/%+7/",
        ] {
            assert_eq!(canonical(path), None, "{path:?}");
        }
        assert_eq!(canonical(&format!("/{}/", "a".repeat(1023))), None);
        assert!(canonical(&format!("/{}/", "a".repeat(1022))).is_some());
    }
}
