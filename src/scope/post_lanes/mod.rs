//! Post lanes: a tenant's concurrent plaintext posts on this node, written
//! together ("group commit"). A post joins its tenant's queue; while fewer than
//! `database.post_writers_per_tenant` writers run for the tenant, one is
//! started, and each writer takes up to `database.post_batch_max` waiting posts
//! into one transaction (`store::post_batch`), again and again until the queue is
//! empty. No batch waits for a timer to fill: a post that finds its lane idle goes first
//! on its own path (the single post's one statement, `messages::post`), holding
//! the lane's writer slot (`LaneTurn`) so that posts arriving meanwhile gather
//! behind it and are written together after it; while a batch is in flight, the
//! next ones gather behind it in turn. A writer that finds a single post
//! waiting hands it (and the turn) to its request instead: a batch is two posts
//! or more. An idle tenant's post, or one of two writers that alternate, costs
//! what it did without lanes.
//!
//! A lane holds one tenant's posts only: its transaction is opened with that
//! tenant's RLS setting, taken from the verified tokens of the requests that
//! queued them (the lane's key). A writer is a task of its own, not part of any
//! request, so a client that goes away cannot abandon other clients' posts half
//! way. When the writer's usage shard cannot hold the batch, the batch is
//! written again after a grant for all of it is taken from the central row in
//! the same transaction (`storage::reserve_storage`). A post the batch leaves
//! out (a guard refused it), or every post of a batch whose statement failed (the
//! transaction aborted: nothing written) or that is over the quota as a whole,
//! is handed back to its request, which posts it on its own path and answers
//! what that finds. Conflicts past every retry and the statement timeout are
//! answered 503 to each post, as the single post answers them. Any other failure
//! (the connection, COMMIT's outcome) leaves the outcome unknown: the request
//! answers 500 rather than post again.
//!
//! A post waits in its lane at most `database.post_lane_wait_ms` (default 100;
//! a batch takes about a millisecond): past that, a post no writer has taken yet
//! leaves the queue and goes on its own path, so one slow batch (a lock wait, up
//! to the write's statement timeout) delays its tenant's other posts on this
//! node by that bound, not by the batch's time. A post already in a batch waits
//! for the batch's answer: it may be written.
//!
//! The writers bound one tenant's batched posts to that many connections of the
//! pool on this node; posts on their own path take one each, as without lanes
//! (within the tenant's concurrency limit).

mod writer;

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::web;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tokio::sync::oneshot;

use super::TenantScope;
use crate::error::ApiError;
use crate::ids::{RegionId, TenantId};
use crate::limits::RequestClass;
use crate::state::AppState;
use crate::store::messages::Message;
use crate::store::post_batch::BatchPost;
use writer::write_lane;

/// Every tenant's lane on this node (`AppState::post_lanes`).
pub struct PostLanes {
    lanes: Mutex<HashMap<TenantId, Lane>>,
    max_batch: usize,
    writers: usize,
    /// How long a post waits for a writer to take it before it goes on its own.
    wait_bound: Duration,
    /// Names each queued post, so that one past `wait_bound` can leave.
    next_ticket: AtomicU64,
    /// Posts per batch written, for `/metrics`.
    sizes: Histogram,
    /// Posts handed back to their own path.
    handed_back: Counter,
    /// Posts that left their lane past `wait_bound`, for their own path.
    left: Counter,
    /// Posts waiting in a lane for their batch.
    waiting: Gauge,
}

#[derive(Default)]
struct Lane {
    queue: VecDeque<Queued>,
    writers: usize,
}

struct Queued {
    ticket: u64,
    post: BatchPost,
    key: BatchKey,
    reply: oneshot::Sender<Outcome>,
}

/// What the posts of one batch share besides their tenant: the region their rows
/// are homed in and the quota cap their shard's grant must have been taken under
/// (both from the directory as each request saw it).
#[derive(Clone, PartialEq, Eq)]
struct BatchKey {
    home_region: RegionId,
    cap: u64,
}

/// How a coalesced post ended.
pub enum Coalesced {
    /// Written and committed.
    Posted(Message),
    /// Not written by a batch: post it on its own path (`messages::post`). With a
    /// turn, the lane was idle: the post goes first and holds the lane's writer
    /// slot until the turn is dropped (after the post), so posts arriving
    /// meanwhile wait and are then written together.
    OnItsOwn(Message, Option<LaneTurn>),
}

/// A post's turn at an idle lane (`Coalesced::OnItsOwn`): dropping it hands the
/// lane to a writer for the posts that queued meanwhile, or leaves it idle.
/// Dropped on an actix worker (the handler's), where a writer can be spawned.
pub struct LaneTurn {
    state: web::Data<AppState>,
    tenant: TenantId,
}

impl Drop for LaneTurn {
    fn drop(&mut self) {
        self.state.post_lanes.end_turn(&self.state, self.tenant);
    }
}

enum Outcome {
    Posted(BatchPost),
    OnItsOwn(BatchPost),
    /// The lane was idle, or this post was the only one waiting when its
    /// writer looked: it goes on its own path, holding the lane's writer slot.
    First(BatchPost),
    /// Nothing written, and the single post would have failed the same way:
    /// conflicts past every retry, or the statement's timeout (503 either way).
    Unavailable(Unavailable),
    Failed,
}

#[derive(Clone, Copy)]
enum Unavailable {
    RetryExhausted,
    StatementTimeout,
}

impl PostLanes {
    /// `max_batch` 0: no lanes, every post on its own path.
    pub fn new(max_batch: usize, writers: usize, wait_bound: Duration) -> Self {
        Self {
            lanes: Mutex::default(),
            max_batch,
            writers: writers.max(1),
            wait_bound,
            next_ticket: AtomicU64::new(0),
            sizes: Histogram::new(exponential_buckets(1.0, 2.0, 8)),
            handed_back: Counter::default(),
            left: Counter::default(),
            waiting: Gauge::default(),
        }
    }

    /// Batch sizes, posts handed back, posts that left their lane and posts
    /// waiting, for the node's registry.
    pub fn instruments(&self) -> (Histogram, Counter, Counter, Gauge) {
        (
            self.sizes.clone(),
            self.handed_back.clone(),
            self.left.clone(),
            self.waiting.clone(),
        )
    }

    async fn submit(
        &self,
        state: &web::Data<AppState>,
        tenant: TenantId,
        post: BatchPost,
        key: BatchKey,
    ) -> Outcome {
        let (ticket, start, mut answer) = {
            let Ok(mut lanes) = self.lanes.lock() else {
                return Outcome::OnItsOwn(post);
            };
            let lane = lanes.entry(tenant).or_default();
            if lane.writers == 0 && lane.queue.is_empty() {
                lane.writers = 1;
                return Outcome::First(post);
            }
            // Only a queued post needs a reply channel and a name (to leave by).
            let (reply, answer) = oneshot::channel();
            let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
            lane.queue.push_back(Queued {
                ticket,
                post,
                key,
                reply,
            });
            self.waiting.inc();
            let start = lane.writers < self.writers;
            if start {
                lane.writers += 1;
            }
            (ticket, start, answer)
        };
        if start {
            actix_web::rt::spawn(write_lane(state.clone(), tenant));
        }
        // A dropped sender: the writer stopped (shutdown) before answering.
        match actix_web::rt::time::timeout(self.wait_bound, &mut answer).await {
            Ok(outcome) => outcome.unwrap_or(Outcome::Failed),
            Err(_) => match self.leave(tenant, ticket) {
                Some(post) => {
                    self.left.inc();
                    Outcome::OnItsOwn(post)
                }
                // A writer has taken it: its batch decides.
                None => answer.await.unwrap_or(Outcome::Failed),
            },
        }
    }

    /// Takes the post `ticket` out of `tenant`'s queue if no writer has taken it
    /// yet. The lane keeps its writers: they find the queue without it.
    fn leave(&self, tenant: TenantId, ticket: u64) -> Option<BatchPost> {
        let mut lanes = self.lanes.lock().ok()?;
        let queue = &mut lanes.get_mut(&tenant)?.queue;
        let at = queue.iter().position(|q| q.ticket == ticket)?;
        let queued = queue.remove(at)?;
        self.waiting.dec();
        Some(queued.post)
    }

    /// The end of a first post's turn (`LaneTurn`): the posts that queued behind
    /// it get a writer, which takes over the turn's slot; none, and the lane is
    /// idle again.
    fn end_turn(&self, state: &web::Data<AppState>, tenant: TenantId) {
        let hand_over = {
            let Ok(mut lanes) = self.lanes.lock() else {
                return;
            };
            let waiting = lanes.get(&tenant).is_some_and(|l| !l.queue.is_empty());
            if !waiting {
                self.release_writer(&mut lanes, tenant);
            }
            waiting
        };
        if hand_over {
            actix_web::rt::spawn(write_lane(state.clone(), tenant));
        }
    }

    /// A writer of `tenant`'s lane ended without emptying it (its task was
    /// dropped): when it was the last, the waiting posts are answered as failed
    /// (their senders dropped) rather than left waiting for no writer.
    fn abandon(&self, tenant: TenantId) {
        if let Ok(mut lanes) = self.lanes.lock() {
            self.release_writer(&mut lanes, tenant);
        }
    }

    /// Takes a writer off `tenant`'s lane; with none left the lane goes, and any
    /// posts still in it are dropped (their requests answer as failed).
    fn release_writer(&self, lanes: &mut HashMap<TenantId, Lane>, tenant: TenantId) {
        if let Some(lane) = lanes.get_mut(&tenant) {
            lane.writers = lane.writers.saturating_sub(1);
            if lane.writers == 0
                && let Some(lane) = lanes.remove(&tenant)
            {
                self.waiting.dec_by(lane.queue.len() as i64);
            }
        }
    }

    /// The next batch of `tenant`'s lane: the oldest post and the waiting posts
    /// with its key, up to `max_batch`, oldest first; the others keep their
    /// places. Empty: the lane is idle and this writer has stopped.
    fn next_batch(&self, tenant: TenantId) -> Vec<Queued> {
        let Ok(mut lanes) = self.lanes.lock() else {
            return Vec::new();
        };
        let Some(lane) = lanes.get_mut(&tenant) else {
            return Vec::new();
        };
        let Some(key) = lane.queue.front().map(|q| q.key.clone()) else {
            self.release_writer(&mut lanes, tenant);
            return Vec::new();
        };
        let mut batch = Vec::new();
        let mut others = VecDeque::new();
        while let Some(queued) = lane.queue.pop_front() {
            if batch.len() < self.max_batch && queued.key == key {
                batch.push(queued);
            } else {
                others.push_back(queued);
            }
        }
        lane.queue = others;
        self.waiting.dec_by(batch.len() as i64);
        batch
    }
}

impl TenantScope {
    /// Posts `message` (plaintext, by the token's user) through the tenant's lane:
    /// `OnItsOwn` when lanes are off, under an impersonation (whose writes audit
    /// themselves one by one), or when the batch did not write it.
    pub async fn post_coalesced(
        &self,
        message: Message,
        storage_cap: u64,
    ) -> Result<Coalesced, ApiError> {
        let lanes = &self.state.post_lanes;
        if lanes.max_batch == 0 || self.impersonation.is_some() || message.author_id != self.user {
            return Ok(Coalesced::OnItsOwn(message, None));
        }
        self.occupy_slot(RequestClass::Write).await?;
        let post = BatchPost {
            message,
            role: self.role.as_str(),
        };
        let key = BatchKey {
            home_region: self.tenant.home_region.clone(),
            cap: storage_cap,
        };
        match lanes.submit(&self.state, self.tenant.id, post, key).await {
            Outcome::Posted(post) => {
                // The statement checked this post's author: active, with this role.
                self.check.confirm();
                Ok(Coalesced::Posted(post.message))
            }
            Outcome::OnItsOwn(post) => Ok(Coalesced::OnItsOwn(post.message, None)),
            Outcome::First(post) => Ok(Coalesced::OnItsOwn(
                post.message,
                Some(LaneTurn {
                    state: self.state.clone(),
                    tenant: self.tenant.id,
                }),
            )),
            Outcome::Unavailable(Unavailable::RetryExhausted) => Err(ApiError::RetryExhausted),
            Outcome::Unavailable(Unavailable::StatementTimeout) => {
                self.state.limits.count_timeout(&self.tenant);
                Err(ApiError::StatementTimeout)
            }
            Outcome::Failed => Err(ApiError::internal(anyhow::anyhow!(
                "the post's batch failed or its writer stopped (a failure is logged by the writer)"
            ))),
        }
    }
}
