//! Virtual users: each picks an operation from the mix (page read, write,
//! search in its tenant's channel), sends it from its own source address to
//! wherever its locator points, records the outcome and checks the answer.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use awc::http::Method;
use serde_json::json;

use crate::checks::{self, Violations};
use crate::net::{self, Locator};
use crate::report::{Op, Record};
use crate::world::World;

/// Weights of the operations (`read=70,write=20,search=10`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mix {
    pub read: u32,
    pub write: u32,
    pub search: u32,
}

impl std::str::FromStr for Mix {
    type Err = anyhow::Error;

    fn from_str(raw: &str) -> anyhow::Result<Self> {
        let mut mix = Mix {
            read: 0,
            write: 0,
            search: 0,
        };
        for part in raw.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .with_context(|| format!("mix part `{part}` is not `name=weight`"))?;
            let weight: u32 = weight
                .trim()
                .parse()
                .with_context(|| format!("mix weight `{weight}` is not a whole number"))?;
            match name.trim() {
                "read" => mix.read = weight,
                "write" => mix.write = weight,
                "search" => mix.search = weight,
                other => bail!("unknown mix operation `{other}` (use read, write, search)"),
            }
        }
        if mix.total() == 0 {
            bail!("the mix `{raw}` has no weight (e.g. read=70,write=20,search=10)");
        }
        Ok(mix)
    }
}

impl Mix {
    pub fn total(&self) -> u32 {
        self.read + self.write + self.search
    }

    /// The operation for a roll in `0..total()`.
    pub fn pick(&self, roll: u32) -> Op {
        if roll < self.read {
            Op::Read
        } else if roll < self.read + self.write {
            Op::Write
        } else {
            Op::Search
        }
    }
}

/// xorshift64*: enough randomness to pick operations, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) % u64::from(n.max(1))) as u32
    }
}

/// What every user adds to while the run goes on.
#[derive(Default)]
pub struct Shared {
    pub records: Vec<Record>,
    pub violations: Violations,
    /// Acknowledged (201) message ids, per tenant.
    pub acked: HashMap<usize, Vec<String>>,
    pub errors: u64,
    pub dns_errors: u64,
}

/// How users find the API.
#[derive(Clone, Debug)]
pub enum Routing {
    /// Ask the GeoDNS at `server` for `name`; connect to the answer on `port`.
    Dns {
        server: SocketAddr,
        name: String,
        port: u16,
    },
    /// Each location's own region's node (no DNS).
    OwnRegion,
    /// Every user to one node.
    Fixed(SocketAddr),
}

pub struct Run {
    pub world: Rc<World>,
    pub routing: Routing,
    pub mix: Mix,
    pub think: Duration,
    pub timeout: Duration,
    pub started: Instant,
    pub deadline: Instant,
    pub shared: Rc<RefCell<Shared>>,
}

impl Run {
    pub fn locator(&self, user: usize) -> anyhow::Result<Locator> {
        let user = &self.world.users[user];
        Ok(match &self.routing {
            Routing::Dns { server, name, port } => Locator::Dns {
                resolver: Box::new(net::resolver(*server, user.source)?),
                name: name.clone(),
                port: *port,
                current: None,
            },
            Routing::OwnRegion => Locator::Fixed(self.world.locations[user.location].node),
            Routing::Fixed(address) => Locator::Fixed(*address),
        })
    }
}

/// One virtual user, until the run's deadline.
pub async fn run_user(run: Rc<Run>, index: usize) {
    let world = run.world.clone();
    let user = &world.users[index];
    let tenant = &world.tenants[user.tenant];
    let location = world.locations[user.location].region.clone();
    let client = net::client(user.source, run.timeout);
    let mut rng = Rng::new(index as u64 + 1);
    let mut locator = match run.locator(index) {
        Ok(locator) => locator,
        Err(err) => {
            eprintln!("user {index}: {err:#}");
            return;
        }
    };
    let mut seq = 0u64;
    while Instant::now() < run.deadline {
        let op = run.mix.pick(rng.below(run.mix.total()));
        let began = Instant::now();
        let start_us = began.duration_since(run.started).as_micros() as u64;
        let mut record = Record {
            start_us,
            latency_us: 0,
            location: location.clone(),
            op,
            status: 599,
            code: None,
            landing: None,
            served: None,
            home: None,
            redirects: 0,
        };
        match locator.target().await {
            Err(err) => {
                record.code = Some("dns".into());
                record.latency_us = began.elapsed().as_micros() as u64;
                let mut shared = run.shared.borrow_mut();
                if shared.dns_errors == 0 {
                    eprintln!("first DNS failure: {err}");
                }
                shared.dns_errors += 1;
                shared.push(record);
            }
            Ok(target) => {
                let base = format!("http://{target}");
                let channel = &tenant.mark.channel_id;
                let (method, url, body) = match op {
                    Op::Read => (
                        Method::GET,
                        format!("{base}/v1/channels/{channel}/messages?limit=50"),
                        None,
                    ),
                    Op::Write => {
                        seq += 1;
                        let body = json!({"body": tenant.mark.body(&user.user_id, seq)});
                        (
                            Method::POST,
                            format!("{base}/v1/channels/{channel}/messages"),
                            Some(body),
                        )
                    }
                    Op::Search => {
                        let word = checks::WORDS[rng.below(checks::WORDS.len() as u32) as usize];
                        (
                            Method::GET,
                            format!("{base}/v1/search?q={word}&limit=20"),
                            None,
                        )
                    }
                };
                let answer = net::send(
                    &client,
                    &world.regions_by_addr,
                    method,
                    url,
                    &user.token,
                    body.as_ref(),
                )
                .await;
                record.latency_us = began.elapsed().as_micros() as u64;
                record.status = answer.status;
                record.code = answer.code;
                record.landing = answer.landing;
                record.served = answer.served;
                record.home = answer.home;
                record.redirects = answer.redirects;
                let mut shared = run.shared.borrow_mut();
                if record.ok() {
                    if let Some(problem) = checks::residency_violation(
                        &tenant.id,
                        &tenant.allowed,
                        record.served.as_deref(),
                    ) {
                        shared.violations.residency(problem);
                    }
                    let items = match op {
                        Op::Write => vec![answer.body.clone()],
                        _ => answer.body["items"].as_array().cloned().unwrap_or_default(),
                    };
                    for problem in tenant.mark.foreign_items(&items) {
                        shared.violations.isolation(problem);
                    }
                    if op == Op::Write
                        && answer.status == 201
                        && let Some(id) = answer.body["id"].as_str()
                    {
                        shared
                            .acked
                            .entry(user.tenant)
                            .or_default()
                            .push(id.to_owned());
                    }
                }
                shared.push(record);
            }
        }
        if !run.think.is_zero() {
            actix_rt::time::sleep(run.think).await;
        }
    }
}

impl Shared {
    fn push(&mut self, record: Record) {
        if !record.ok() {
            self.errors += 1;
        }
        self.records.push(record);
    }
}

/// Prints one progress line a second on stderr until `deadline`.
pub async fn progress(shared: Rc<RefCell<Shared>>, started: Instant, deadline: Instant) {
    let mut ticker = actix_rt::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let mut last = 0usize;
    while Instant::now() < deadline {
        ticker.tick().await;
        let shared = shared.borrow();
        let requests = shared.records.len();
        eprintln!(
            "[{:>4.0}s] requests {requests:>8}  errors {:>6}  rps {:>7}",
            started.elapsed().as_secs_f64(),
            shared.errors,
            requests - last
        );
        last = requests;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_pick_by_weight() {
        let mix: Mix = "read=70,write=20,search=10".parse().unwrap();
        assert_eq!(mix.total(), 100);
        assert_eq!(mix.pick(0), Op::Read);
        assert_eq!(mix.pick(69), Op::Read);
        assert_eq!(mix.pick(70), Op::Write);
        assert_eq!(mix.pick(89), Op::Write);
        assert_eq!(mix.pick(90), Op::Search);
        let writes_only: Mix = "write=1".parse().unwrap();
        assert_eq!(writes_only.pick(0), Op::Write);
        assert!("read=0".parse::<Mix>().is_err());
        assert!("delete=5".parse::<Mix>().is_err());
        assert!("read=x".parse::<Mix>().is_err());
    }

    #[test]
    fn rolls_cover_the_range() {
        let mut rng = Rng::new(7);
        let mut seen = [0u32; 10];
        for _ in 0..10_000 {
            seen[rng.below(10) as usize] += 1;
        }
        assert!(seen.iter().all(|n| (800..1200).contains(n)), "{seen:?}");
    }
}
