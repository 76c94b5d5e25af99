//! The WebDAV/CalDAV wire format the sync engine speaks: request bodies
//! (RFC 6578 `sync-collection`, RFC 4791 `calendar-multiget`, `PROPFIND` of
//! etags and of the CalendarServer `getctag`) and the `207 Multi-Status`
//! answers, parsed with roxmltree by namespace and local name (servers choose
//! their own prefixes).

use roxmltree::{Document, Node};

const DAV: &str = "DAV:";
const CALDAV: &str = "urn:ietf:params:xml:ns:caldav";
const CS: &str = "http://calendarserver.org/ns/";

/// One `<response>` of a multistatus.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Entry {
    pub href: String,
    /// The status of the response (or of its first propstat): 200, 404, …
    pub status: u16,
    pub etag: Option<String>,
    pub calendar_data: Option<String>,
    /// Whether `resourcetype` names a collection (the calendar itself in a
    /// Depth 1 listing).
    pub collection: bool,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Multistatus {
    pub sync_token: Option<String>,
    pub ctag: Option<String>,
    pub entries: Vec<Entry>,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `REPORT` (Depth 1) body of an RFC 6578 sync from `token` (none: initial).
pub fn sync_collection(token: Option<&str>) -> String {
    let token = token.map(escape).unwrap_or_default();
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><d:sync-collection xmlns:d="DAV:"><d:sync-token>{token}</d:sync-token><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"#
    )
}

/// `REPORT` (Depth 1) body fetching the objects at `hrefs` with their etags.
pub fn multiget(hrefs: &[String]) -> String {
    let mut body = String::from(
        r#"<?xml version="1.0" encoding="utf-8"?><c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:prop><d:getetag/><c:calendar-data/></d:prop>"#,
    );
    for href in hrefs {
        body.push_str("<d:href>");
        body.push_str(&escape(href));
        body.push_str("</d:href>");
    }
    body.push_str("</c:calendar-multiget>");
    body
}

/// `PROPFIND` (Depth 1) body listing a collection's objects with their etags.
pub const PROPFIND_ETAGS: &str = r#"<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/><d:resourcetype/></d:prop></d:propfind>"#;

/// `PROPFIND` (Depth 0) body asking a collection's change markers.
pub const PROPFIND_CTAG: &str = r#"<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:" xmlns:cs="http://calendarserver.org/ns/"><d:prop><cs:getctag/><d:sync-token/><d:resourcetype/></d:prop></d:propfind>"#;

fn is(node: &Node, ns: &str, name: &str) -> bool {
    node.is_element() && node.tag_name().name() == name && node.tag_name().namespace() == Some(ns)
}

fn child<'a, 'i>(node: &Node<'a, 'i>, ns: &str, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| is(c, ns, name))
}

fn text(node: &Node) -> String {
    node.descendants()
        .filter(|n| n.is_text())
        .filter_map(|n| n.text())
        .collect::<String>()
        .trim()
        .to_owned()
}

/// `HTTP/1.1 404 Not Found` → 404.
fn status_code(line: &str) -> u16 {
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// Parses a `207 Multi-Status` body.
pub fn parse(body: &[u8]) -> Result<Multistatus, String> {
    let text_body = std::str::from_utf8(body).map_err(|_| "the answer is not UTF-8".to_owned())?;
    let doc = Document::parse(text_body).map_err(|e| format!("invalid XML: {e}"))?;
    let root = doc.root_element();
    if !is(&root, DAV, "multistatus") {
        return Err("the answer is not a DAV multistatus".into());
    }
    let mut out = Multistatus {
        sync_token: child(&root, DAV, "sync-token").map(|n| text(&n)),
        ..Multistatus::default()
    };
    for response in root.children().filter(|c| is(c, DAV, "response")) {
        let Some(href) = child(&response, DAV, "href").map(|n| text(&n)) else {
            continue;
        };
        let mut entry = Entry {
            href,
            status: child(&response, DAV, "status").map_or(0, |n| status_code(&text(&n))),
            ..Entry::default()
        };
        for propstat in response.children().filter(|c| is(c, DAV, "propstat")) {
            let status = child(&propstat, DAV, "status").map_or(0, |n| status_code(&text(&n)));
            if entry.status == 0 {
                entry.status = status;
            }
            if status != 200 {
                continue;
            }
            entry.status = 200;
            let Some(prop) = child(&propstat, DAV, "prop") else {
                continue;
            };
            for p in prop.children().filter(Node::is_element) {
                if is(&p, DAV, "getetag") {
                    entry.etag = Some(text(&p)).filter(|t| !t.is_empty());
                } else if is(&p, CALDAV, "calendar-data") {
                    entry.calendar_data = Some(text(&p)).filter(|t| !t.is_empty());
                } else if is(&p, CS, "getctag") {
                    out.ctag = Some(text(&p)).filter(|t| !t.is_empty());
                } else if is(&p, DAV, "sync-token") && out.sync_token.is_none() {
                    out.sync_token = Some(text(&p)).filter(|t| !t.is_empty());
                } else if is(&p, DAV, "resourcetype") {
                    entry.collection = child(&p, DAV, "collection").is_some();
                }
            }
        }
        out.entries.push(entry);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_sync_answer_with_changes_and_removals() {
        let body = br#"<?xml version='1.0' encoding='utf-8'?>
<multistatus xmlns="DAV:"><sync-token>http://x/sync/2</sync-token>
<response><href>/alice/cal/e1.ics</href><propstat><prop><getetag>"abc"</getetag></prop><status>HTTP/1.1 200 OK</status></propstat></response>
<response><href>/alice/cal/gone.ics</href><status>HTTP/1.1 404 Not Found</status></response>
</multistatus>"#;
        let parsed = parse(body).unwrap();
        assert_eq!(parsed.sync_token.as_deref(), Some("http://x/sync/2"));
        assert_eq!(parsed.entries.len(), 2);
        assert_eq!(parsed.entries[0].etag.as_deref(), Some("\"abc\""));
        assert_eq!(parsed.entries[0].status, 200);
        assert_eq!(parsed.entries[1].status, 404);
        assert_eq!(parsed.entries[1].href, "/alice/cal/gone.ics");
    }

    #[test]
    fn reads_calendar_data_and_ctag_under_any_prefix() {
        let body = br#"<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CS="http://calendarserver.org/ns/">
<D:response><D:href>/c/</D:href><D:propstat><D:prop><CS:getctag>"7"</CS:getctag><D:resourcetype><D:collection/><C:calendar/></D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>
<D:response><D:href>/c/a.ics</D:href><D:propstat><D:prop><D:getetag>"1"</D:getetag><C:calendar-data>BEGIN:VCALENDAR&#13;
END:VCALENDAR</C:calendar-data></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>
</D:multistatus>"#;
        let parsed = parse(body).unwrap();
        assert_eq!(parsed.ctag.as_deref(), Some("\"7\""));
        assert!(parsed.entries[0].collection);
        assert!(
            parsed.entries[1]
                .calendar_data
                .as_deref()
                .unwrap()
                .starts_with("BEGIN:VCALENDAR")
        );
        assert!(parse(b"<html/>").is_err());
    }

    #[test]
    fn request_bodies_escape_what_they_embed() {
        assert!(sync_collection(Some("a<b")).contains("a&lt;b"));
        assert!(multiget(&["/c/a&b.ics".into()]).contains("/c/a&amp;b.ics"));
    }
}
