//! Writing through to the CalDAV server, the server's ETag as the guard:
//! a new object is `PUT` with `If-None-Match: *`, a change with `If-Match`
//! (the etag Meridian stored), a removal is a `DELETE` with `If-Match`. A
//! `412` means the object changed on the server since: the server's current
//! version is fetched and handed back, so the caller can store it and answer
//! 409 with both versions.

use super::bridge::{Bridge, Call, Remote, RemoteError};
use crate::error::ApiError;

/// The server's current version of an object.
pub struct Current {
    pub ics: String,
    pub etag: String,
}

pub enum Outcome {
    /// Written; the object's new etag.
    Written(String),
    /// Removed (or already gone).
    Removed,
    /// Changed on the server meanwhile: its version now (`None`: gone).
    Conflict(Option<Current>),
}

fn server_error(err: RemoteError) -> ApiError {
    match err {
        RemoteError::Unauthorized(_) => {
            ApiError::CalendarServer("the server refused the account's credentials".into())
        }
        other => ApiError::CalendarServer(other.to_string()),
    }
}

async fn send(
    bridge: &Bridge,
    remote: &Remote,
    call: Call<'_>,
) -> Result<crate::outbound::Response, ApiError> {
    bridge.send(remote, call).await.map_err(server_error)
}

/// The object at `href` as the server has it now.
pub async fn fetch(
    bridge: &Bridge,
    remote: &Remote,
    href: &str,
) -> Result<Option<Current>, ApiError> {
    let call = Call {
        method: "GET",
        path: href,
        depth: None,
        headers: Vec::new(),
        content_type: "",
        body: b"",
    };
    let response = send(bridge, remote, call).await?;
    match response.status {
        200 => Ok(Some(Current {
            ics: String::from_utf8_lossy(&response.body).into_owned(),
            etag: response
                .etag
                .ok_or_else(|| ApiError::CalendarServer("the server sent no ETag".into()))?,
        })),
        404 | 410 => Ok(None),
        status => Err(ApiError::CalendarServer(format!(
            "GET answered HTTP {status}"
        ))),
    }
}

/// `PUT`s `ics` at `href`: new (`if_match` None: only if nothing is there) or
/// replacing the version `if_match`.
pub async fn put(
    bridge: &Bridge,
    remote: &Remote,
    href: &str,
    ics: &str,
    if_match: Option<&str>,
) -> Result<Outcome, ApiError> {
    let guard = match if_match {
        Some(etag) => ("If-Match", etag.to_owned()),
        None => ("If-None-Match", "*".to_owned()),
    };
    let call = Call {
        method: "PUT",
        path: href,
        depth: None,
        headers: vec![guard],
        content_type: "text/calendar; charset=utf-8",
        body: ics.as_bytes(),
    };
    let response = send(bridge, remote, call).await?;
    match response.status {
        200 | 201 | 204 => match response.etag {
            Some(etag) => Ok(Outcome::Written(etag)),
            // Some servers change what they store and send no ETag: read it back.
            None => match fetch(bridge, remote, href).await? {
                Some(current) => Ok(Outcome::Written(current.etag)),
                None => Err(ApiError::CalendarServer(
                    "the written object is gone".into(),
                )),
            },
        },
        412 => Ok(Outcome::Conflict(fetch(bridge, remote, href).await?)),
        status => Err(ApiError::CalendarServer(format!(
            "PUT answered HTTP {status}"
        ))),
    }
}

/// `DELETE`s the version `if_match` of `href`.
pub async fn delete(
    bridge: &Bridge,
    remote: &Remote,
    href: &str,
    if_match: &str,
) -> Result<Outcome, ApiError> {
    let call = Call {
        method: "DELETE",
        path: href,
        depth: None,
        headers: vec![("If-Match", if_match.to_owned())],
        content_type: "",
        body: b"",
    };
    let response = send(bridge, remote, call).await?;
    match response.status {
        200 | 204 | 404 | 410 => Ok(Outcome::Removed),
        412 => Ok(Outcome::Conflict(fetch(bridge, remote, href).await?)),
        status => Err(ApiError::CalendarServer(format!(
            "DELETE answered HTTP {status}"
        ))),
    }
}
