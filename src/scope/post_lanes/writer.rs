//! A lane's writer: a task of its own that takes the waiting posts of one
//! tenant in batches (`PostLanes::next_batch`) and writes each batch in one
//! transaction (`store::post_batch`), then answers every post of it.

use std::collections::HashSet;

use actix_web::web;

use super::{Outcome, Queued, Unavailable};
use crate::db::{TokenCheck, TxMode};
use crate::error::ApiError;
use crate::ids::TenantId;
use crate::limits::{RequestClass, storage};
use crate::state::AppState;
use crate::store::post_batch::{self, BatchPost};

/// A writer of `tenant`'s lane: batches until the queue is empty.
pub(super) async fn write_lane(state: web::Data<AppState>, tenant: TenantId) {
    let mut writer = Writer {
        state: state.clone(),
        tenant,
        stopped: false,
    };
    loop {
        let mut batch = state.post_lanes.next_batch(tenant);
        if batch.len() <= 1 {
            // Empty: `next_batch` has taken this writer off the lane. One post:
            // its request posts it on the single post's path (cheaper than a
            // batch of one) and takes over this writer's turn, so two writers
            // of a tenant that alternate never pay the batch statement.
            writer.stopped = true;
            if let Some(queued) = batch.pop()
                && let Err(Outcome::First(_)) = queued.reply.send(Outcome::First(queued.post))
            {
                // Its request has gone: the turn ends here.
                state.post_lanes.end_turn(&state, tenant);
            }
            return;
        }
        write_batch(&state, tenant, batch).await;
    }
}

/// A running writer, taken off its lane should its task end early.
struct Writer {
    state: web::Data<AppState>,
    tenant: TenantId,
    stopped: bool,
}

impl Drop for Writer {
    fn drop(&mut self) {
        if !self.stopped {
            self.state.post_lanes.abandon(self.tenant);
        }
    }
}

/// How a batch's transaction failed, as far as the writer can tell.
#[derive(Clone, Copy)]
enum Failure {
    /// Not known to have aborted before COMMIT: the posts may be written.
    Unknown,
    /// The shard's grant could not hold the batch (nothing written).
    GrantShort,
    /// Aborted (the database answered the statement with an error) or refused
    /// over the quota as a whole: nothing written; each post decides alone.
    NothingWritten,
}

async fn write_batch(state: &web::Data<AppState>, tenant: TenantId, batch: Vec<Queued>) {
    let lanes = &state.post_lanes;
    let key = batch[0].key.clone();
    let (posts, replies): (Vec<BatchPost>, Vec<_>) =
        batch.into_iter().map(|q| (q.post, q.reply)).unzip();
    lanes.sizes.observe(posts.len() as f64);
    let total: u64 = posts.iter().map(|p| p.message.body.len() as u64).sum();
    let timeout = RequestClass::Write.statement_timeout(&state.limits.cost);
    // First as one statement charging the shard's grant; when that grant is
    // short, again after taking a grant for the whole batch from the central
    // row in the same transaction (the single post's slow path, `storage`).
    let mut reserve = false;
    let written = loop {
        let failure = std::cell::Cell::new(Failure::Unknown);
        let result = state
            .db
            .0
            .tenant_tx_timed(
                tenant,
                &key.home_region,
                Some(TokenCheck::RowsGuarded),
                Some(timeout),
                TxMode::ReadWrite,
                async |tx| {
                    failure.set(Failure::Unknown);
                    if reserve
                        && let Err(over) = storage::reserve_storage(tx, total, key.cap).await?
                    {
                        // Some of the posts may still fit: each is decided alone.
                        failure.set(Failure::NothingWritten);
                        return Err(over.into());
                    }
                    post_batch::post_batch(tx, &posts, key.cap)
                        .await
                        .map_err(|err| {
                            failure.set(match err {
                                _ if post_batch::grant_short(&err) => Failure::GrantShort,
                                _ if err.answered_by_database() => Failure::NothingWritten,
                                _ => Failure::Unknown,
                            });
                            ApiError::from(err)
                        })
                },
            )
            .await;
        let unavailable = match &result {
            Err(ApiError::RetryExhausted) => Some(Unavailable::RetryExhausted),
            Err(ApiError::StatementTimeout) => Some(Unavailable::StatementTimeout),
            _ => None,
        };
        if let Some(why) = unavailable {
            // Answered by the database (SQLSTATE 40001, 57014): nothing committed.
            for reply in replies {
                let _ = reply.send(Outcome::Unavailable(why));
            }
            return;
        }
        match (result, failure.get()) {
            (Ok(ids), _) => break Some(ids.into_iter().collect::<HashSet<_>>()),
            (Err(_), Failure::GrantShort) if !reserve => reserve = true,
            (Err(_), Failure::GrantShort | Failure::NothingWritten) => break None,
            (Err(err), Failure::Unknown) => {
                tracing::error!(error = ?err, posts = posts.len(), "a batch of posts failed");
                for reply in replies {
                    let _ = reply.send(Outcome::Failed);
                }
                return;
            }
        }
    };
    for (post, reply) in posts.into_iter().zip(replies) {
        let outcome = match &written {
            Some(ids) if ids.contains(post.message.id.as_uuid()) => Outcome::Posted(post),
            _ => {
                lanes.handed_back.inc();
                Outcome::OnItsOwn(post)
            }
        };
        let _ = reply.send(outcome);
    }
}
