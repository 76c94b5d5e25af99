//! `loadtest global`: virtual users in every region's location run a mix of
//! page reads, writes and searches against the API as found through the GeoDNS
//! (or one fixed region, or each location's own node), checking isolation,
//! residency and, at the end, that no acknowledged write was lost.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use awc::http::Method;
use serde_json::Value;

use crate::checks::{self, Violations, WriteCheck};
use crate::net;
use crate::summary;
use crate::users::{self, Mix, Routing, Run, Shared};
use crate::world::{self, World};

#[derive(clap::Args, Clone, Debug)]
pub struct GlobalArgs {
    /// The key set the nodes verify with (`<state-dir>/keys.json` under `meridian dev`).
    #[arg(long, default_value = ".meridian/keys.json")]
    pub keys: PathBuf,
    #[arg(long, default_value = "regions")]
    pub regions_dir: PathBuf,
    /// Only these regions (as started by `meridian dev --regions …`).
    #[arg(long, value_delimiter = ',')]
    pub regions: Option<Vec<String>>,
    #[arg(long, default_value_t = 4)]
    pub users_per_location: usize,
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Tenants, homed round-robin over the regions.
    #[arg(long, default_value_t = 8)]
    pub tenants: usize,
    /// How many of them are EU-pinned (residency `{"jurisdiction":"eu"}`, homed in the EU).
    #[arg(long, default_value_t = 2)]
    pub pinned: usize,
    /// Percent of each location's users who belong to a tenant homed in their own
    /// region (a team mostly sits where its data lives); the rest take turns over
    /// all tenants. 0: every user takes turns.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub local_share: u8,
    #[arg(long, default_value = "read=70,write=20,search=10")]
    pub mix: Mix,
    /// Pause of each user between two requests (closed loop).
    #[arg(long, default_value_t = 10)]
    pub think_ms: u64,
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
    /// Messages posted into each tenant's channel before the run.
    #[arg(long, default_value_t = 20)]
    pub seed_messages: usize,
    #[arg(long, default_value = "enterprise")]
    pub plan: String,
    /// The GeoDNS server users query.
    #[arg(long, default_value = "127.0.0.1:5300")]
    pub dns: SocketAddr,
    #[arg(long, default_value = "api.meridian.test")]
    pub api_name: String,
    /// Port of the API at the addresses the GeoDNS answers.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// No DNS: users connect to their own location's region node.
    #[arg(long, conflicts_with_all = ["fixed_region", "target"])]
    pub no_dns: bool,
    /// No DNS: every user connects to this region's node.
    #[arg(long, conflicts_with = "target")]
    pub fixed_region: Option<String>,
    /// No DNS: every user connects to this URL (`http://host:port`).
    #[arg(long)]
    pub target: Option<String>,
    /// Where tenants are provisioned and read back (default: the first region's node).
    #[arg(long)]
    pub setup_node: Option<String>,
    /// Where to write the JSON results.
    #[arg(long, default_value = "global.json")]
    pub out: PathBuf,
}

impl GlobalArgs {
    pub fn routing(&self, world: &World) -> anyhow::Result<(Routing, String)> {
        if self.no_dns {
            return Ok((Routing::OwnRegion, "own-region (no DNS)".into()));
        }
        if let Some(region) = &self.fixed_region {
            let location = world
                .locations
                .iter()
                .find(|l| &l.region == region)
                .with_context(|| format!("--fixed-region {region}: not a region in play"))?;
            return Ok((Routing::Fixed(location.node), format!("fixed {region}")));
        }
        if let Some(target) = &self.target {
            let address = net::authority_of(target)
                .with_context(|| format!("--target `{target}` is not http://ip:port"))?;
            return Ok((Routing::Fixed(address), format!("fixed {target}")));
        }
        Ok((
            Routing::Dns {
                server: self.dns,
                name: self.api_name.clone(),
                port: self.port,
            },
            format!("geodns {} {}", self.dns, self.api_name),
        ))
    }

    pub async fn provision(&self) -> anyhow::Result<World> {
        let shape = world::Shape {
            keys: &self.keys,
            regions_dir: &self.regions_dir,
            only_regions: self.regions.as_deref(),
            tenants: self.tenants,
            pinned: self.pinned,
            local_share: self.local_share,
            users_per_location: self.users_per_location,
            seed_messages: self.seed_messages,
            plan: &self.plan,
        };
        world::provision(&shape, self.setup_node.as_deref()).await
    }
}

/// A started load: wait for it with `finish`.
pub struct Load {
    pub run: Rc<Run>,
    users: Vec<actix_rt::task::JoinHandle<()>>,
    progress: actix_rt::task::JoinHandle<()>,
}

pub fn start(args: &GlobalArgs, world: Rc<World>, routing: Routing) -> Load {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let shared = Rc::new(RefCell::new(Shared::default()));
    let run = Rc::new(Run {
        world: world.clone(),
        routing,
        mix: args.mix,
        think: Duration::from_millis(args.think_ms),
        timeout: Duration::from_millis(args.timeout_ms),
        started,
        deadline,
        shared: shared.clone(),
    });
    let users = (0..world.users.len())
        .map(|i| actix_rt::spawn(users::run_user(run.clone(), i)))
        .collect();
    let progress = actix_rt::spawn(users::progress(shared, started, deadline));
    Load {
        run,
        users,
        progress,
    }
}

impl Load {
    /// Waits for every user; returns the wall time of the load.
    pub async fn finish(self) -> f64 {
        for user in self.users {
            let _ = user.await;
        }
        let _ = self.progress.await;
        self.run.started.elapsed().as_secs_f64()
    }
}

/// Reads every tenant's channel back in full through `node` and compares it with
/// the acknowledged writes; foreign items seen there count as isolation violations.
pub async fn read_back(
    world: &World,
    shared: &Shared,
    node: SocketAddr,
    violations: &mut Violations,
) -> anyhow::Result<WriteCheck> {
    let client = net::client(IpAddr::from([127, 0, 0, 1]), Duration::from_secs(30));
    let mut total = WriteCheck::default();
    for (t, tenant) in world.tenants.iter().enumerate() {
        let mut listed: Vec<String> = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!(
                "http://{node}/v1/channels/{}/messages?limit=200",
                tenant.mark.channel_id
            );
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={}", net::encode(c)));
            }
            let page = page_with_retries(&client, world, &url, &tenant.owner_token).await?;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            for problem in tenant.mark.foreign_items(&items) {
                violations.isolation(problem);
            }
            listed.extend(
                items
                    .iter()
                    .filter_map(|i| i["id"].as_str().map(str::to_owned)),
            );
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
        let acked = world.seeded[t]
            .iter()
            .chain(shared.acked.get(&t).into_iter().flatten())
            .map(String::as_str);
        let check = checks::check_writes(acked, listed.iter().map(String::as_str));
        total.acknowledged += check.acknowledged;
        total.listed += check.listed;
        total.unacknowledged_present += check.unacknowledged_present;
        total.missing.extend(
            check
                .missing
                .into_iter()
                .map(|id| format!("{}/{id}", tenant.id)),
        );
        total.duplicated.extend(
            check
                .duplicated
                .into_iter()
                .map(|id| format!("{}/{id}", tenant.id)),
        );
    }
    Ok(total)
}

async fn page_with_retries(
    client: &awc::Client,
    world: &World,
    url: &str,
    token: &str,
) -> anyhow::Result<Value> {
    let mut last = String::new();
    for _ in 0..10 {
        let answer = net::send(
            client,
            &world.regions_by_addr,
            Method::GET,
            url.into(),
            token,
            None,
        )
        .await;
        if answer.status == 200 {
            return Ok(answer.body);
        }
        last = format!("{} {:?}", answer.status, answer.code);
        actix_rt::time::sleep(Duration::from_secs(1)).await;
    }
    bail!("reading back {url} failed 10 times (last: {last}): the write check cannot be made")
}

pub async fn global(args: GlobalArgs) -> anyhow::Result<()> {
    let world = Rc::new(args.provision().await?);
    let (routing, label) = args.routing(&world)?;
    eprintln!(
        "provisioned {} tenants, {} users; running {label} for {} s",
        world.tenants.len(),
        world.users.len(),
        args.seconds
    );
    let load = start(&args, world.clone(), routing);
    let run = load.run.clone();
    let seconds = load.finish().await;
    let shared = run.shared.take();
    let mut violations = shared.violations.clone();
    let check_node = match &args.setup_node {
        Some(node) => net::authority_of(node).context("--setup-node is not http://ip:port")?,
        None => world.locations[0].node,
    };
    let writes = read_back(&world, &shared, check_node, &mut violations).await?;
    let outcome = summary::summarize(
        &args,
        &world,
        &label,
        &shared,
        &violations,
        &writes,
        seconds,
    );
    outcome.finish(&args.out, "global mix")
}
