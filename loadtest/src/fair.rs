//! `loadtest fair`: the noisy-neighbour benchmark with *expensive but allowed*
//! work (issue 11, item 5). Quiet tenants read message pages; one noisy tenant
//! with many messages (loaded with psql) runs, inside its own limits, searches
//! for a word in every one of its messages, 200-row pages and writes, as a
//! well-behaved client (it waits `Retry-After` when refused). Each run measures
//! the quiet tenants alone, then with the noisy tenant; the load average is
//! recorded with each run; the summary is the median over the runs, because one
//! run on two shared cores swings too much to decide.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Context;
use meridian::auth::{KeySet, Role, TokenVerifier};
use meridian::config::AuthSettings;
use serde_json::json;

use crate::call;
use crate::stats::{Samples, Summary};

#[derive(clap::Args, Clone)]
pub struct FairArgs {
    /// The node's base URL.
    #[arg(long)]
    base: String,
    /// The key set the node verifies with (`<state-dir>/keys.json`).
    #[arg(long)]
    keys: PathBuf,
    /// psql and a superuser URL of the node's database, to load the noisy
    /// tenant's messages.
    #[arg(long)]
    psql: PathBuf,
    #[arg(long)]
    pg: String,
    #[arg(long, default_value_t = 5)]
    quiet_tenants: usize,
    /// Requests per second per quiet tenant; 0: closed loop (one request in
    /// flight per tenant, the next as soon as the last answered).
    #[arg(long, default_value_t = 0)]
    quiet_rate: u32,
    /// The noisy tenant's messages, every one containing the searched word.
    #[arg(long, default_value_t = 200_000)]
    noisy_messages: u64,
    /// The noisy tenant's concurrent searches, 200-row page readers and writers.
    #[arg(long, default_value_t = 6)]
    searchers: usize,
    #[arg(long, default_value_t = 2)]
    big_pages: usize,
    #[arg(long, default_value_t = 2)]
    writers: usize,
    /// The noisy writers' posts a second, all together, sent at an even pace;
    /// 0 (default): each writer posts in a closed loop (until refused).
    #[arg(long, default_value_t = 0)]
    writer_rate: u32,
    /// The noisy tenant's rate limit (requests per second and burst); its
    /// concurrency limit is large enough for all its workers.
    #[arg(long, default_value_t = 50)]
    noisy_rate: u32,
    #[arg(long, default_value_t = 5)]
    runs: usize,
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    #[arg(long, default_value = "noisy-cost.json")]
    out: PathBuf,
    /// The node's and PostgreSQL's postmaster process ids: when given, each
    /// phase records the CPU they used (from /proc, utime + stime; PostgreSQL's
    /// is the postmaster's and its children's).
    #[arg(long)]
    node_pid: Option<u32>,
    #[arg(long)]
    pg_pid: Option<u32>,
}

struct Tenant {
    id: uuid::Uuid,
    token: String,
    owner: String,
    channel: String,
}

/// The noisy tenant's kinds of work.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Work {
    Search,
    BigPage,
    Write,
}

pub async fn fair(args: FairArgs) -> anyhow::Result<()> {
    let verifier = TokenVerifier::new(KeySet::load(&args.keys)?, &AuthSettings::default_local());
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let admin = verifier.issue("loadtest".into(), None, Role::PlatformAdmin, 3600)?;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut quiet = Vec::new();
    for i in 0..args.quiet_tenants {
        let slug = format!("quiet-{run}-{i}");
        let t = provision(&client, &args, &admin, &verifier, &slug).await?;
        for n in 0..50 {
            let body = json!({ "body": format!("message {n} of {slug}: an ordinary chat line") });
            let url = format!("{}/v1/channels/{}/messages", args.base, t.channel);
            call(&client, "POST", &url, &t.token, Some(body)).await?;
        }
        // Quiet tenants read in a closed loop: their own rate limit must not be
        // what the benchmark measures.
        let unlimited = json!({ "limits": { "requests_per_second": 100_000, "burst": 100_000,
                                            "concurrent_requests": 1_000 } });
        let url = format!("{}/v1/tenants/{}", args.base, t.id);
        call(&client, "PATCH", &url, &admin, Some(unlimited)).await?;
        quiet.push(t);
    }
    let noisy = provision(&client, &args, &admin, &verifier, &format!("noisy-{run}")).await?;
    println!(
        "loading {} messages for the noisy tenant",
        args.noisy_messages
    );
    load(&args, &noisy)?;
    // psql blocked this event loop for a while; the old client's connector did
    // not survive it.
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let limits = json!({ "requests_per_second": args.noisy_rate, "burst": args.noisy_rate,
                         "concurrent_requests": 200 });
    call(
        &client,
        "PATCH",
        &format!("{}/v1/tenants/{}", args.base, noisy.id),
        &admin,
        Some(json!({ "limits": limits })),
    )
    .await?;

    let quiet = Rc::new(quiet);
    let mut runs = Vec::new();
    for r in 1..=args.runs {
        let load_before = loadavg();
        let alone = phase(&client, &args, quiet.clone(), None).await;
        let (with, noisy_stats, with_cpu) =
            phase(&client, &args, quiet.clone(), Some(&noisy)).await;
        let noisy_cpu = noisy_share(&alone.0, alone.2.as_ref(), &with, with_cpu.as_ref());
        let row = json!({ "run": r, "load": load_before, "alone": alone.0, "with_noisy": with,
                          "noisy": noisy_stats, "cpu_alone": alone.2, "cpu_with_noisy": with_cpu,
                          "cpu_noisy": noisy_cpu });
        println!(
            "run {r}: load {load_before}  alone p50 {:.2} p99 {:.2} ms ({} req, {:?}{})  \
             with noisy p50 {:.2} p99 {:.2} ms ({} req, {:?}{})  noisy {}",
            alone.0.p50_ms,
            alone.0.p99_ms,
            alone.0.requests,
            alone.0.statuses,
            cpu_line(&alone.2),
            with.p50_ms,
            with.p99_ms,
            with.requests,
            with.statuses,
            cpu_line(&with_cpu),
            noisy_line(&noisy_stats) + &cpu_line(&noisy_cpu)
        );
        runs.push(row);
    }
    let pick = |phase: &str, field: &str| -> Vec<f64> {
        runs.iter()
            .map(|r| r[phase][field].as_f64().unwrap_or(0.0))
            .collect()
    };
    let (a50, a99) = (
        median(pick("alone", "p50_ms")),
        median(pick("alone", "p99_ms")),
    );
    let (w50, w99) = (
        median(pick("with_noisy", "p50_ms")),
        median(pick("with_noisy", "p99_ms")),
    );
    println!();
    println!(
        "| quiet tenants ({} × {}), median of {} runs of {} s | p50 | p99 |",
        args.quiet_tenants,
        if args.quiet_rate == 0 {
            "closed loop".to_owned()
        } else {
            format!("{} req/s", args.quiet_rate)
        },
        args.runs,
        args.seconds
    );
    println!("| --- | --- | --- |");
    println!("| alone | {a50:.2} ms | {a99:.2} ms |");
    println!("| with the noisy tenant | {w50:.2} ms | {w99:.2} ms |");
    println!(
        "| ratio | ×{:.2} | ×{:.2} (aim ≤ ×1.10) |",
        w50 / a50,
        w99 / a99
    );
    let cpu = |phase: &str, side: &str| -> f64 {
        median(
            runs.iter()
                .filter_map(|r| r[phase][side].as_f64())
                .collect(),
        )
    };
    let cpu_median = json!({
        "noisy": { "node_cores": cpu("cpu_noisy", "node_cores"), "pg_cores": cpu("cpu_noisy", "pg_cores") },
        "alone": { "node_cores": cpu("cpu_alone", "node_cores"), "pg_cores": cpu("cpu_alone", "pg_cores") },
        "with_noisy": { "node_cores": cpu("cpu_with_noisy", "node_cores"),
                        "pg_cores": cpu("cpu_with_noisy", "pg_cores") } });
    if args.node_pid.is_some() {
        println!(
            "CPU (cores, median): alone node {:.2} PostgreSQL {:.2}; with the noisy tenant node {:.2} \
             PostgreSQL {:.2}; the noisy tenant's estimated share node {:.2} PostgreSQL {:.2}",
            cpu("cpu_alone", "node_cores"),
            cpu("cpu_alone", "pg_cores"),
            cpu("cpu_with_noisy", "node_cores"),
            cpu("cpu_with_noisy", "pg_cores"),
            cpu("cpu_noisy", "node_cores"),
            cpu("cpu_noisy", "pg_cores")
        );
    }
    let report = json!({ "args": {
            "quiet_tenants": args.quiet_tenants, "quiet_rate": args.quiet_rate,
            "noisy_messages": args.noisy_messages, "searchers": args.searchers,
            "big_pages": args.big_pages, "writers": args.writers, "writer_rate": args.writer_rate, "noisy_rate": args.noisy_rate,
            "runs": args.runs, "seconds": args.seconds },
        "runs": runs,
        "median": { "alone_p50_ms": a50, "alone_p99_ms": a99,
                    "with_p50_ms": w50, "with_p99_ms": w99,
                    "p50_ratio": w50 / a50, "p99_ratio": w99 / a99, "cpu": cpu_median } });
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)?)?;
    println!("results: {}", args.out.display());
    Ok(())
}

fn noisy_line(stats: &Option<serde_json::Value>) -> String {
    let Some(stats) = stats else {
        return String::new();
    };
    ["search", "big_page", "write"]
        .iter()
        .map(|k| format!("{k} {}", stats[k]["statuses"]))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The noisy tenant's share of the CPU in the "with" phase: what was used minus
/// what the quiet tenants' pages of that phase would have cost at the "alone"
/// phase's CPU per page (an estimate: it assumes a page costs the same in both).
fn noisy_share(
    alone: &Summary,
    alone_cpu: Option<&serde_json::Value>,
    with: &Summary,
    with_cpu: Option<&serde_json::Value>,
) -> Option<serde_json::Value> {
    let (a, w) = (alone_cpu?, with_cpu?);
    let scale = with.requests as f64 / (alone.requests as f64).max(1.0);
    let share = |k: &str| w[k].as_f64().unwrap_or(0.0) - a[k].as_f64().unwrap_or(0.0) * scale;
    Some(json!({ "node_cores": share("node_cores"), "pg_cores": share("pg_cores") }))
}

fn cpu_line(cpu: &Option<serde_json::Value>) -> String {
    cpu.as_ref().map_or(String::new(), |c| {
        format!(
            "; cpu node {:.2} pg {:.2} cores",
            c["node_cores"].as_f64().unwrap_or(0.0),
            c["pg_cores"].as_f64().unwrap_or(0.0)
        )
    })
}

/// CPU seconds (utime + stime) used so far by the node and by PostgreSQL (the
/// postmaster, its live children and the ones it has reaped).
fn cpu_seconds(args: &FairArgs) -> Option<(f64, f64)> {
    let (node, pg) = (args.node_pid?, args.pg_pid?);
    let hz = clock_ticks();
    let mut node_ticks = 0u64;
    let mut pg_ticks = 0u64;
    for (pid, dir) in crate::scale::procmem::processes().ok()? {
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        // Fields after the command name (which may hold spaces): state, ppid, …,
        // utime (14th of the line) and stime (15th).
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let ticks = num(11) + num(12);
        if pid == node {
            node_ticks += ticks;
        } else if pid == pg {
            // With its exited children's (cutime, cstime): a backend or an
            // autovacuum worker that ends between two readings moves its ticks
            // there instead of taking them out of the sum.
            pg_ticks += ticks + num(13) + num(14);
        } else if num(1) == u64::from(pg) {
            pg_ticks += ticks;
        }
    }
    Some((node_ticks as f64 / hz, pg_ticks as f64 / hz))
}

fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => 0.0,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// The 1-minute load average, for the record.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}

async fn provision(
    client: &awc::Client,
    args: &FairArgs,
    admin: &str,
    verifier: &TokenVerifier,
    slug: &str,
) -> anyhow::Result<Tenant> {
    let owner = json!({ "email": format!("owner@{slug}.example"), "display_name": "Owner" });
    let body = json!({ "slug": slug, "name": slug, "home_region": "us-east1", "plan": "pro",
                       "owner": owner });
    let tenant = call(
        client,
        "POST",
        &format!("{}/v1/tenants", args.base),
        admin,
        Some(body),
    )
    .await?;
    let tid: uuid::Uuid = tenant["id"].as_str().context("tenant id")?.parse()?;
    let owner = tenant["owner"]["id"]
        .as_str()
        .context("owner id")?
        .to_owned();
    let token = verifier.issue(owner.clone(), Some(tid), Role::Owner, 3600 * 4)?;
    let channel = call(
        client,
        "POST",
        &format!("{}/v1/channels", args.base),
        &token,
        Some(json!({ "name": "general" })),
    )
    .await?;
    let channel = channel["id"].as_str().context("channel id")?.to_owned();
    Ok(Tenant {
        id: tid,
        token,
        owner,
        channel,
    })
}

/// Loads the noisy tenant's messages with psql (the API would take minutes):
/// six random words of a 50,000-word vocabulary and `update` in every one.
fn load(args: &FairArgs, noisy: &Tenant) -> anyhow::Result<()> {
    let tenant = noisy.id;
    let sql = format!(
        "INSERT INTO messages (tenant_id, id, home_region, channel_id, author_id, body, created_at)
         SELECT '{tenant}', gen_random_uuid(), 'us-east1', '{c}', '{a}',
                concat_ws(' ', 'status update',
                          'w' || (random()*50000)::int, 'w' || (random()*50000)::int,
                          'w' || (random()*50000)::int, 'w' || (random()*50000)::int),
                now() - g * interval '1 second'
         FROM generate_series(1, {n}) g",
        c = noisy.channel,
        a = noisy.owner,
        n = args.noisy_messages
    );
    let status = std::process::Command::new(&args.psql)
        .args(["-q", "-v", "ON_ERROR_STOP=1", &args.pg, "-c", &sql])
        // A separate -c: VACUUM cannot run in the INSERT's transaction.
        .args(["-c", "VACUUM ANALYZE messages"])
        .status()?;
    anyhow::ensure!(status.success(), "psql failed: {status}");
    Ok(())
}

/// One phase: the quiet tenants for `seconds`, with the noisy tenant's workers
/// (on their own thread and event loop) when given. Returns the quiet summary
/// and the noisy tenant's, per kind of work, and the CPU the node and
/// PostgreSQL used per second of the phase (cores), when their pids are given.
async fn phase(
    client: &awc::Client,
    args: &FairArgs,
    quiet: Rc<Vec<Tenant>>,
    noisy: Option<&Tenant>,
) -> (
    Summary,
    Option<serde_json::Value>,
    Option<serde_json::Value>,
) {
    let cpu_before = cpu_seconds(args);
    let started = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let noisy_thread = noisy.map(|t| {
        let (base, token, channel) = (args.base.clone(), t.token.clone(), t.channel.clone());
        // Each writer's interval when the writers are paced.
        let writer_every = (args.writer_rate > 0)
            .then(|| Duration::from_secs_f64(args.writers as f64 / f64::from(args.writer_rate)));
        let mut kinds = vec![Work::Search; args.searchers];
        kinds.extend(vec![Work::BigPage; args.big_pages]);
        kinds.extend(vec![Work::Write; args.writers]);
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let client = awc::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .finish();
                let samples: [Rc<RefCell<Samples>>; 3] = Default::default();
                let workers: Vec<_> = kinds
                    .into_iter()
                    .map(|kind| {
                        let samples = samples[kind as usize].clone();
                        let (client, base, token, channel) =
                            (client.clone(), base.clone(), token.clone(), channel.clone());
                        actix_rt::spawn(async move {
                            let mut n = 0u64;
                            let mut pace = writer_every
                                .filter(|_| kind == Work::Write)
                                .map(actix_rt::time::interval);
                            while Instant::now() < deadline {
                                if let Some(pace) = pace.as_mut() {
                                    pace.tick().await;
                                }
                                n += 1;
                                let started = Instant::now();
                                let (status, retry) =
                                    noisy_request(&client, &base, &token, &channel, kind, n).await;
                                samples.borrow_mut().record(status, started.elapsed());
                                if let Some(retry) = retry {
                                    // Never past the phase's end: the phase's CPU
                                    // is read when its quiet readers stop.
                                    let left = deadline.saturating_duration_since(Instant::now());
                                    actix_rt::time::sleep(retry.min(left)).await;
                                }
                            }
                        })
                    })
                    .collect();
                for w in workers {
                    let _ = w.await;
                }
                json!({ "search": samples[0].borrow().summary(),
                        "big_page": samples[1].borrow().summary(),
                        "write": samples[2].borrow().summary() })
            })
        })
    });
    let quiet_samples = Rc::new(RefCell::new(Samples::default()));
    let mut generators = Vec::new();
    for t in quiet.iter() {
        let url = format!("{}/v1/channels/{}/messages?limit=50", args.base, t.channel);
        let (client, token, samples) = (client.clone(), t.token.clone(), quiet_samples.clone());
        let rate = args.quiet_rate;
        generators.push(actix_rt::spawn(async move {
            let mut ticker = (rate > 0)
                .then(|| actix_rt::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate))));
            while Instant::now() < deadline {
                if let Some(ticker) = ticker.as_mut() {
                    ticker.tick().await;
                }
                let started = Instant::now();
                let status = get(&client, &url, &token).await.0;
                samples.borrow_mut().record(status, started.elapsed());
            }
        }));
    }
    for g in generators {
        let _ = g.await;
    }
    // Read at the phase's end, before waiting for the noisy thread: its last
    // requests may still run (a search up to its timeout), and counting that wait
    // in `elapsed` made the phase's cores look lower than they were.
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_before.zip(cpu_seconds(args)).map(|((n0, p0), (n1, p1))| {
        json!({ "node_cores": (n1 - n0) / elapsed, "pg_cores": (p1 - p0) / elapsed })
    });
    let noisy_summary = noisy_thread.and_then(|t| t.join().ok());
    // Let the database settle between phases (autovacuum of the writes, etc.).
    actix_rt::time::sleep(Duration::from_secs(2)).await;
    let summary = quiet_samples.borrow().summary();
    (summary, noisy_summary, cpu)
}

async fn noisy_request(
    client: &awc::Client,
    base: &str,
    token: &str,
    channel: &str,
    kind: Work,
    n: u64,
) -> (u16, Option<Duration>) {
    match kind {
        Work::Search => {
            get(
                client,
                &format!("{base}/v1/search?q=update&limit=20"),
                token,
            )
            .await
        }
        Work::BigPage => {
            get(
                client,
                &format!("{base}/v1/channels/{channel}/messages?limit=200"),
                token,
            )
            .await
        }
        Work::Write => {
            let send = client
                .post(format!("{base}/v1/channels/{channel}/messages"))
                .insert_header(("Authorization", format!("Bearer {token}")))
                .send_json(&json!({ "body": format!("status update number {n} from a writer") }));
            answer(send).await
        }
    }
}

async fn get(client: &awc::Client, url: &str, token: &str) -> (u16, Option<Duration>) {
    let send = client
        .get(url)
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send();
    answer(send).await
}

/// The status, and how long to wait before the next request when refused.
async fn answer(send: awc::SendClientRequest) -> (u16, Option<Duration>) {
    match send.await {
        Ok(mut response) => {
            let _ = response.body().limit(1 << 22).await;
            let status = response.status().as_u16();
            let retry = (status == 429 || status == 503).then(|| {
                let secs = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1);
                Duration::from_secs(secs)
            });
            (status, retry)
        }
        Err(_) => (599, Some(Duration::from_millis(100))),
    }
}
