//! Tenant resolution, the work every `/v1` request does before its handler runs:
//! verify the bearer token (cached by exact token text, Ed25519 on first sight) and
//! look the token's tenant up in the directory cache.
//!
//! The directory is preloaded through its public `put` (what a node does with each
//! committed change and with every row of its start-up load) with `TENANTS`
//! records; its pool points at a closed port and is never used, because every
//! lookup is a hit. The request-path case calls `meridian::scope::tenant_of`, the
//! function the routing middleware calls, on a real `HttpRequest`.
//!
//! `cargo bench --bench tenant_resolution` prints criterion's mean and interval per
//! case, then p50/p99/max of individually timed calls (the aim: p99 under 20 µs).

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::HttpRequest;
use actix_web::test::TestRequest;
use chrono::Utc;
use criterion::{BatchSize, Criterion};
use meridian::auth::{KeySet, Role, TokenVerifier};
use meridian::config::{AuthSettings, DatabaseSettings, LimitSettings, RoutingSettings};
use meridian::db::Database;
use meridian::ids::{RegionId, TenantId};
use meridian::limits::NodeLimits;
use meridian::relocation::Relocator;
use meridian::routing::middleware::RoutingState;
use meridian::scope::{ScopedDatabase, tenant_of};
use meridian::state::{AppState, Services};
use meridian::tenancy::{Directory, Plan, TenantRecord, TenantStatus};
use meridian::topology::Topology;
use uuid::Uuid;

/// Tenants in the directory: the scale aim of issue 5.
const TENANTS: usize = 100_000;
/// Distinct tokens cycled through by the cached cases (below the verified-token
/// cache's capacity, so all of them stay cached).
const TOKENS: usize = 10_000;
/// Individually timed calls per case for the percentiles.
const TIMED_CALLS: usize = 100_000;
const TIMED_UNCACHED: usize = 20_000;

struct Fixture {
    state: Arc<AppState>,
    tenants: Vec<TenantId>,
    /// Tenant-owner tokens, one per tenant of `tenants[..TOKENS]`, already verified once.
    tokens: Vec<String>,
    requests: Vec<HttpRequest>,
    runtime: tokio::runtime::Runtime,
    keys_dir: PathBuf,
    /// VmRSS (KiB) before and after preloading the directory.
    rss_kib: (u64, u64),
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.keys_dir);
    }
}

fn record(id: TenantId, i: usize) -> TenantRecord {
    let now = Utc::now();
    TenantRecord {
        id,
        slug: format!("bench-{i}"),
        name: format!("Bench tenant {i}"),
        home_region: RegionId::parse("us-east1").expect("valid region"),
        residency: None,
        plan: Plan::Pro,
        limit_overrides: Default::default(),
        status: TenantStatus::Active,
        erase_after: None,
        encryption: Default::default(),
        config_version: 1,
        created_at: now,
        updated_at: now,
    }
}

fn fixture() -> Fixture {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let keys_dir = std::env::temp_dir().join(format!("meridian-bench-{}", std::process::id()));
    let keys_file = keys_dir.join("keys.json");
    KeySet::ensure_file(&keys_file).expect("writing a bench key set");
    let auth = AuthSettings::default_local();
    let verifier = Arc::new(TokenVerifier::new(
        KeySet::load(&keys_file).expect("loading the bench key set"),
        &auth,
    ));
    // Port 1: nothing listens, and nothing is ever asked (every lookup hits).
    let db = Database::connect(&DatabaseSettings {
        url: "postgres://bench@127.0.0.1:1/unused".into(),
        pool_size: 1,
        connect_timeout: Duration::from_millis(100),
        max_retries: 1,
        dialect: Default::default(),
        tls: Default::default(),
        post_batch_max: 0,
        post_writers_per_tenant: 1,
        post_lane_wait: std::time::Duration::from_millis(100),
    })
    .expect("building an idle pool");
    let directory = Directory::new(db.clone(), 1_000_000);
    let tenants: Vec<TenantId> = (0..TENANTS).map(|_| TenantId::new_random()).collect();
    let rss_before = rss_kib();
    runtime.block_on(async {
        for (i, id) in tenants.iter().enumerate() {
            directory.put(record(*id, i)).await;
        }
    });
    let rss_kib = (rss_before, rss_kib());
    let topology = Topology::load(&PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/regions"
    )))
    .expect("loading regions/");
    let here = RegionId::parse("us-east1").expect("valid region");
    let routing = RoutingState::new(
        &RoutingSettings {
            hop_secret: "bench hop secret, never used".into(),
            ..RoutingSettings::default()
        },
        &topology,
        &here,
        1 << 20,
        "api.meridian.test",
        "http",
    );
    let topology = Arc::new(topology);
    // Never used here (nothing is sealed): a throw-away KEK file.
    let kek_file =
        std::env::temp_dir().join(format!("meridian-bench-keks-{}.json", Uuid::now_v7()));
    let provider = meridian::crypto::provider::LocalFileProvider::ensure(&kek_file, &["us"])
        .expect("a local KEK file");
    let _ = std::fs::remove_file(&kek_file);
    // Never used either: a throw-away signing key.
    let signing = meridian::crypto::signing::SigningSettings {
        key_file: kek_file.with_extension("signing.json"),
        trusted_keys: Vec::new(),
    };
    let signer =
        Arc::new(meridian::crypto::signing::Signer::load(&signing).expect("a signing key"));
    let _ = std::fs::remove_file(&signing.key_file);
    let keyring = Arc::new(meridian::crypto::keyring::Keyring::new(
        Arc::new(provider),
        topology.clone(),
        &Default::default(),
    ));
    let relocator = Relocator::new(
        db.clone(),
        directory.clone(),
        topology.clone(),
        "bench".into(),
        500,
        Duration::from_secs(2),
        keyring.clone(),
    );
    // The probe writer is never run: every lookup here hits, nothing is probed.
    let (probes, _writer) = meridian::tasks::probe_queue(db.clone());
    let state = Arc::new(AppState::new(Services {
        db: ScopedDatabase::new(db),
        directory,
        limits: NodeLimits::new(&LimitSettings::default()),
        routing,
        relocator,
        topology,
        region: here,
        verifier: verifier.clone(),
        probes,
        keyring,
        signer,
        access_log: meridian::access_log::AccessLog::new(&Default::default()),
        post_lanes: meridian::scope::post_lanes::PostLanes::new(
            0,
            1,
            std::time::Duration::from_millis(100),
        ),
    }));
    let tokens: Vec<String> = tenants[..TOKENS]
        .iter()
        .map(|tid| {
            let user = Uuid::now_v7().to_string();
            let token = verifier
                .issue(user, Some(*tid.as_uuid()), Role::Owner, 3600)
                .expect("issuing a bench token");
            verifier.verify(&token).expect("a valid bench token");
            token
        })
        .collect();
    let requests = tokens
        .iter()
        .map(|token| {
            TestRequest::get()
                .uri("/v1/channels")
                .insert_header(("Authorization", format!("Bearer {token}")))
                .to_http_request()
        })
        .collect();
    Fixture {
        state,
        tenants,
        tokens,
        requests,
        runtime,
        keys_dir,
        rss_kib,
    }
}

/// This process's resident set, in KiB (0 where /proc is missing).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// A token the verifier has never seen (distinct `sub`), for the first-sight case.
fn fresh_token(f: &Fixture, i: usize) -> String {
    let tid = *f.tenants[i % TENANTS].as_uuid();
    f.state
        .verifier
        .issue(Uuid::now_v7().to_string(), Some(tid), Role::Owner, 3600)
        .expect("issuing a bench token")
}

fn criterion_cases(c: &mut Criterion, f: &Fixture) {
    let mut group = c.benchmark_group("tenant_resolution");
    let mut i = 0usize;
    group.bench_function("verify_cached", |b| {
        b.iter(|| {
            i = (i + 1) % TOKENS;
            black_box(f.state.verifier.verify(&f.tokens[i]).is_ok())
        })
    });
    let mut n = 0usize;
    group.bench_function("verify_uncached", |b| {
        b.iter_batched(
            || {
                n += 1;
                fresh_token(f, n)
            },
            |token| black_box(f.state.verifier.verify(&token).is_ok()),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("directory_hit", |b| {
        b.iter_custom(|iters| {
            f.runtime.block_on(async {
                let started = Instant::now();
                for k in 0..iters as usize {
                    let id = f.tenants[k % TENANTS];
                    black_box(f.state.directory.get(id).await.ok().flatten().is_some());
                }
                started.elapsed()
            })
        })
    });
    group.bench_function("tenant_of_request", |b| {
        b.iter_custom(|iters| {
            f.runtime.block_on(async {
                let started = Instant::now();
                for k in 0..iters as usize {
                    let req = &f.requests[k % TOKENS];
                    black_box(matches!(tenant_of(req, &f.state).await, Ok(Some(_))));
                }
                started.elapsed()
            })
        })
    });
    group.finish();
}

/// Times each call on its own and prints nearest-rank percentiles.
fn percentiles(name: &str, mut micros: Vec<f64>) {
    micros.sort_by(f64::total_cmp);
    let at = |p: f64| micros[((p / 100.0 * micros.len() as f64).ceil() as usize).max(1) - 1];
    let mean = micros.iter().sum::<f64>() / micros.len() as f64;
    let over_10us = micros.iter().filter(|&&us| us > 10.0).count();
    println!(
        "{name:<22} calls {:>7}  mean {:>7.2} µs  p50 {:>7.2} µs  p99 {:>7.2} µs  p99.9 {:>7.2} µs  max {:>8.2} µs  >10 µs: {over_10us}",
        micros.len(),
        mean,
        at(50.0),
        at(99.0),
        at(99.9),
        micros[micros.len() - 1],
    );
}

fn timed_calls(f: &Fixture) {
    let (before, after) = f.rss_kib;
    println!(
        "\ndirectory of {} entries: VmRSS {:.1} MiB before preloading, {:.1} MiB after (+{:.1} MiB, {} bytes per tenant)",
        f.state.directory.entry_count(),
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after as f64 - before as f64) / 1024.0,
        (after.saturating_sub(before) * 1024) / TENANTS as u64,
    );
    println!("individually timed calls ({TENANTS} tenants in the directory):");
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let samples = (0..TIMED_CALLS)
        .map(|k| {
            let started = Instant::now();
            black_box(f.state.verifier.verify(&f.tokens[k % TOKENS]).is_ok());
            us(started.elapsed())
        })
        .collect();
    percentiles("verify_cached", samples);

    let fresh: Vec<String> = (0..TIMED_UNCACHED)
        .map(|k| fresh_token(f, k + 1_000_000))
        .collect();
    let samples = fresh
        .iter()
        .map(|token| {
            let started = Instant::now();
            black_box(f.state.verifier.verify(token).is_ok());
            us(started.elapsed())
        })
        .collect();
    percentiles("verify_uncached", samples);

    let samples = f.runtime.block_on(async {
        let mut samples = Vec::with_capacity(TIMED_CALLS);
        for k in 0..TIMED_CALLS {
            let id = f.tenants[(k * 7919) % TENANTS];
            let started = Instant::now();
            black_box(f.state.directory.get(id).await.ok().flatten().is_some());
            samples.push(us(started.elapsed()));
        }
        samples
    });
    percentiles("directory_hit", samples);

    // The same lookups over the 10,000 tenants the request-path case uses: tells
    // the working set's effect (CPU caches, moka's bookkeeping) from the lookup's.
    let samples = f.runtime.block_on(async {
        let mut samples = Vec::with_capacity(TIMED_CALLS);
        for k in 0..TIMED_CALLS {
            let id = f.tenants[k % TOKENS];
            let started = Instant::now();
            black_box(f.state.directory.get(id).await.ok().flatten().is_some());
            samples.push(us(started.elapsed()));
        }
        samples
    });
    percentiles("directory_hit_10k", samples);

    let samples = f.runtime.block_on(async {
        let mut samples = Vec::with_capacity(TIMED_CALLS);
        for k in 0..TIMED_CALLS {
            let req = &f.requests[k % TOKENS];
            let started = Instant::now();
            black_box(matches!(tenant_of(req, &f.state).await, Ok(Some(_))));
            samples.push(us(started.elapsed()));
        }
        samples
    });
    percentiles("tenant_of_request", samples);
}

fn main() {
    let fixture = fixture();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    criterion_cases(&mut c, &fixture);
    c.final_summary();
    // `cargo bench` passes `--bench`; `cargo test --benches` only smoke-runs the cases.
    if std::env::args().any(|a| a == "--bench") {
        timed_calls(&fixture);
    }
}
