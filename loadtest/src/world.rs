//! The world a global run plays in: locations (one per region, users taking
//! source addresses in its client subnet), tenants spread over home regions
//! (some residency-pinned), each with a channel, seed messages and one member
//! user per virtual user, provisioned through the API.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use awc::http::Method;
use meridian::auth::{KeySet, Role, TokenVerifier};
use meridian::config::AuthSettings;
use meridian::topology::{Jurisdiction, Topology};
use serde_json::{Value, json};

use crate::checks::TenantMark;
use crate::net;

/// Users are numbered from this host address in their location's subnet.
const FIRST_USER_HOST: u32 = 10;

#[derive(Clone, Debug)]
pub struct Location {
    /// The region this location is next to.
    pub region: String,
    pub subnet: String,
    pub node: SocketAddr,
    pub jurisdiction: Jurisdiction,
}

pub struct Tenant {
    pub id: String,
    pub home: String,
    /// Regions the residency allows (empty: any).
    pub allowed: BTreeSet<String>,
    pub mark: TenantMark,
    pub owner_token: String,
}

pub struct User {
    pub location: usize,
    pub tenant: usize,
    pub source: IpAddr,
    pub user_id: String,
    pub token: String,
}

pub struct World {
    pub locations: Vec<Location>,
    pub tenants: Vec<Tenant>,
    pub users: Vec<User>,
    /// Node address → region, to tell where a request landed.
    pub regions_by_addr: HashMap<SocketAddr, String>,
    /// Message ids acknowledged while seeding, per tenant.
    pub seeded: Vec<Vec<String>>,
    pub verifier: TokenVerifier,
}

pub struct Shape<'a> {
    pub keys: &'a Path,
    pub regions_dir: &'a Path,
    pub only_regions: Option<&'a [String]>,
    pub tenants: usize,
    pub pinned: usize,
    /// Percent of each location's users given a tenant homed in their region.
    pub local_share: u8,
    pub users_per_location: usize,
    pub seed_messages: usize,
    pub plan: &'a str,
}

pub fn locations(topology: &Topology, only: Option<&[String]>) -> anyhow::Result<Vec<Location>> {
    let mut out = Vec::new();
    for region in topology.regions() {
        if only.is_some_and(|o| !o.iter().any(|r| r == region.id.as_str())) {
            continue;
        }
        let subnet = region
            .client_subnets
            .first()
            .with_context(|| format!("region {} has no `client_subnets` in its file", region.id))?;
        out.push(Location {
            region: region.id.to_string(),
            subnet: subnet.clone(),
            node: region.local_address,
            jurisdiction: region.jurisdiction,
        });
    }
    if out.is_empty() {
        bail!("no region left to place users in (check --regions against regions/*.toml)");
    }
    Ok(out)
}

/// Provisions tenants and users through the node at `setup_node`.
pub async fn provision(shape: &Shape<'_>, setup_node: Option<&str>) -> anyhow::Result<World> {
    let topology = Topology::load(shape.regions_dir)?;
    let locations = locations(&topology, shape.only_regions)?;
    let regions_by_addr = locations
        .iter()
        .map(|l| (l.node, l.region.clone()))
        .collect();
    let verifier = TokenVerifier::new(KeySet::load(shape.keys)?, &AuthSettings::default_local());
    let admin = verifier.issue("loadtest-global".into(), None, Role::PlatformAdmin, 7200)?;
    let base = match setup_node {
        Some(node) => node.trim_end_matches('/').to_owned(),
        None => format!("http://{}", locations[0].node),
    };
    let eu: Vec<String> = locations
        .iter()
        .filter(|l| l.jurisdiction == Jurisdiction::Eu)
        .map(|l| l.region.clone())
        .collect();
    if shape.pinned > 0 && eu.is_empty() {
        bail!(
            "--pinned {} needs an EU region among the locations",
            shape.pinned
        );
    }
    let setup = Setup {
        client: net::client(IpAddr::from([127, 0, 0, 1]), Duration::from_secs(30)),
        regions: regions_by_addr,
        base,
    };
    let regions_by_addr = setup.regions.clone();
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let mut world = World {
        locations,
        tenants: Vec::new(),
        users: Vec::new(),
        regions_by_addr,
        seeded: Vec::new(),
        verifier,
    };
    for i in 0..shape.tenants {
        let pinned = i < shape.pinned;
        let (home, residency, allowed) = if pinned {
            let allowed = eu.iter().cloned().collect();
            (
                eu[i % eu.len()].clone(),
                json!({"jurisdiction": "eu"}),
                allowed,
            )
        } else {
            let l = &world.locations[i % world.locations.len()];
            (l.region.clone(), Value::Null, BTreeSet::new())
        };
        let slug = format!("gl-{run}-{i}");
        let mut body = json!({ "slug": slug, "name": slug, "home_region": home, "plan": shape.plan,
            "owner": { "email": format!("owner@{slug}.example"), "display_name": "Owner" } });
        if pinned {
            body["residency"] = residency;
        }
        let tenant = setup
            .call(Method::POST, "/v1/tenants", &admin, Some(body))
            .await?;
        let id = text(&tenant, "id")?;
        let tid: uuid::Uuid = id.parse()?;
        let owner = text(&tenant["owner"], "id")?;
        let owner_token = world.verifier.issue(owner, Some(tid), Role::Owner, 7200)?;
        let channel = setup
            .call(
                Method::POST,
                "/v1/channels",
                &owner_token,
                Some(json!({"name": "general"})),
            )
            .await?;
        let mark = TenantMark {
            tenant_id: id.clone(),
            marker: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
            channel_id: text(&channel, "id")?,
        };
        let mut seeded = Vec::new();
        for seq in 0..shape.seed_messages {
            let path = format!("/v1/channels/{}/messages", mark.channel_id);
            let body = json!({"body": mark.body("seed", seq as u64)});
            let message = setup
                .call(Method::POST, &path, &owner_token, Some(body))
                .await?;
            seeded.push(text(&message, "id")?);
        }
        world.seeded.push(seeded);
        world.tenants.push(Tenant {
            id,
            home,
            allowed,
            mark,
            owner_token,
        });
    }
    let homes: Vec<&str> = world.tenants.iter().map(|t| t.home.as_str()).collect();
    for (l, location) in world.locations.iter().enumerate() {
        for n in 0..shape.users_per_location {
            let t = assign_tenant(&homes, &location.region, l, n, shape);
            let tenant = world
                .tenants
                .get(t)
                .context("--tenants must be at least 1")?;
            let email = format!("u{l}-{n}@{}.example", tenant.mark.marker);
            let body =
                json!({"email": email, "display_name": format!("user {l}-{n}"), "role": "member"});
            let user = setup
                .call(Method::POST, "/v1/users", &tenant.owner_token, Some(body))
                .await?;
            let user_id = text(&user, "id")?;
            let tid: uuid::Uuid = tenant.id.parse()?;
            let token = world
                .verifier
                .issue(user_id.clone(), Some(tid), Role::Member, 7200)?;
            world.users.push(User {
                location: l,
                tenant: t,
                source: net::source_in(&location.subnet, FIRST_USER_HOST + n as u32)?,
                user_id,
                token,
            });
        }
    }
    Ok(world)
}

/// Which tenant user `n` of location `l` belongs to. The first `local_share`
/// percent of a location's users get tenants homed in that location's region (in
/// turn), when there are any; everyone else takes turns over all tenants, so every
/// tenant has users in every location.
fn assign_tenant(homes: &[&str], region: &str, l: usize, n: usize, shape: &Shape<'_>) -> usize {
    let local_users = shape.users_per_location * usize::from(shape.local_share) / 100;
    let local: Vec<usize> = (0..homes.len()).filter(|t| homes[*t] == region).collect();
    if n < local_users && !local.is_empty() {
        return local[n % local.len()];
    }
    (l * shape.users_per_location + n) % homes.len().max(1)
}

fn text(value: &Value, key: &str) -> anyhow::Result<String> {
    value[key]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no `{key}` in {value}"))
}

struct Setup {
    client: awc::Client,
    regions: HashMap<SocketAddr, String>,
    base: String,
}

impl Setup {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let answer = net::send(
            &self.client,
            &self.regions,
            method.clone(),
            url,
            token,
            body.as_ref(),
        )
        .await;
        if !(200..300).contains(&answer.status) {
            bail!(
                "setup: {method} {}{path} answered {} {:?} {}",
                self.base,
                answer.status,
                answer.code,
                answer.body
            );
        }
        Ok(answer.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(users_per_location: usize, local_share: u8) -> Shape<'static> {
        Shape {
            keys: Path::new("keys.json"),
            regions_dir: Path::new("regions"),
            only_regions: None,
            tenants: 4,
            pinned: 0,
            local_share,
            users_per_location,
            seed_messages: 0,
            plan: "pro",
        }
    }

    const HOMES: [&str; 4] = ["eu", "us", "eu", "asia"];

    #[test]
    fn without_a_local_share_users_take_turns_over_all_tenants() {
        let s = shape(4, 0);
        let of_location = |l| {
            (0..4)
                .map(|n| assign_tenant(&HOMES, "eu", l, n, &s))
                .collect::<Vec<_>>()
        };
        assert_eq!(of_location(0), [0, 1, 2, 3]);
        assert_eq!(of_location(1), [0, 1, 2, 3]);
    }

    #[test]
    fn a_local_share_gives_that_many_users_a_tenant_homed_at_their_location() {
        let s = shape(4, 75);
        let eu: Vec<usize> = (0..4)
            .map(|n| assign_tenant(&HOMES, "eu", 1, n, &s))
            .collect();
        // 3 of 4 local (tenants 0 and 2 in turn), the last one takes its turn.
        assert_eq!(eu, [0, 2, 0, 3]);
        let asia: Vec<usize> = (0..4)
            .map(|n| assign_tenant(&HOMES, "asia", 2, n, &s))
            .collect();
        assert_eq!(asia, [3, 3, 3, 3]);
        // No tenant homed there: everyone takes turns.
        let none: Vec<usize> = (0..4)
            .map(|n| assign_tenant(&HOMES, "mars", 0, n, &s))
            .collect();
        assert_eq!(none, [0, 1, 2, 3]);
    }
}
