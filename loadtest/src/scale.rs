//! `loadtest scale`: provisions many tenants through `POST /v1/tenants` with N
//! concurrent provisioners and reports per-tenant latency, throughput and the
//! node's memory (VmRSS/VmHWM from `/proc/<pid>/status`) before provisioning,
//! after it, and after every tenant has been resolved once by a request carrying
//! that tenant's own token (`GET /v1/tenants/{id}`).
//!
//! The node finds a tenant through its directory cache, which `POST /v1/tenants`
//! fills on commit and a start-up load fills from the database; so after
//! provisioning every tenant is already cached, and the resolve phase adds the
//! per-request state (verified-token cache, limiter state) on top.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use meridian::auth::{KeySet, Role, TokenVerifier};
use meridian::config::AuthSettings;
use serde::Serialize;
use serde_json::{Value, json};

pub(crate) mod procmem;

use crate::stats::{Samples, Summary, percentile};

#[derive(clap::Args, Clone)]
pub struct ScaleArgs {
    /// The node's base URL.
    #[arg(long, default_value = "http://127.0.0.11:8080")]
    base: String,
    /// The key set the node verifies with (`<state-dir>/keys.json` under `meridian dev`).
    #[arg(long)]
    keys: PathBuf,
    /// Tenants to provision (0: only report the node's memory).
    #[arg(long, default_value_t = 100_000)]
    tenants: usize,
    /// Concurrent provisioners.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// The node's process id; by default, the process listening on `--base`'s address.
    #[arg(long)]
    pid: Option<u32>,
    /// Skip the phase that resolves every tenant with its own token.
    #[arg(long)]
    no_resolve: bool,
    /// Where to write the JSON results.
    #[arg(long, default_value = "loadtest/results/scale.json")]
    out: PathBuf,
}

#[derive(Serialize, Clone, Copy, Debug)]
struct Memory {
    rss_kib: u64,
    hwm_kib: u64,
}

#[derive(Serialize)]
struct Latency {
    #[serde(flatten)]
    summary: Summary,
    p95_ms: f64,
    per_second: f64,
    seconds: f64,
}

/// One created tenant: what the resolve phase needs.
struct Created {
    id: String,
    owner: String,
}

pub async fn scale(args: ScaleArgs) -> anyhow::Result<()> {
    let verifier = TokenVerifier::new(KeySet::load(&args.keys)?, &AuthSettings::default_local());
    let pid = match args.pid {
        Some(pid) => pid,
        None => procmem::listening_pid(&args.base)?,
    };
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let admin = verifier.issue("loadtest-scale".into(), None, Role::PlatformAdmin, 86_400)?;
    let before = memory(pid)?;
    println!("node pid {pid}: before {}", show(before));
    if args.tenants == 0 {
        let report = json!({ "pid": pid, "memory": before });
        return write(&args, &report);
    }

    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    println!(
        "provisioning {} tenants with {} concurrent provisioners",
        args.tenants, args.concurrency
    );
    let created = Rc::new(RefCell::new(Vec::with_capacity(args.tenants)));
    let first_error = Rc::new(RefCell::new(None::<String>));
    let provisioned = {
        let (admin, base, run) = (admin.clone(), args.base.clone(), run);
        let (created, first_error) = (created.clone(), first_error.clone());
        drive(&args, move |i| {
            let (client, admin) = (client.clone(), admin.clone());
            let (created, first_error) = (created.clone(), first_error.clone());
            let url = format!("{base}/v1/tenants");
            let slug = format!("scale-{run}-{i}");
            async move {
                let owner =
                    json!({ "email": format!("owner@{slug}.example"), "display_name": "Owner" });
                let body = json!({ "slug": slug, "name": slug, "home_region": "us-east1",
                                   "plan": "free", "owner": owner });
                let (status, value) = send(&client, "POST", &url, &admin, Some(body)).await;
                if let (Some(id), Some(owner)) =
                    (value["id"].as_str(), value["owner"]["id"].as_str())
                {
                    created.borrow_mut().push(Created {
                        id: id.to_owned(),
                        owner: owner.to_owned(),
                    });
                } else {
                    first_error
                        .borrow_mut()
                        .get_or_insert_with(|| format!("{status} {value}"));
                }
                status
            }
        })
        .await
    };
    let after_provisioning = memory(pid)?;
    print_row("provision", &provisioned);
    if let Some(error) = first_error.take() {
        println!("first failed provisioning: {error}");
    }
    if provisioned.summary.error_rate >= 1.0 {
        bail!("every provisioning request failed (wrong --keys or --base?)");
    }
    println!("after provisioning: {}", show(after_provisioning));

    let created = Rc::new(created.take());
    let mut resolved = None;
    let mut after_resolving = None;
    if !args.no_resolve && !created.is_empty() {
        println!(
            "resolving each of {} tenants with its own token",
            created.len()
        );
        let tokens: Rc<Vec<String>> = Rc::new(
            created
                .iter()
                .map(|t| {
                    let tid = t.id.parse().context("tenant id is not a UUID")?;
                    Ok(verifier.issue(t.owner.clone(), Some(tid), Role::Owner, 86_400)?)
                })
                .collect::<anyhow::Result<_>>()?,
        );
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish();
        let base = args.base.clone();
        let phase = ScaleArgs {
            tenants: created.len(),
            ..args.clone()
        };
        let summary = drive(&phase, move |i| {
            let url = format!("{base}/v1/tenants/{}", created[i].id);
            let (client, token) = (client.clone(), tokens[i].clone());
            async move { send(&client, "GET", &url, &token, None).await.0 }
        })
        .await;
        print_row("resolve", &summary);
        let memory = memory(pid)?;
        println!("after resolving: {}", show(memory));
        resolved = Some(summary);
        after_resolving = Some(memory);
    }

    let report = json!({
        "tenants": args.tenants, "concurrency": args.concurrency, "pid": pid,
        "provision": provisioned, "resolve": resolved,
        "memory": { "before": before, "after_provisioning": after_provisioning,
                    "after_resolving": after_resolving },
        "rss_delta_provisioning_mib": mib(after_provisioning.rss_kib, before.rss_kib),
        "rss_delta_resolving_mib": after_resolving.map(|m| mib(m.rss_kib, before.rss_kib)),
    });
    write(&args, &report)
}

fn write(args: &ScaleArgs, report: &Value) -> anyhow::Result<()> {
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(report)?)?;
    println!("results: {}", args.out.display());
    Ok(())
}

fn mib(after_kib: u64, before_kib: u64) -> f64 {
    (after_kib as f64 - before_kib as f64) / 1024.0
}

fn memory(pid: u32) -> anyhow::Result<Memory> {
    let (rss_kib, hwm_kib) = procmem::rss_hwm(pid)?;
    Ok(Memory { rss_kib, hwm_kib })
}

fn show(m: Memory) -> String {
    format!(
        "VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        m.rss_kib as f64 / 1024.0,
        m.hwm_kib as f64 / 1024.0
    )
}

fn print_row(name: &str, l: &Latency) {
    let s = &l.summary;
    println!(
        "{name:<10} {:>7} in {:>6.1} s ({:>6.0}/s)  p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  \
         max {:.2} ms  errors {:.3}%  {:?}",
        s.requests,
        l.seconds,
        l.per_second,
        s.p50_ms,
        l.p95_ms,
        s.p99_ms,
        s.max_ms,
        s.error_rate * 100.0,
        s.statuses
    );
}

/// Runs `call(i)` for every `i < args.tenants`, `args.concurrency` at a time (closed
/// loop: each worker sends its next request when the previous one answered).
async fn drive<F, Fut>(args: &ScaleArgs, call: F) -> Latency
where
    F: Fn(usize) -> Fut + 'static,
    Fut: std::future::Future<Output = u16> + 'static,
{
    let total = args.tenants;
    let next = Rc::new(Cell::new(0usize));
    let samples = Rc::new(RefCell::new(Samples::default()));
    let micros = Rc::new(RefCell::new(Vec::with_capacity(total)));
    let call = Rc::new(call);
    let started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency.max(1))
        .map(|_| {
            let (next, samples, micros, call) =
                (next.clone(), samples.clone(), micros.clone(), call.clone());
            actix_rt::spawn(async move {
                loop {
                    let i = next.get();
                    if i >= total {
                        break;
                    }
                    next.set(i + 1);
                    let sent = Instant::now();
                    let status = call(i).await;
                    let took = sent.elapsed();
                    samples.borrow_mut().record(status, took);
                    micros.borrow_mut().push(took.as_micros() as u64);
                    if (i + 1) % 10_000 == 0 {
                        println!("  {} done, {:.0} s", i + 1, started.elapsed().as_secs_f64());
                    }
                }
            })
        })
        .collect();
    for worker in workers {
        let _ = worker.await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let mut sorted = micros.take();
    sorted.sort_unstable();
    let summary = samples.borrow().summary();
    Latency {
        per_second: summary.requests as f64 / seconds,
        p95_ms: percentile(&sorted, 95.0) as f64 / 1000.0,
        summary,
        seconds,
    }
}

/// Sends one request; a transport failure counts as status 599.
async fn send(
    client: &awc::Client,
    method: &str,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let Ok(method) = awc::http::Method::from_bytes(method.as_bytes()) else {
        return (599, Value::Null);
    };
    let request = client
        .request(method, url)
        .insert_header(("Authorization", format!("Bearer {token}")));
    let sent = match body {
        Some(body) => request.send_json(&body).await,
        None => request.send().await,
    };
    match sent {
        Ok(mut response) => {
            let value = response.json().limit(1 << 20).await.unwrap_or(Value::Null);
            (response.status().as_u16(), value)
        }
        Err(_) => (599, Value::Null),
    }
}
