//! `loadtest`: load generators and benchmarks for Meridian (see loadtest/README.md).
//!
//! `global`: virtual users per location through the GeoDNS, with checks; `drill`:
//! the same with one region taken out; `scale`: provisioning 100,000 tenants and
//! the node's memory; `fair`: the noisy neighbour with expensive but allowed work
//! (loadtest/noisy-neighbour.sh cost); `noisy`: the noisy-neighbour benchmark.
//! Ten (by default) tenants send a steady, open-loop stream of message-page
//! reads; one more tenant sends 20× its rate limit. The quiet tenants' latency
//! and errors are compared between a run without and a run with the noisy
//! tenant.
#![forbid(unsafe_code)]

mod checks;
mod drill;
mod fair;
mod global;
mod net;
mod report;
mod scale;
mod stats;
mod summary;
mod switch;
mod users;
mod world;

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use meridian::auth::{KeySet, Role, TokenVerifier};
use meridian::config::AuthSettings;
use serde_json::{Value, json};
use stats::{Samples, Summary};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Noisy-neighbour benchmark against a running node.
    Noisy(NoisyArgs),
    /// Noisy neighbour with expensive but allowed work (searches, big pages,
    /// writes); median of several runs.
    Fair(fair::FairArgs),
    /// Global user mix: users in every region's location, through the GeoDNS.
    Global(global::GlobalArgs),
    /// Failover drill: the global mix with one region drained or killed midway.
    Drill(drill::DrillArgs),
    /// Provision many tenants; latency, throughput and the node's memory.
    Scale(scale::ScaleArgs),
}

#[derive(clap::Args, Clone)]
struct NoisyArgs {
    /// The node's base URL.
    #[arg(long, default_value = "http://127.0.0.11:8080")]
    base: String,
    /// The key set the node verifies with (`<state-dir>/keys.json` under `meridian dev`).
    #[arg(long)]
    keys: PathBuf,
    #[arg(long, default_value_t = 10)]
    tenants: usize,
    /// Requests per second per quiet tenant.
    #[arg(long, default_value_t = 20)]
    rate: u32,
    /// The noisy tenant's rate limit (requests per second, and burst).
    #[arg(long, default_value_t = 50)]
    noisy_limit: u32,
    /// How many times its limit the noisy tenant sends.
    #[arg(long, default_value_t = 20)]
    factor: u32,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Where to write the JSON results.
    #[arg(long, default_value = "noisy-neighbour.json")]
    out: PathBuf,
}

struct Target {
    token: String,
    page_url: String,
}

#[actix_rt::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Noisy(args) => noisy(args).await,
        Command::Fair(args) => fair::fair(args).await,
        Command::Global(args) => global::global(args).await,
        Command::Drill(args) => drill::drill(args).await,
        Command::Scale(args) => scale::scale(args).await,
    }
}

async fn noisy(args: NoisyArgs) -> anyhow::Result<()> {
    let verifier = TokenVerifier::new(KeySet::load(&args.keys)?, &AuthSettings::default_local());
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let admin = verifier.issue("loadtest".into(), None, Role::PlatformAdmin, 3600)?;
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut quiet = Vec::new();
    for i in 0..args.tenants {
        quiet.push(
            setup_tenant(
                &client,
                &args.base,
                &admin,
                &verifier,
                &format!("quiet-{run}-{i}"),
                None,
            )
            .await?,
        );
    }
    let limit = json!({ "requests_per_second": args.noisy_limit, "burst": args.noisy_limit });
    let noisy = setup_tenant(
        &client,
        &args.base,
        &admin,
        &verifier,
        &format!("noisy-{run}"),
        Some(limit),
    )
    .await?;
    let quiet = Rc::new(quiet);

    println!(
        "baseline: {} quiet tenants × {} req/s for {} s",
        args.tenants, args.rate, args.seconds
    );
    let (baseline, _) = phase(&client, &args, quiet.clone(), None).await;
    let noisy_rate = args.noisy_limit * args.factor;
    println!(
        "with noisy tenant at {noisy_rate} req/s (limit {})",
        args.noisy_limit
    );
    let (contended, noisy_summary) = phase(&client, &args, quiet, Some((&noisy, noisy_rate))).await;

    let report = json!({
        "quiet_tenants": args.tenants, "quiet_rate_per_tenant": args.rate, "seconds": args.seconds,
        "noisy_limit": args.noisy_limit, "noisy_rate": noisy_rate,
        "baseline": baseline, "with_noisy": contended, "noisy": noisy_summary,
        "p50_ratio": contended.p50_ms / baseline.p50_ms,
        "p99_ratio": contended.p99_ms / baseline.p99_ms,
    });
    print_row("quiet, alone", &baseline);
    print_row("quiet, noisy on", &contended);
    if let Some(n) = &noisy_summary {
        print_row("noisy tenant", n);
    }
    println!(
        "p50 ratio {:.2}, p99 ratio {:.2}",
        report["p50_ratio"].as_f64().unwrap_or(0.0),
        report["p99_ratio"].as_f64().unwrap_or(0.0)
    );
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)?)?;
    println!("results: {}", args.out.display());
    Ok(())
}

fn print_row(name: &str, s: &Summary) {
    println!(
        "{name:<18} requests {:>7}  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  \
         errors {:>6.2}%  {:?}",
        s.requests,
        s.p50_ms,
        s.p99_ms,
        s.max_ms,
        s.error_rate * 100.0,
        s.statuses
    );
}

async fn setup_tenant(
    client: &awc::Client,
    base: &str,
    admin: &str,
    verifier: &TokenVerifier,
    slug: &str,
    limits: Option<Value>,
) -> anyhow::Result<Target> {
    let owner = json!({ "email": format!("owner@{slug}.example"), "display_name": "Owner" });
    let body = json!({ "slug": slug, "name": slug, "home_region": "us-east1", "plan": "pro",
                       "owner": owner });
    let tenant = call(
        client,
        "POST",
        &format!("{base}/v1/tenants"),
        admin,
        Some(body),
    )
    .await?;
    let tid: uuid::Uuid = tenant["id"].as_str().context("tenant id")?.parse()?;
    let owner = tenant["owner"]["id"]
        .as_str()
        .context("owner id")?
        .to_owned();
    let token = verifier.issue(owner, Some(tid), Role::Owner, 3600)?;
    let channel = call(
        client,
        "POST",
        &format!("{base}/v1/channels"),
        &token,
        Some(json!({ "name": "general" })),
    )
    .await?;
    let channel = channel["id"].as_str().context("channel id")?.to_owned();
    let messages = format!("{base}/v1/channels/{channel}/messages");
    for i in 0..50 {
        let text = format!("message {i} of {slug}: an ordinary chat line of ordinary length");
        call(
            client,
            "POST",
            &messages,
            &token,
            Some(json!({ "body": text })),
        )
        .await?;
    }
    // Limits are set after seeding, which would otherwise hit them.
    if let Some(limits) = limits {
        call(
            client,
            "PATCH",
            &format!("{base}/v1/tenants/{tid}"),
            admin,
            Some(json!({ "limits": limits })),
        )
        .await?;
    }
    Ok(Target {
        token,
        page_url: format!("{messages}?limit=50"),
    })
}

async fn call(
    client: &awc::Client,
    method: &str,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let request = client
        .request(awc::http::Method::from_bytes(method.as_bytes())?, url)
        .insert_header(("Authorization", format!("Bearer {token}")));
    let mut response = match body {
        Some(body) => request.send_json(&body).await,
        None => request.send().await,
    }
    .map_err(|e| anyhow::anyhow!("{method} {url}: {e}"))?;
    let value: Value = response.json().limit(1 << 20).await.unwrap_or(Value::Null);
    if !response.status().is_success() {
        bail!("{method} {url}: {} {value}", response.status());
    }
    Ok(value)
}

/// Runs the open-loop load for `args.seconds`: each quiet tenant at `args.rate`,
/// the noisy one (if any) at its rate. Returns the quiet and noisy summaries.
async fn phase(
    client: &awc::Client,
    args: &NoisyArgs,
    quiet: Rc<Vec<Target>>,
    noisy: Option<(&Target, u32)>,
) -> (Summary, Option<Summary>) {
    let quiet_samples = Rc::new(RefCell::new(Samples::default()));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut generators = Vec::new();
    for i in 0..quiet.len() {
        let (quiet, samples) = (quiet.clone(), quiet_samples.clone());
        generators.push(actix_rt::spawn(generate(
            client.clone(),
            args.rate,
            deadline,
            samples,
            move || {
                let t = &quiet[i];
                (t.page_url.clone(), t.token.clone())
            },
        )));
    }
    // The noisy tenant gets a thread (and event loop) of its own, so its traffic
    // cannot delay the quiet tenants' requests inside the load generator itself.
    let noisy_thread = noisy.map(|(target, rate)| {
        let (url, token) = (target.page_url.clone(), target.token.clone());
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let samples = Rc::new(RefCell::new(Samples::default()));
                let client = awc::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .finish();
                generate(client, rate, deadline, samples.clone(), move || {
                    (url.clone(), token.clone())
                })
                .await;
                actix_rt::time::sleep(Duration::from_secs(2)).await;
                samples.borrow().summary()
            })
        })
    });
    for generator in generators {
        let _ = generator.await;
    }
    // Let requests still in flight finish.
    actix_rt::time::sleep(Duration::from_secs(2)).await;
    let quiet_summary = quiet_samples.borrow().summary();
    let noisy_summary = noisy_thread.and_then(|thread| thread.join().ok());
    (quiet_summary, noisy_summary)
}

/// Sends one request every 1/`rate` s until `deadline`, without waiting for answers
/// (open loop: a slow server does not slow the offered load down).
async fn generate(
    client: awc::Client,
    rate: u32,
    deadline: Instant,
    samples: Rc<RefCell<Samples>>,
    target: impl Fn() -> (String, String),
) {
    // Missed ticks fire at once (tokio's default), keeping the offered rate.
    let mut ticker =
        actix_rt::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate.max(1))));
    while Instant::now() < deadline {
        ticker.tick().await;
        let (url, token) = target();
        let (client, samples) = (client.clone(), samples.clone());
        actix_rt::spawn(async move {
            let started = Instant::now();
            let outcome = client
                .get(url)
                .insert_header(("Authorization", format!("Bearer {token}")))
                .send()
                .await;
            let status = match outcome {
                Ok(mut response) => {
                    let _ = response.body().limit(1 << 20).await;
                    response.status().as_u16()
                }
                Err(_) => 599,
            };
            samples.borrow_mut().record(status, started.elapsed());
        });
    }
}
