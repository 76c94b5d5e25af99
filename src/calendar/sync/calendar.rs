//! One calendar's sync (see the parent module): the RFC 6578 delta, else the
//! ctag/etag comparison, then the multiget batches and the removals.

use std::collections::HashSet;
use std::sync::Arc;

use super::{Counts, SyncError};
use crate::calendar::bridge::{Bridge, Call, Remote, RemoteError};
use crate::calendar::store::{self, Position};
use crate::calendar::{Calendars, dav, ical};
use crate::db::TxMode;
use crate::error::ApiError;
use crate::ids::{RegionId, TenantId};

const XML: &str = "application/xml; charset=utf-8";

/// One account's sync: the tenant, its bridge and the account's server.
pub(super) struct Tenant<'a> {
    pub(super) cal: &'a Calendars,
    pub(super) id: TenantId,
    pub(super) home: &'a RegionId,
    pub(super) bridge: Arc<Bridge>,
    pub(super) remote: Arc<Remote>,
}

impl Tenant<'_> {
    async fn tx<T>(
        &self,
        body: impl AsyncFnMut(&crate::db::TenantTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, SyncError> {
        Ok(self
            .cal
            .db
            .tenant_tx(self.id, self.home, None, TxMode::ReadWrite, body)
            .await?)
    }

    async fn report(
        &self,
        path: &str,
        depth: &'static str,
        body: &str,
    ) -> Result<dav::Multistatus, SyncError> {
        self.dav("REPORT", path, depth, body).await
    }

    pub(super) async fn dav(
        &self,
        method: &'static str,
        path: &str,
        depth: &'static str,
        body: &str,
    ) -> Result<dav::Multistatus, SyncError> {
        let response = self
            .bridge
            .send(
                &self.remote,
                Call {
                    method,
                    path,
                    depth: Some(depth),
                    headers: Vec::new(),
                    content_type: XML,
                    body: body.as_bytes(),
                },
            )
            .await?;
        if response.status != 207 {
            return Err(RemoteError::Status(response.status).into());
        }
        dav::parse(&response.body).map_err(|e| RemoteError::Invalid(e).into())
    }

    /// The changes since `position` by RFC 6578, or `None` when the server
    /// does not do sync-collection. (changed hrefs with etags, removed hrefs,
    /// new token, whether the listing was complete.)
    async fn by_token(&self, position: &Position) -> Result<Option<Delta>, SyncError> {
        let mut token = position.sync_token.clone();
        loop {
            let body = dav::sync_collection(token.as_deref());
            let answer = self
                .bridge
                .send(
                    &self.remote,
                    Call {
                        method: "REPORT",
                        path: &position.path,
                        depth: Some("1"),
                        headers: Vec::new(),
                        content_type: XML,
                        body: body.as_bytes(),
                    },
                )
                .await?;
            match answer.status {
                207 => {
                    let parsed = dav::parse(&answer.body).map_err(RemoteError::Invalid)?;
                    return Ok(Some(Delta::from_sync(
                        parsed,
                        &position.path,
                        token.is_none(),
                    )));
                }
                // An expired or unknown token (RFC 6578 §3.2: valid-sync-token):
                // start over with the whole collection.
                403 | 409
                    if token.is_some()
                        && String::from_utf8_lossy(&answer.body).contains("valid-sync-token") =>
                {
                    token = None;
                }
                400 | 403 | 405 | 501 => return Ok(None),
                status => return Err(RemoteError::Status(status).into()),
            }
        }
    }

    /// The changes by ctag, then etag comparison with what is stored.
    async fn by_etags(&self, position: &Position) -> Result<Option<Delta>, SyncError> {
        let marker = self
            .dav("PROPFIND", &position.path, "0", dav::PROPFIND_CTAG)
            .await?;
        if marker.ctag.is_some() && marker.ctag == position.ctag {
            return Ok(None);
        }
        let listing = self
            .dav("PROPFIND", &position.path, "1", dav::PROPFIND_ETAGS)
            .await?;
        let id = position.id;
        let stored = self.tx(async |tx| Ok(store::etags(tx, id).await?)).await?;
        let mut delta = Delta {
            ctag: marker.ctag,
            ..Delta::default()
        };
        let mut listed = HashSet::new();
        for entry in listing
            .entries
            .into_iter()
            .filter(|e| !e.collection && e.status == 200)
        {
            listed.insert(entry.href.clone());
            if let Some(etag) = entry.etag
                && stored.get(&entry.href) != Some(&etag)
            {
                delta.changed.push((entry.href, etag));
            }
        }
        delta.removed = stored.into_keys().filter(|h| !listed.contains(h)).collect();
        Ok(Some(delta))
    }

    pub(super) async fn calendar(&self, position: &Position) -> Result<Counts, SyncError> {
        let delta = match self.by_token(position).await? {
            Some(delta) => Some(delta),
            None => self.by_etags(position).await?,
        };
        let Some(mut delta) = delta else {
            return Ok(Counts::default());
        };
        let id = position.id;
        let stored = self.tx(async |tx| Ok(store::etags(tx, id).await?)).await?;
        if delta.complete {
            let listed: HashSet<&String> = delta.changed.iter().map(|(h, _)| h).collect();
            delta
                .removed
                .extend(stored.keys().filter(|h| !listed.contains(h)).cloned());
        }
        // Objects already stored with that etag (our own write-through) need no fetch.
        delta
            .changed
            .retain(|(href, etag)| stored.get(href) != Some(etag));
        let mut counts = Counts::default();
        let hrefs: Vec<String> = delta.changed.into_iter().map(|(h, _)| h).collect();
        for batch in hrefs.chunks(self.cal.settings.multiget_batch.max(1)) {
            let answer = self
                .report(&position.path, "1", &dav::multiget(batch))
                .await?;
            let mut objects = Vec::new();
            for entry in answer.entries {
                let (Some(etag), Some(ics)) = (entry.etag, entry.calendar_data) else {
                    continue;
                };
                match ical::parse(&ics) {
                    Ok(parsed) => objects.push((entry.href, etag, ics, parsed)),
                    Err(why) => {
                        tracing::warn!(tenant = %self.id, href = %entry.href, %why, "calendar object skipped");
                        counts.skipped += 1;
                    }
                }
            }
            counts.fetched += objects.len();
            self.tx(async |tx| {
                for (href, etag, ics, parsed) in &objects {
                    store::upsert_event(tx, id, href, etag, ics, parsed).await?;
                }
                Ok(())
            })
            .await?;
        }
        let (token, ctag) = (delta.token, delta.ctag);
        counts.removed = self
            .tx(async |tx| {
                let mut removed = 0;
                for href in &delta.removed {
                    removed += store::delete_href(tx, id, href).await?;
                }
                store::set_position(tx, id, token.as_deref(), ctag.as_deref()).await?;
                Ok(removed)
            })
            .await?
            .try_into()
            .unwrap_or(usize::MAX);
        Ok(counts)
    }
}

#[derive(Default)]
struct Delta {
    changed: Vec<(String, String)>,
    removed: Vec<String>,
    token: Option<String>,
    ctag: Option<String>,
    /// The answer listed the whole collection: what it did not list is gone.
    complete: bool,
}

impl Delta {
    fn from_sync(parsed: dav::Multistatus, collection: &str, complete: bool) -> Self {
        let mut delta = Delta {
            token: parsed.sync_token,
            complete,
            ..Delta::default()
        };
        for entry in parsed.entries {
            if entry.collection || entry.href == collection {
                continue;
            }
            match (entry.status, entry.etag) {
                (404, _) => delta.removed.push(entry.href),
                (200, Some(etag)) => delta.changed.push((entry.href, etag)),
                _ => {}
            }
        }
        delta
    }
}
