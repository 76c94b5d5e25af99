//! Verifies a trail: walks its events in seq order a page at a time (flat
//! memory, one read transaction per page, O(events)), recomputes every link and
//! reports the first broken one (seq, expected vs found) or "intact, N events,
//! head <hash>"; then checks the chain against its head row and the latest signed
//! checkpoint. A trail whose first events were deleted by retention starts from
//! the checkpoint that anchors it (`retention`).

use serde::Serialize;
use utoipa::ToSchema;

use super::chain::{self, Content};
use super::checkpoint::{self, Checkpoint, CheckpointCheck, SignatureCheck};
use super::trail::Source;
use crate::error::ApiError;

/// Rows per page of the walk.
const PAGE: i64 = 1000;
/// Times the walk catches up with a head that moved while it ran.
const HEAD_ROUNDS: usize = 5;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Verification {
    /// `tenant:<id>` or `platform:<region>`.
    pub trail: String,
    pub intact: bool,
    /// "intact, N events, head <hash>", or where and how it is broken.
    pub summary: String,
    /// Events walked (up to the first broken link).
    pub events: i64,
    /// The seq the walk started from (1, or the one after the retention anchor).
    pub first_seq: i64,
    /// The last verified link's hash, hex.
    pub head: String,
    pub broken: Option<BrokenLink>,
    /// A tenant's events written but not yet chained (the sealer links them
    /// within about `audit.seal_interval_ms` of their commit; `audit::seal`).
    /// Always 0 for a platform trail, whose events are chained as they are
    /// written (one there without a seq is a break).
    pub pending: i64,
    /// The latest checkpoint: does its signature verify, and does the chain at
    /// its seq have its hash?
    pub checkpoint: Option<CheckpointCheck>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BrokenLink {
    pub seq: i64,
    pub expected: String,
    pub found: String,
    pub reason: String,
}

/// The chain position of one stored event: its canonical bytes, seq and hash.
pub struct Stored {
    pub seq: Option<i64>,
    pub hash: Option<Vec<u8>>,
    pub canonical: Vec<u8>,
}

pub fn stored(row: &tokio_postgres::Row) -> Stored {
    Stored {
        seq: row.get("seq"),
        hash: row.get("hash"),
        canonical: canonical_of(row),
    }
}

/// The canonical bytes of a stored event row: every reader of rows (the walk,
/// the sealer, the backfill) encodes them here, so they cannot drift apart.
/// The row has the columns of `trail::TENANT.columns` (seq and hash aside).
pub fn canonical_of(row: &tokio_postgres::Row) -> Vec<u8> {
    let details: serde_json::Value = row.get("details");
    let sealed: Option<Vec<u8>> = row.get("sealed");
    chain::canonical(&Content {
        id: row.get("id"),
        created_at: row.get("created_at"),
        actor: row.get("actor"),
        action: row.get("action"),
        tenant: row.get("tenant_id"),
        target_kind: row.get("target_kind"),
        target_id: row.get("target_id"),
        details: &details,
        sealed: sealed.as_deref(),
    })
}

/// Walks `source`'s trail; `signature` checks checkpoint signatures.
pub async fn verify(
    source: &Source<'_>,
    signature: SignatureCheck<'_>,
) -> Result<Verification, ApiError> {
    let sql = source.sql();
    let key = source.key();
    let key_cast = sql.key_cast;
    let (events, key_column) = (sql.events, sql.key_column);
    let bounds = source
        .query(
            &format!(
                "SELECT min(seq), count(*) FILTER (WHERE seq IS NULL) FROM {events} \
                 WHERE {key_column} = {key_cast}"
            ),
            &[&key],
        )
        .await?;
    let (first, unchained) = bounds.first().map_or((None, 0), |r| {
        (r.get::<_, Option<i64>>(0), r.get::<_, i64>(1))
    });
    let latest = checkpoint::latest(source).await?;
    let mut walk = Walk::new(source.name());
    // Where the chain starts: seq 1 from the genesis hash, or after the anchor.
    let start = first.unwrap_or(1).max(1);
    if start > 1 {
        match checkpoint::at(source, start - 1).await? {
            Some(anchor) if !anchor.signature_valid(&source.name(), signature) => {
                walk.fail(
                    start,
                    "a validly signed anchor".into(),
                    format!("the checkpoint at seq {} does not verify", anchor.seq),
                    "the checkpoint the trail starts from is forged",
                );
            }
            Some(anchor) => {
                walk.prev = anchor.hash.clone();
                walk.first_seq = start;
                walk.next_seq = start;
                walk.anchor = Some(anchor);
            }
            None => {
                walk.fail(
                    1,
                    "seq 1".into(),
                    format!("seq {start}"),
                    "the events before this one are missing and no checkpoint anchors the start",
                );
            }
        }
    }
    let mut after = walk.next_seq - 1;
    let page_sql = format!(
        "SELECT {} FROM {events} WHERE {key_column} = {key_cast} AND seq > $2 \
         ORDER BY seq LIMIT $3",
        sql.columns
    );
    let head_sql = format!(
        "SELECT seq, hash FROM {} WHERE {key_column} = {key_cast}",
        sql.heads
    );
    // The head is read after the walk: events chained while it ran (the sealer,
    // or a platform append) moved it on, and are walked too, a few rounds at
    // most; a head behind the walk's end still means events past it.
    let mut head = None;
    for _ in 0..HEAD_ROUNDS {
        while walk.broken.is_none() {
            let rows = source.query(&page_sql, &[&key, &after, &PAGE]).await?;
            for row in &rows {
                walk.step(&stored(row), latest.as_ref());
                if walk.broken.is_some() {
                    break;
                }
            }
            match rows.last() {
                Some(last) => after = last.get("seq"),
                None => break,
            }
            if (rows.len() as i64) < PAGE {
                break;
            }
        }
        head = source
            .query(&head_sql, &[&key])
            .await?
            .first()
            .map(|r| (r.get::<_, i64>(0), r.get::<_, Vec<u8>>(1)));
        match &head {
            Some((seq, _)) if *seq > walk.next_seq - 1 && walk.broken.is_none() => continue,
            _ => break,
        }
    }
    // A tenant's unchained events wait for the sealer; a platform event is
    // chained as it is written, so one without a seq was put outside the chain.
    let (pending, outside) = match source {
        Source::Platform { .. } => (0, unchained),
        _ => (unchained, 0),
    };
    if walk.broken.is_none() {
        walk.finish(head.as_ref(), outside);
    }
    walk.pending = pending;
    let check = latest.map(|c| {
        // A checkpoint at the anchor itself matches what the walk started from.
        let at = match &walk.anchor {
            Some(a) if a.seq == c.seq => Some(a.hash.clone()),
            _ => walk.hash_at_checkpoint.clone(),
        };
        checkpoint::check(&c, &source.name(), at.as_deref(), signature)
    });
    Ok(walk.report(check))
}

/// The state of a walk, shared with the offline verifier (`file`).
pub struct Walk {
    pub trail: String,
    pub prev: Vec<u8>,
    pub next_seq: i64,
    pub first_seq: i64,
    pub events: i64,
    pub broken: Option<BrokenLink>,
    pub anchor: Option<Checkpoint>,
    /// The recomputed hash at the latest checkpoint's seq, once walked past it.
    pub hash_at_checkpoint: Option<Vec<u8>>,
    /// Events not yet chained (`Verification::pending`).
    pub pending: i64,
}

impl Walk {
    pub fn new(trail: String) -> Self {
        Self {
            trail,
            prev: chain::GENESIS.to_vec(),
            next_seq: 1,
            first_seq: 1,
            events: 0,
            broken: None,
            anchor: None,
            hash_at_checkpoint: None,
            pending: 0,
        }
    }

    pub fn fail(&mut self, seq: i64, expected: String, found: String, reason: &str) {
        if self.broken.is_none() {
            self.broken = Some(BrokenLink {
                seq,
                expected,
                found,
                reason: reason.to_owned(),
            });
        }
    }

    /// The next stored event: in place (seq), and linked (hash).
    pub fn step(&mut self, event: &Stored, latest: Option<&Checkpoint>) {
        let expected_seq = self.next_seq;
        match event.seq {
            Some(seq) if seq == expected_seq => {}
            found => {
                let found = found.map_or("no seq".to_owned(), |s| format!("seq {s}"));
                return self.fail(
                    expected_seq,
                    format!("seq {expected_seq}"),
                    found,
                    "an event is missing here (the next stored event has another seq)",
                );
            }
        }
        let hash = chain::link(&self.prev, &event.canonical);
        let stored = event.hash.as_deref().unwrap_or_default();
        if stored != hash {
            return self.fail(
                expected_seq,
                chain::hex(&hash),
                chain::hex(stored),
                "the event's content or place does not match its hash",
            );
        }
        if latest.is_some_and(|c| c.seq == expected_seq) {
            self.hash_at_checkpoint = Some(hash.to_vec());
        }
        self.prev = hash.to_vec();
        self.next_seq += 1;
        self.events += 1;
    }

    /// After the last event: the head row must be where the walk ended, and no
    /// event may sit outside the chain.
    pub fn finish(&mut self, head: Option<&(i64, Vec<u8>)>, unchained: i64) {
        let last = self.next_seq - 1;
        if let Some((seq, hash)) = head {
            if *seq != last {
                self.fail(
                    last + 1,
                    format!("seq {seq} (the head)"),
                    format!("the chain ends at seq {last}"),
                    "events at the end of the trail are missing",
                );
            } else if *seq > 0 && *hash != self.prev {
                self.fail(
                    *seq,
                    chain::hex(hash),
                    chain::hex(&self.prev),
                    "the head row does not match the last event",
                );
            }
        } else if last > 0 {
            self.fail(
                last,
                "a head row".into(),
                "none".into(),
                "the trail's head row is missing",
            );
        }
        if unchained > 0 {
            self.fail(
                last + 1,
                "every event chained".into(),
                format!("{unchained} events without a seq"),
                "events were inserted outside the chain",
            );
        }
    }

    pub fn report(self, checkpoint: Option<CheckpointCheck>) -> Verification {
        let head = chain::hex(&self.prev);
        let summary = match &self.broken {
            None if self.pending > 0 => format!(
                "intact, {} events, head {head}, {} pending",
                self.events, self.pending
            ),
            None => format!("intact, {} events, head {head}", self.events),
            Some(b) => format!(
                "broken at seq {}: expected {}, found {} ({})",
                b.seq, b.expected, b.found, b.reason
            ),
        };
        Verification {
            trail: self.trail,
            intact: self.broken.is_none(),
            summary,
            events: self.events,
            pending: self.pending,
            first_seq: self.first_seq,
            head,
            broken: self.broken,
            checkpoint,
        }
    }
}
