//! Transactions: SERIALIZABLE, retried on SQLSTATE 40001/40P01, and tenant-scoped.
//!
//! A tenant transaction opens with one pipelined prologue — `BEGIN`, the RLS
//! setting `app.tenant_id` and the caller's user status (prepared statements) —
//! sent together with the body's first statement; a read-only transaction sends
//! its COMMIT right behind that statement too (`EagerCommit`), so a one-query read
//! costs one round trip, and a read that needs more statements is re-run with
//! COMMIT after the body. Should the prologue fail, the body's statement ran
//! without the RLS setting and therefore saw and wrote nothing: the wall fails
//! closed.
//!
//! A read-write transaction of a user's token may send its COMMIT with the
//! body's last statements (`Tx::execute_and_commit`), once the prologue has
//! answered and found the user valid; or with a body whose first statement
//! refuses an invalid user itself (`Tx::execute_guarded_and_commit`), before any
//! answer: a post is then one round trip. Such a body may also stand in for the
//! prologue's check (`TokenCheck::UserGuardedByWrite`): the user is then checked
//! once per post, by the write, instead of twice.
//!
//! Retries restart the whole transaction (PostgreSQL cannot resume a serializable
//! transaction after 40001); COMMIT is inside the loop because it can fail with
//! 40001 too. A transaction abandoned half-way (the client went away) detaches its
//! connection from the pool so an open transaction is never reused.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::Object;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::dialect::Statements;
use super::{Database, DbError};
use crate::error::ApiError;
use crate::ids::{ImpersonationId, RegionId, TenantId, UserId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxMode {
    ReadOnly,
    ReadWrite,
    /// READ COMMITTED, read-write: only for statements whose correctness rests
    /// on row locks and re-checked predicates rather than on SERIALIZABLE (job
    /// claims and finishes: docs/jobs.md, "Draining one tenant's flood"), where
    /// SERIALIZABLE aborts one tenant's concurrent workers several times per job.
    ReadCommitted,
}

/// A transaction handle. `S` says what it is scoped to: `TenantBound` or `Platform`.
pub struct Tx<'a, S> {
    client: &'a deadpool_postgres::ClientWrapper,
    retry: &'a AtomicBool,
    eager: &'a EagerCommit,
    statements: &'static Statements,
    /// The storage-usage shard this transaction charges (`super::shards`).
    usage_shard: u16,
    scope: S,
}

#[derive(Clone, Debug)]
pub struct TenantBound {
    tenant: TenantId,
    home_region: RegionId,
    /// What the prologue checks (`None`: nothing, e.g. a platform transaction
    /// that entered a tenant).
    check: Option<TokenCheck>,
}

#[derive(Clone, Debug)]
pub struct Platform {
    /// The node's region (`Database::in_region`): whose platform audit trail an
    /// event about no tenant joins.
    region: Option<RegionId>,
}

pub type TenantTx<'a> = Tx<'a, TenantBound>;
pub type PlatformTx<'a> = Tx<'a, Platform>;

impl<S> Tx<'_, S> {
    /// The statements that differ between PostgreSQL and CockroachDB, for the
    /// configured dialect.
    pub fn statements(&self) -> &'static Statements {
        self.statements
    }

    /// The storage-usage shard this transaction charges: held by no other write
    /// transaction of this node (see `db::shards`).
    pub fn usage_shard(&self) -> u16 {
        self.usage_shard
    }

    fn classify(&self, err: tokio_postgres::Error) -> DbError {
        if DbError::is_retryable(&err) {
            self.retry.store(true, Ordering::Relaxed);
        }
        DbError::from(err)
    }

    async fn prepared(&self, sql: &str) -> Result<tokio_postgres::Statement, DbError> {
        self.client
            .prepare_cached(sql)
            .await
            .map_err(|e| self.classify(e))
    }

    /// Sends one statement; in a read-only transaction the first one takes the
    /// COMMIT along in the same round trip (`EagerCommit`).
    async fn send<T>(
        &self,
        statement: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, DbError> {
        match self.eager.next_statement() {
            Turn::Plain => statement.await.map_err(|e| self.classify(e)),
            Turn::FirstOfEager => {
                let (result, committed) =
                    futures_util::join!(statement, self.client.batch_execute("COMMIT"));
                self.eager.committed(committed);
                result.map_err(|e| self.classify(e))
            }
            Turn::AfterEagerCommit => Err(DbError::Other(anyhow::anyhow!(
                "a second statement after an eager COMMIT (the body is re-run)"
            ))),
            Turn::AfterClose => Err(DbError::Other(anyhow::anyhow!(
                "a statement after the body's COMMIT (`execute_and_commit` must be last)"
            ))),
        }
    }

    /// The body's last statements, with COMMIT behind them in the same round trip,
    /// when this is a read-write transaction of a user's token whose prologue has
    /// already answered that the user is valid (`EagerCommit::may_close`): a COMMIT
    /// must never leave before that answer, or a refused user's write would
    /// commit. Otherwise (an impersonation's token, whose write records itself
    /// after the body; a platform transaction) the statements are sent as usual,
    /// still together, and COMMIT follows the body. After an early COMMIT nothing
    /// may be sent (an error, never a re-run: the write may have committed). Each
    /// statement is prepared before anything is sent, so COMMIT cannot overtake
    /// one still being prepared; the statements then go out in order on their first
    /// poll, COMMIT last. A failed statement aborts the transaction and the COMMIT
    /// behind it ends it as a ROLLBACK; a COMMIT failing with 40001 is retried by
    /// `run` with the whole body (`tests/api/write_pipeline.rs`).
    pub async fn execute_and_commit(
        &self,
        statements: &[(&str, &[&(dyn ToSql + Sync)])],
    ) -> Result<Vec<u64>, DbError> {
        let mut prepared = Vec::with_capacity(statements.len());
        for (sql, _) in statements {
            prepared.push(self.prepared(sql).await?);
        }
        let executes = futures_util::future::join_all(
            prepared
                .iter()
                .zip(statements)
                .map(|(statement, (_, params))| self.client.execute(statement, params)),
        );
        let results = if self.eager.close() {
            let (results, committed) =
                futures_util::join!(executes, self.client.batch_execute("COMMIT"));
            self.eager.closed(committed);
            results
        } else {
            executes.await
        };
        results
            .into_iter()
            .map(|r| r.map_err(|e| self.classify(e)))
            .collect()
    }

    /// `execute_guarded_and_commit` for one statement whose rows are wanted: a
    /// statement that guards every row it writes by itself (`TokenCheck::RowsGuarded`,
    /// the coalesced posts), with COMMIT behind it in the prologue's round trip.
    /// Nothing may be sent after this.
    pub async fn query_guarded_and_commit(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DbError> {
        let statement = self.prepared(sql).await?;
        let query = self.client.query(&statement, params);
        let rows = if self.eager.close_guarded() {
            let (rows, committed) = futures_util::join!(query, self.client.batch_execute("COMMIT"));
            self.eager.closed(committed);
            rows
        } else {
            query.await
        };
        let rows = rows.map_err(|e| self.classify(e))?;
        self.eager.guard_passed.store(true, Ordering::Release);
        Ok(rows)
    }

    /// The body's statements with COMMIT behind them, all in the round trip of the
    /// prologue, without waiting for its user check: for a read-write transaction
    /// of a user's token whose `first` statement refuses by itself (fails) when
    /// the token's user is not active with the token's role
    /// (`TenantTx::token_user`), e.g. the post's guarded INSERT. The prologue's
    /// check, if it sends one, reads the same row in the same snapshot, so the two
    /// cannot disagree: a refused user's `first` fails, the transaction is aborted,
    /// `rest` is not run and the COMMIT behind it ends the transaction as a
    /// ROLLBACK; the prologue's answer (401) is what `run` returns, or, under
    /// `TokenCheck::UserGuardedByWrite` (no prologue check), the caller answers
    /// `first`'s refusal as `DbError::UserRefused`. `rest` is run only after
    /// `first` succeeded (a failed statement aborts the transaction), so it may
    /// depend on `first` having written. Any other transaction (an impersonation,
    /// whose write records itself after the body; no token) sends the statements
    /// together and COMMIT after the body. Nothing may be sent after this; a
    /// 40001 on any statement or on COMMIT is retried by `run` with the whole body.
    pub async fn execute_guarded_and_commit(
        &self,
        first: (&str, &[&(dyn ToSql + Sync)]),
        rest: &[(&str, &[&(dyn ToSql + Sync)])],
    ) -> Result<(), DbError> {
        let head = self.prepared(first.0).await?;
        let mut prepared = Vec::with_capacity(rest.len());
        for (sql, _) in rest {
            prepared.push(self.prepared(sql).await?);
        }
        let query = self.client.execute(&head, first.1);
        let executes = futures_util::future::join_all(
            prepared
                .iter()
                .zip(rest)
                .map(|(statement, (_, params))| self.client.execute(statement, params)),
        );
        // join! polls in order: the query, the rest, COMMIT go out in that order.
        let (row, results) = if self.eager.close_guarded() {
            let (row, results, committed) =
                futures_util::join!(query, executes, self.client.batch_execute("COMMIT"));
            self.eager.closed(committed);
            (row, results)
        } else {
            futures_util::join!(query, executes)
        };
        // The first failure is the one to answer: the statements behind it only
        // report the aborted transaction.
        row.map_err(|e| self.classify(e))?;
        self.eager.guard_passed.store(true, Ordering::Release);
        for result in results {
            result.map_err(|e| self.classify(e))?;
        }
        Ok(())
    }

    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DbError> {
        let statement = self.prepared(sql).await?;
        self.send(self.client.query(&statement, params)).await
    }

    pub async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, DbError> {
        let statement = self.prepared(sql).await?;
        self.send(self.client.query_opt(&statement, params)).await
    }

    pub async fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, DbError> {
        let statement = self.prepared(sql).await?;
        self.send(self.client.query_one(&statement, params)).await
    }

    pub async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, DbError> {
        let statement = self.prepared(sql).await?;
        self.send(self.client.execute(&statement, params)).await
    }
}

/// One round trip for a one-statement read. A read-only transaction sends its
/// COMMIT right behind its first statement, so BEGIN, the tenant setting, the user
/// check, the statement and COMMIT travel together. That is correct because the
/// statement saw one snapshot inside the transaction (with the RLS setting), and a
/// read-only transaction's COMMIT changes nothing; a failed statement aborts the
/// transaction, and the pipelined COMMIT then ends it as a ROLLBACK. Should the body
/// issue a second statement, that statement is refused (it would run outside the
/// transaction, without the tenant setting) and the whole body is run again the
/// ordinary way, COMMIT after the body: multi-statement reads cost what they did.
struct EagerCommit {
    state: std::sync::Mutex<Eager>,
    /// Set by the prologue when a read-write transaction's user check passed
    /// (a user's token only: an impersonated write records itself after the body).
    may_close: AtomicBool,
    /// A read-write transaction of a user's token: a body whose first statement
    /// checks the user itself may send COMMIT before the prologue answers.
    guarded: bool,
    /// That guarded statement succeeded (`execute_guarded_and_commit`): the
    /// user was valid. What a `TokenCheck::UserGuardedByWrite` transaction needs.
    guard_passed: AtomicBool,
}

enum Eager {
    /// Read-write, or a re-run: COMMIT after the body.
    Off,
    /// No statement sent yet.
    Armed,
    /// The first statement went with the COMMIT; its result is kept for `run`.
    Committed(Option<Result<(), tokio_postgres::Error>>),
    /// A second statement was refused: the body must run again, not eagerly. The
    /// eager COMMIT's result is kept (it ended the transaction).
    Overrun(Option<Result<(), tokio_postgres::Error>>),
    /// A read-write body sent its last statements with COMMIT (`execute_and_commit`):
    /// its result, for `run`. Never re-run: the write may have committed.
    Closed(Option<Result<(), tokio_postgres::Error>>),
}

enum Turn {
    Plain,
    FirstOfEager,
    AfterEagerCommit,
    AfterClose,
}

impl EagerCommit {
    fn new(on: bool, guarded: bool) -> Self {
        Self {
            state: std::sync::Mutex::new(if on { Eager::Armed } else { Eager::Off }),
            may_close: AtomicBool::new(false),
            guarded,
            guard_passed: AtomicBool::new(false),
        }
    }

    /// Whether `execute_guarded_and_commit` may send COMMIT now: a read-write body
    /// (`Off`) of a user's token. Takes the turn: nothing may follow.
    fn close_guarded(&self) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let ready = matches!(*state, Eager::Off) && self.guarded;
        if ready {
            *state = Eager::Closed(None);
        }
        ready
    }

    /// Whether `execute_and_commit` may send COMMIT now: a read-write body
    /// (`Off`) whose prologue has passed. Takes the turn: nothing may follow.
    fn close(&self) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let ready = matches!(*state, Eager::Off) && self.may_close.load(Ordering::Acquire);
        if ready {
            *state = Eager::Closed(None);
        }
        ready
    }

    fn closed(&self, result: Result<(), tokio_postgres::Error>) {
        if let Ok(mut state) = self.state.lock()
            && let Eager::Closed(slot) = &mut *state
        {
            *slot = Some(result);
        }
    }

    fn next_statement(&self) -> Turn {
        let Ok(mut state) = self.state.lock() else {
            return Turn::AfterEagerCommit;
        };
        match *state {
            Eager::Off => Turn::Plain,
            Eager::Armed => {
                *state = Eager::Committed(None);
                Turn::FirstOfEager
            }
            Eager::Committed(ref mut result) => {
                *state = Eager::Overrun(result.take());
                Turn::AfterEagerCommit
            }
            Eager::Overrun(_) => Turn::AfterEagerCommit,
            Eager::Closed(_) => Turn::AfterClose,
        }
    }

    fn committed(&self, result: Result<(), tokio_postgres::Error>) {
        if let Ok(mut state) = self.state.lock()
            && let Eager::Committed(slot) = &mut *state
        {
            *slot = Some(result);
        }
    }

    /// What happened: `None` if no COMMIT was sent eagerly.
    fn take(&self) -> Option<Eager> {
        let mut state = self.state.lock().ok()?;
        match std::mem::replace(&mut *state, Eager::Off) {
            Eager::Off | Eager::Armed => None,
            Eager::Closed(result) => Some(Eager::Committed(result)),
            done => Some(done),
        }
    }
}

impl TenantTx<'_> {
    pub fn tenant_id(&self) -> TenantId {
        self.scope.tenant
    }

    pub fn home_region(&self) -> &RegionId {
        &self.scope.home_region
    }

    /// The user and role this transaction's prologue checks, when it checks a
    /// user's token (not an impersonation's, not none): what a statement that
    /// guards itself (`execute_guarded_and_commit`) must check too.
    pub fn token_user(&self) -> Option<(UserId, &'static str)> {
        match self.scope.check {
            Some(TokenCheck::User(user, role) | TokenCheck::UserGuardedByWrite(user, role)) => {
                Some((user, role))
            }
            _ => None,
        }
    }
}

impl<'a> PlatformTx<'a> {
    /// The node's region, when the database handle was given one.
    pub fn region(&self) -> Option<&RegionId> {
        self.scope.region.as_ref()
    }

    /// Switches this platform transaction into a tenant's scope, e.g. to create a
    /// new tenant's owner in the same transaction as the tenant.
    pub async fn enter_tenant(
        &self,
        tenant: TenantId,
        home_region: RegionId,
    ) -> Result<TenantTx<'a>, DbError> {
        self.query_one(
            "SELECT set_config('app.tenant_id', $1, true)",
            &[&tenant.to_string()],
        )
        .await?;
        Ok(Tx {
            client: self.client,
            retry: self.retry,
            eager: self.eager,
            statements: self.statements,
            usage_shard: self.usage_shard,
            scope: TenantBound {
                tenant,
                home_region,
                check: None,
            },
        })
    }
}

/// Returns the pooled connection only after a clean COMMIT/ROLLBACK.
struct ConnGuard {
    conn: Option<Object>,
    clean: bool,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if !self.clean
            && let Some(conn) = self.conn.take()
        {
            // Closing the connection makes the server abort its transaction.
            drop(Object::take(conn));
        }
    }
}

fn begin_sql(mode: TxMode) -> &'static str {
    match mode {
        TxMode::ReadOnly => "BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY",
        TxMode::ReadWrite => "BEGIN ISOLATION LEVEL SERIALIZABLE",
        TxMode::ReadCommitted => "BEGIN ISOLATION LEVEL READ COMMITTED",
    }
}

const SET_TENANT_SQL: &str = "SELECT set_config('app.tenant_id', $1, true)";
/// The same, with the request class's `statement_timeout` for the rest of the
/// transaction (`SET LOCAL`), in the same pipelined statement: no extra round trip.
const SET_TENANT_TIMEOUT_SQL: &str =
    "SELECT set_config('app.tenant_id', $1, true), set_config('statement_timeout', $2, true)";
/// Whether the token's user is still active and still has the token's role: a
/// disabled, deleted, demoted or promoted user's token stops working at once.
pub const USER_STATUS_SQL: &str =
    "SELECT status = 'active' AND role = $3 FROM users WHERE tenant_id = $1 AND id = $2";

/// The answer (401) to a token whose user is no longer active with its role.
pub const USER_REFUSED: &str = "the token's user is disabled, deleted or has another role now";

/// Whether an impersonation's token may still be used, and whether it may write
/// now: the row is neither revoked nor expired; a write also needs the
/// impersonation's mode `write` and the tenant's `impersonation_writes`, read
/// here, in the writing transaction (never from the directory cache).
pub const IMPERSONATION_STATUS_SQL: &str = "SELECT i.revoked_at IS NULL AND i.expires_at > now(), \
    i.mode = 'write' AND t.impersonation_writes FROM impersonations i JOIN tenants t ON t.id = \
    i.tenant_id WHERE i.tenant_id = $1 AND i.id = $2";

/// Whose token a tenant transaction checks in its prologue (one statement
/// either way: a token without `act` pays nothing for impersonation).
#[derive(Clone, Copy, Debug)]
pub enum TokenCheck {
    /// A user's token: still active, still with this role.
    User(UserId, &'static str),
    /// A user's token whose check is made by the body's guarded write instead of
    /// the prologue (`Tx::execute_guarded_and_commit`, whose first statement
    /// fails unless the user is active with this role: the post). The prologue
    /// sends no user statement, so the statement is not sent twice. Read-write
    /// only; a body that ends without having sent its guarded statement is
    /// rolled back and fails (nothing is ever committed unchecked).
    UserGuardedByWrite(UserId, &'static str),
    /// No one token: the body's guarded write writes rows of several users' posts,
    /// each row only if its own author is active with its token's role (the
    /// coalesced posts, `store::post_batch`), so it may COMMIT with that statement
    /// like `UserGuardedByWrite`. The prologue sends no user statement. Read-write
    /// only; a body that ends without having sent its guarded statement is rolled
    /// back and fails.
    RowsGuarded,
    /// An impersonation's token (`IMPERSONATION_STATUS_SQL`).
    Impersonation(ImpersonationId),
}

/// What the prologue's check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Checked {
    Valid,
    /// Disabled, deleted or another role; revoked or expired: 401.
    Refused,
    /// A write under an impersonation that may not write: 403.
    ReadOnly,
}

/// What a transaction is opened for: its scope, and the token to check.
#[derive(Clone, Copy)]
enum Opening {
    Platform,
    Tenant {
        tenant: TenantId,
        /// The token's user and role, or its impersonation.
        user: Option<TokenCheck>,
        /// The request class's `statement_timeout` (`limits::cost`), if any.
        timeout: Option<Duration>,
    },
}

impl Database {
    /// Runs `body` in a transaction scoped to `tenant`. When `user` (id and role) is
    /// given, the transaction fails with 401 unless that user is active with that
    /// role — checked in the same round trip, so a token stops working at once when
    /// its user is disabled, deleted or given another role.
    pub(crate) async fn tenant_tx<T>(
        &self,
        tenant: TenantId,
        home_region: &RegionId,
        user: Option<TokenCheck>,
        mode: TxMode,
        body: impl AsyncFnMut(&TenantTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        self.tenant_tx_timed(tenant, home_region, user, None, mode, body)
            .await
    }

    /// `tenant_tx` whose statements are cancelled after `timeout` each
    /// (SQLSTATE 57014, `DbError::StatementTimeout`).
    pub(crate) async fn tenant_tx_timed<T>(
        &self,
        tenant: TenantId,
        home_region: &RegionId,
        user: Option<TokenCheck>,
        timeout: Option<Duration>,
        mode: TxMode,
        body: impl AsyncFnMut(&TenantTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let scope = TenantBound {
            tenant,
            home_region: home_region.clone(),
            check: user,
        };
        let opening = Opening::Tenant {
            tenant,
            user,
            timeout,
        };
        self.run(mode, opening, scope, body).await
    }

    /// Runs `body` in an unscoped transaction (tenant directory, platform audit).
    pub(crate) async fn platform_tx<T>(
        &self,
        mode: TxMode,
        body: impl AsyncFnMut(&PlatformTx<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let scope = Platform {
            region: self.region.clone(),
        };
        self.run(mode, Opening::Platform, scope, body).await
    }

    async fn run<S: Clone, T>(
        &self,
        mode: TxMode,
        opening: Opening,
        scope: S,
        mut body: impl AsyncFnMut(&Tx<'_, S>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        // The guarded write's check only holds for a write (a read would answer
        // unchecked).
        let guarded_by_write = matches!(
            opening,
            Opening::Tenant {
                user: Some(TokenCheck::UserGuardedByWrite(..) | TokenCheck::RowsGuarded),
                ..
            }
        );
        if guarded_by_write && mode != TxMode::ReadWrite {
            return Err(ApiError::internal(anyhow::anyhow!(
                "a user check by the guarded write in a transaction that is not read-write"
            )));
        }
        let mut attempt = 0;
        let mut eager_allowed = mode == TxMode::ReadOnly;
        loop {
            attempt += 1;
            let last_attempt = attempt >= self.max_retries;
            let waiting = std::time::Instant::now();
            let conn = self.connection().await?;
            self.pool_wait.observe(waiting.elapsed().as_secs_f64());
            let mut guard = ConnGuard {
                conn: Some(conn),
                clean: false,
            };
            let Some(client) = guard.conn.as_deref() else {
                return Err(ApiError::internal(anyhow::anyhow!(
                    "connection guard is empty"
                )));
            };
            // Prepared before anything is pipelined: a statement still being
            // prepared would be sent late, after the body's first statement.
            let timeout = match opening {
                Opening::Tenant {
                    timeout: Some(t), ..
                } => Some(format!("{}ms", t.as_millis().max(1))),
                _ => None,
            };
            let set_tenant = client
                .prepare_cached(if timeout.is_some() {
                    SET_TENANT_TIMEOUT_SQL
                } else {
                    SET_TENANT_SQL
                })
                .await
                .map_err(DbError::from)?;
            let check_sql = match opening {
                Opening::Tenant {
                    user: Some(TokenCheck::Impersonation(_)),
                    ..
                } => Some(IMPERSONATION_STATUS_SQL),
                _ if guarded_by_write => None,
                _ => Some(USER_STATUS_SQL),
            };
            let user_status = match check_sql {
                Some(sql) => Some(client.prepare_cached(sql).await.map_err(DbError::from)?),
                None => None,
            };
            let retry = AtomicBool::new(false);
            let guarded = mode == TxMode::ReadWrite
                && matches!(
                    opening,
                    Opening::Tenant {
                        user: Some(
                            TokenCheck::User(..)
                                | TokenCheck::UserGuardedByWrite(..)
                                | TokenCheck::RowsGuarded
                        ),
                        ..
                    }
                );
            let eager = EagerCommit::new(eager_allowed, guarded);
            // Held until this attempt ends; a retry (after a conflict) looks for a
            // shard from a random place. Read-only transactions charge nothing.
            let lease = (mode != TxMode::ReadOnly).then(|| self.usage_shards.lease(attempt > 1));
            let tx = Tx {
                client,
                retry: &retry,
                eager: &eager,
                statements: self.dialect.statements(),
                usage_shard: lease.as_ref().map_or(0, |l| l.shard()),
                scope: scope.clone(),
            };
            // join! polls in order, and each statement is written to the connection
            // on its first poll: BEGIN, the tenant setting and the user check are on
            // the wire before the body's first statement, in one round trip.
            let prologue = async {
                let begin = client.batch_execute(begin_sql(mode));
                let setting = async {
                    if let Opening::Tenant { tenant, .. } = opening {
                        let tenant = tenant.to_string();
                        match &timeout {
                            Some(t) => client.query_one(&set_tenant, &[&tenant, t]).await?,
                            None => client.query_one(&set_tenant, &[&tenant]).await?,
                        };
                    }
                    Ok(())
                };
                let status = async {
                    let valid = |ok: bool| if ok { Checked::Valid } else { Checked::Refused };
                    match (opening, user_status.as_ref()) {
                        (
                            Opening::Tenant {
                                tenant,
                                user: Some(TokenCheck::User(user, role)),
                                ..
                            },
                            Some(user_status),
                        ) => client
                            .query_opt(user_status, &[tenant.as_uuid(), user.as_uuid(), &role])
                            .await
                            .map(|row| {
                                let checked = valid(row.is_some_and(|r| r.get::<_, bool>(0)));
                                if checked == Checked::Valid && mode == TxMode::ReadWrite {
                                    eager.may_close.store(true, Ordering::Release);
                                }
                                Some(checked)
                            }),
                        (
                            Opening::Tenant {
                                tenant,
                                user: Some(TokenCheck::Impersonation(id)),
                                ..
                            },
                            Some(user_status),
                        ) => client
                            .query_opt(user_status, &[tenant.as_uuid(), id.as_uuid()])
                            .await
                            .map(|row| {
                                let (active, may_write) = row.map_or((false, false), |r| {
                                    (r.get::<_, bool>(0), r.get::<_, bool>(1))
                                });
                                Some(match (active, may_write) {
                                    (false, _) => Checked::Refused,
                                    (true, false) if mode != TxMode::ReadOnly => Checked::ReadOnly,
                                    (true, _) => Checked::Valid,
                                })
                            }),
                        // A check without its statement: cannot happen (`check_sql`),
                        // and would fail closed.
                        (
                            Opening::Tenant {
                                user: Some(TokenCheck::User(..) | TokenCheck::Impersonation(_)),
                                ..
                            },
                            None,
                        ) => Ok(Some(Checked::Refused)),
                        // Checked by the body's guarded write (after the body, below),
                        // or nothing to check.
                        _ => Ok(None),
                    }
                };
                let (begun, set, status) = futures_util::join!(begin, setting, status);
                begun.and(set).and(status)
            };
            let (opened, outcome) = futures_util::join!(prologue, body(&tx));
            let user_valid = match opened {
                Ok(status) => status,
                Err(err) if DbError::is_retryable(&err) && !last_attempt => continue,
                Err(err) => return Err(DbError::from(err).into()),
            };
            // `None`: the transaction is still open; `Some(result)`: COMMIT was sent
            // with the body's first statement, and this is how it ended.
            let ended = match eager.take() {
                Some(Eager::Overrun(result)) => {
                    // A multi-statement read: run it again with COMMIT after the body.
                    guard.clean = matches!(result, Some(Ok(())));
                    eager_allowed = false;
                    attempt -= 1;
                    continue;
                }
                Some(Eager::Committed(Some(result))) => Some(result),
                Some(Eager::Committed(None)) => {
                    return Err(ApiError::internal(anyhow::anyhow!(
                        "the eager COMMIT did not complete"
                    )));
                }
                Some(Eager::Off | Eager::Armed | Eager::Closed(_)) | None => None,
            };
            if let Some(refusal @ (Checked::Refused | Checked::ReadOnly)) = user_valid {
                roll_back_unless_ended(client, ended).await?;
                guard.clean = true;
                return Err(match (refusal, opening) {
                    (Checked::ReadOnly, _) => ApiError::ImpersonationReadOnly,
                    (
                        _,
                        Opening::Tenant {
                            user: Some(TokenCheck::Impersonation(_)),
                            ..
                        },
                    ) => ApiError::Unauthenticated("the impersonation is revoked or has expired"),
                    _ => ApiError::Unauthenticated(USER_REFUSED),
                });
            }
            match outcome {
                // Nothing showed the user valid: the guarded write was never sent,
                // or it failed and the body answered anyway. Never committed.
                Ok(_) if guarded_by_write && !eager.guard_passed.load(Ordering::Acquire) => {
                    roll_back_unless_ended(client, ended).await?;
                    guard.clean = true;
                    return Err(ApiError::internal(anyhow::anyhow!(
                        "a write checked by its guarded statement ended without sending it"
                    )));
                }
                Ok(value) => {
                    let committed = match ended {
                        Some(result) => result,
                        None => client.batch_execute("COMMIT").await,
                    };
                    match committed {
                        Ok(()) => {
                            guard.clean = true;
                            return Ok(value);
                        }
                        // A failed COMMIT has ended the transaction: the connection is clean.
                        Err(err) if DbError::is_retryable(&err) && !last_attempt => {
                            guard.clean = true
                        }
                        Err(err) => return Err(DbError::from(err).into()),
                    }
                }
                Err(err) => {
                    roll_back_unless_ended(client, ended).await?;
                    guard.clean = true;
                    if !retry.load(Ordering::Relaxed) || last_attempt {
                        return Err(err);
                    }
                }
            }
            drop(lease);
            drop(guard);
            tracing::debug!(attempt, "serialization conflict; retrying transaction");
            tokio::time::sleep(backoff(attempt)).await;
        }
    }
}

/// Exponential backoff with jitter, capped at ~100 ms.
fn backoff(attempt: u32) -> Duration {
    let base = 2u64.saturating_pow(attempt.min(6)); // 2..=64 ms
    let jitter = (uuid::Uuid::new_v4().as_u128() % 1000) as u64; // 0..1 ms in µs
    Duration::from_millis(base) + Duration::from_micros(jitter * base.min(32))
}

/// Ends a transaction that must not commit: `ROLLBACK`, unless the COMMIT sent
/// eagerly with the body's first statement already ended it (`ended`; after a
/// failed statement that COMMIT ended it as a rollback).
async fn roll_back_unless_ended(
    client: &deadpool_postgres::ClientWrapper,
    ended: Option<Result<(), tokio_postgres::Error>>,
) -> Result<(), DbError> {
    match ended {
        Some(result) => result.map_err(DbError::from),
        None => client
            .batch_execute("ROLLBACK")
            .await
            .map_err(DbError::from),
    }
}
