//! `loadtest drill`: the global mix, with one region taken out after a warm-up
//! (drained through the admin API, or its node process stopped or killed).
//! Measures how long until the GeoDNS stops answering that region to its own
//! location, how long until that location's traffic is served elsewhere, the
//! errors during the switch, and that no acknowledged write was lost. The
//! figures are computed in `switch`.

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use awc::http::Method;
use meridian::auth::Role;
use serde_json::{Value, json};

use crate::global::{self, GlobalArgs};
use crate::net;
use crate::switch::{dns_moved, ms, switch};
use crate::users::Routing;
use crate::world::World;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq)]
pub enum Action {
    /// `POST /v1/regions/{region}/drain {"force": true}` (what
    /// `meridian region drain --force` does).
    Drain,
    /// Signal the region's node process (`--pid`, `--signal`).
    Kill,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq)]
pub enum Signal {
    /// SIGSTOP: the node hangs (a frozen machine); SIGCONT at the end.
    Stop,
    /// SIGKILL: the node is gone (under `meridian dev` this stops all of dev).
    Kill,
}

#[derive(clap::Args, Clone, Debug)]
pub struct DrillArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The region taken out.
    #[arg(long, default_value = "europe-west1")]
    pub region: String,
    #[arg(long, value_enum, default_value = "drain")]
    pub action: Action,
    /// The node process of `--region` (with `--action kill`).
    #[arg(long, required_if_eq("action", "kill"))]
    pub pid: Option<u32>,
    #[arg(long, value_enum, default_value = "stop")]
    pub signal: Signal,
    /// Seconds of normal load before the region is taken out.
    #[arg(long, default_value_t = 10)]
    pub warmup: u64,
    /// Leave the region out at the end (default: undrain / SIGCONT).
    #[arg(long)]
    pub no_restore: bool,
    /// Node the drain is sent to (default: another region's node).
    #[arg(long)]
    pub admin_node: Option<String>,
}

async fn admin_call(world: &World, node: &str, path: &str) -> anyhow::Result<Value> {
    let token = world
        .verifier
        .issue("loadtest-drill".into(), None, Role::PlatformAdmin, 600)?;
    let client = net::client(IpAddr::from([127, 0, 0, 1]), Duration::from_secs(30));
    let url = format!("{}{path}", node.trim_end_matches('/'));
    let body = json!({"force": true});
    let answer = net::send(
        &client,
        &world.regions_by_addr,
        Method::POST,
        url.clone(),
        &token,
        Some(&body),
    )
    .await;
    if answer.status != 200 {
        bail!(
            "POST {url} answered {} {:?} {}",
            answer.status,
            answer.code,
            answer.body
        );
    }
    Ok(answer.body)
}

fn signal(pid: u32, name: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .status()
        .context("running kill")?;
    if !status.success() {
        bail!("kill -s {name} {pid} failed ({status})");
    }
    Ok(())
}

/// Polls the GeoDNS from the region's location every 100 ms until `deadline`.
async fn poll_dns(
    server: SocketAddr,
    source: IpAddr,
    name: String,
    started: Instant,
    deadline: Instant,
) -> Vec<(u64, Option<IpAddr>)> {
    let Ok(resolver) = net::resolver(server, source) else {
        return Vec::new();
    };
    let mut samples = Vec::new();
    let mut ticker = actix_rt::time::interval(Duration::from_millis(100));
    while Instant::now() < deadline {
        ticker.tick().await;
        let at = started.elapsed().as_micros() as u64;
        samples.push((
            at,
            net::lookup(&resolver, &name).await.ok().map(|(ip, _)| ip),
        ));
    }
    samples
}

pub async fn drill(args: DrillArgs) -> anyhow::Result<()> {
    let g = &args.global;
    if args.warmup >= g.seconds {
        bail!(
            "--warmup ({}) must be shorter than --seconds ({})",
            args.warmup,
            g.seconds
        );
    }
    let world = Rc::new(g.provision().await?);
    let (routing, label) = g.routing(&world)?;
    let (l, location) = world
        .locations
        .iter()
        .enumerate()
        .find(|(_, l)| l.region == args.region)
        .with_context(|| format!("--region {}: not a region in play", args.region))?;
    let other = world
        .locations
        .iter()
        .find(|o| o.region != args.region)
        .context("a drill needs at least two regions")?;
    let admin_node = args
        .admin_node
        .clone()
        .unwrap_or_else(|| format!("http://{}", other.node));
    let what = match (args.action, args.signal) {
        (Action::Drain, _) => "drain",
        (Action::Kill, Signal::Stop) => "SIGSTOP",
        (Action::Kill, Signal::Kill) => "SIGKILL",
    };
    eprintln!(
        "drill: {label}; {what} {} after {} s of {} s",
        args.region, args.warmup, g.seconds
    );
    let load = global::start(g, world.clone(), routing.clone());
    let run = load.run.clone();
    let dns = match &routing {
        Routing::Dns { server, name, .. } => {
            let source = net::source_in(&location.subnet, 250)?;
            Some(actix_rt::spawn(poll_dns(
                *server,
                source,
                name.clone(),
                run.started,
                run.deadline,
            )))
        }
        _ => None,
    };
    actix_rt::time::sleep(Duration::from_secs(args.warmup)).await;
    let action_us = run.started.elapsed().as_micros() as u64;
    match args.action {
        Action::Drain => {
            admin_call(
                &world,
                &admin_node,
                &format!("/v1/regions/{}/drain", args.region),
            )
            .await?;
        }
        Action::Kill => {
            let pid = args.pid.context("--action kill needs --pid")?;
            signal(
                pid,
                if args.signal == Signal::Stop {
                    "STOP"
                } else {
                    "KILL"
                },
            )?;
        }
    }
    eprintln!(
        "drill: {} taken out at {:.1} s",
        args.region,
        ms(action_us) / 1000.0
    );
    let seconds = load.finish().await;
    let samples = match dns {
        Some(handle) => handle.await.unwrap_or_default(),
        None => Vec::new(),
    };
    let mut restored = "not restored (--no-restore)".to_owned();
    if !args.no_restore {
        restored = match (args.action, args.signal, args.pid) {
            (Action::Drain, _, _) => {
                admin_call(
                    &world,
                    &admin_node,
                    &format!("/v1/regions/{}/undrain", args.region),
                )
                .await?;
                "undrained".into()
            }
            (Action::Kill, Signal::Stop, Some(pid)) => {
                signal(pid, "CONT")?;
                "SIGCONT sent".into()
            }
            _ => "killed: not restorable from here".into(),
        };
    }
    let shared = run.shared.take();
    let mut violations = shared.violations.clone();
    let writes = global::read_back(&world, &shared, other.node, &mut violations).await?;
    let mut outcome =
        crate::summary::summarize(g, &world, &label, &shared, &violations, &writes, seconds);
    let sw = switch(&shared.records, action_us, &location.region, &args.region);
    let first_answer = samples
        .iter()
        .find(|(t, a)| *t < action_us && a.is_some())
        .and_then(|(_, a)| *a);
    let moved = dns_moved(&samples, action_us, location.node.ip());
    let fmt = |v: Option<f64>| v.map_or("never".to_owned(), |v| format!("{v:.0} ms"));
    let dns_line = match &routing {
        Routing::Dns { .. } => format!(
            "DNS answer for {}'s location moved away after {} \
             (answer before: {first_answer:?}, {} polls)",
            args.region,
            fmt(moved),
            samples.len()
        ),
        _ => "DNS: not used (no GeoDNS in this run)".into(),
    };
    outcome.human.push_str(&format!(
        "\ndrill: {what} {} at {:.1} s ({restored})\n{dns_line}\n\
         traffic of {} homed tenants from that location served elsewhere after {}\n\
         last success served by {} after {}; last error in that location after {}\n\
         errors after the action: {:?}\n  in that location: {:?}\n",
        args.region,
        ms(action_us) / 1000.0,
        args.region,
        fmt(sw.served_elsewhere_ms),
        args.region,
        fmt(sw.last_served_by_region_ms),
        fmt(sw.last_error_in_location_ms),
        sw.errors_after_action,
        sw.errors_after_action_in_location,
    ));
    outcome
        .human
        .push_str("second  requests  errors  served by\n");
    for s in &sw.timeline {
        outcome.human.push_str(&format!(
            "{:>6}  {:>8}  {:>6}  {:?}\n",
            s.second, s.requests, s.errors, s.served
        ));
    }
    let signal = (args.action == Action::Kill).then(|| format!("{:?}", args.signal).to_lowercase());
    outcome.json["drill"] = json!({
        "region": args.region, "location": l, "action": format!("{:?}", args.action).to_lowercase(),
        "signal": signal,
        "action_at_s": ms(action_us) / 1000.0, "restored": restored,
        "dns_moved_ms": moved, "dns_answer_before": first_answer.map(|ip| ip.to_string()),
        "dns_polls": samples.len(), "switch": sw,
    });
    outcome.finish(&g.out, "drill")
}
