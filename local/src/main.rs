//! The `meridian` command line: serve, migrate, dev, token.
#![forbid(unsafe_code)]

mod audit_cli;
mod keys_cli;

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use figment::Figment;
use figment::providers::Serialized;
use meridian::auth::{KeySet, Role, TokenVerifier};
use meridian::config::{LogFormat, Settings};
use meridian::{Application, telemetry};
use meridian_local::admin_client::{AdminClient, TENANT_ROLES};
use meridian_local::cli::attest;
use meridian_local::cli::output::{self, Format};
use meridian_local::cli::state::require_keys;
use meridian_local::dev::{self, StateDir};

/// mimalloc instead of the system allocator: the messages page made ≈ 240
/// allocations and glibc's malloc/free were ≈ 21% of its instructions; measured
/// in A/B pairs (README, Benchmarks, "The node's CPU per page and per post").
/// The attribute needs no unsafe code here: the crate implements `GlobalAlloc`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "meridian",
    version,
    about = "Meridian: a multi-region, multi-tenant team API"
)]
struct Cli {
    /// Where local state lives: embedded PostgreSQL data, keys, secrets.
    #[arg(
        long,
        global = true,
        env = "MERIDIAN_STATE_DIR",
        default_value = ".meridian"
    )]
    state_dir: PathBuf,
    /// Print the API's JSON instead of the human format.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node (settings: defaults → regions/<region>.toml → MERIDIAN_* env).
    Serve(ServeArgs),
    /// Apply the migrations in sql/ (to --database-url, or to the embedded database).
    Migrate(MigrateArgs),
    /// Start the embedded PostgreSQL and one node per region; Ctrl-C stops all.
    Dev(DevArgs),
    /// Print a signed token for local use, with the keys `dev` uses.
    Token(TokenArgs),
    /// Region operations through a node's API: status, drain, undrain, evacuate.
    Region(RegionArgs),
    /// Tenant operations through a node's API: list, relocate.
    Tenant(TenantArgs),
    /// JWT key rotation on the key set file: list, add, promote, retire, export-public;
    /// KEK rotation of tenant data keys: rotate-kek, rewrap.
    Keys(keys_cli::KeysArgs),
    /// Platform accounts, written through the settings' database URL.
    Platform(PlatformArgs),
    /// The audit trail's hash chain: verify a trail through a node, or an export offline.
    Audit(AuditCommand),
}

#[derive(Args)]
struct AuditCommand {
    #[command(flatten)]
    target: NodeArg,
    #[command(flatten)]
    args: audit_cli::AuditArgs,
}

#[derive(Args)]
struct PlatformArgs {
    #[command(subcommand)]
    command: PlatformCommand,
}

#[derive(Subcommand)]
enum PlatformCommand {
    /// Make (issuer, subject) an active platform admin (the first one, before
    /// anyone can sign in); idempotent, recorded in the platform trail. The
    /// database is `database.url` of the settings (`MERIDIAN_DATABASE__URL`).
    AddAdmin {
        /// The platform provider's issuer (`platform_identity.issuer`).
        #[arg(long)]
        issuer: String,
        /// The provider's `sub` for this person.
        #[arg(long)]
        subject: String,
        /// The person's e-mail address (shown in the platform user list).
        #[arg(long)]
        email: String,
    },
}

/// Which node the operator commands talk to.
#[derive(Args)]
struct NodeArg {
    /// Any node's base URL.
    #[arg(
        long,
        env = "MERIDIAN_NODE",
        default_value = "http://127.0.0.11:8080",
        global = true
    )]
    node: String,
}

#[derive(Args)]
struct RegionArgs {
    #[command(flatten)]
    target: NodeArg,
    #[command(subcommand)]
    action: RegionAction,
}

#[derive(Subcommand)]
enum RegionAction {
    /// Topology and health as the node sees it: each region serving, drained or unreachable.
    Status,
    /// Print the impact, then drain (refused while tenants would be stranded, unless --force).
    Drain {
        /// The region to drain: us-east1, europe-west1, europe-west3, europe-north1,
        /// asia-southeast1 (regions/*.toml).
        region: String,
        /// Drain even if some tenants would be unavailable.
        #[arg(long)]
        force: bool,
        /// Only print the impact; change nothing.
        #[arg(long, conflicts_with = "force")]
        dry_run: bool,
    },
    /// Return a drained region to service.
    Undrain {
        /// The drained region: us-east1, europe-west1, europe-west3, europe-north1, asia-southeast1
        /// (regions/*.toml).
        region: String,
    },
    /// Relocate every tenant of the region to its next allowed healthy region.
    Evacuate {
        /// The region to empty: us-east1, europe-west1, europe-west3, europe-north1,
        /// asia-southeast1 (regions/*.toml).
        region: String,
    },
}

#[derive(Args)]
struct TenantArgs {
    #[command(flatten)]
    target: NodeArg,
    #[command(subcommand)]
    action: TenantAction,
}

#[derive(Subcommand)]
enum TenantAction {
    /// The tenant directory (id, slug, home region, status), newest first.
    List {
        /// Only the tenant with exactly this slug (prints nothing when there is none).
        #[arg(long)]
        slug: Option<String>,
    },
    /// Move a tenant to another home region (online, batched).
    Relocate {
        /// The tenant's id (UUID).
        tenant: uuid::Uuid,
        /// The new home region: us-east1, europe-west1, europe-west3, europe-north1,
        /// asia-southeast1 (regions/*.toml).
        #[arg(long)]
        to: String,
        /// Poll until the relocation is done.
        #[arg(long)]
        wait: bool,
    },
    /// The tenant's signed residency report: fetched, its signature checked
    /// against the node's published keys (`GET /signing-keys`), summarised.
    Attest {
        /// The tenant's id (UUID).
        tenant: uuid::Uuid,
        /// Also write the signed report (JSON) here, for an auditor.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Checks a signed residency report file offline with a public key alone.
    VerifyReport {
        /// The file `attest --out` wrote.
        file: PathBuf,
        /// The signing public key (base64url, as `GET /signing-keys` lists it).
        #[arg(long)]
        public_key: String,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// The region this node serves: us-east1, europe-west1, europe-west3, europe-north1,
    /// asia-southeast1 (regions/*.toml).
    #[arg(long, env = "MERIDIAN_REGION", default_value = "us-east1")]
    region: String,
    /// Where the region files are.
    #[arg(long, env = "MERIDIAN_REGIONS_DIR", default_value = "regions")]
    regions_dir: PathBuf,
}

#[derive(Args)]
struct MigrateArgs {
    /// A URL of the schema owner; without it, the embedded database in --state-dir.
    /// TLS as the node has it: `MERIDIAN_DATABASE__TLS__*` (mode, ca_file, client cert).
    #[arg(long, env = "MERIDIAN_MIGRATE_URL")]
    database_url: Option<String>,
    /// Sets the password of the service role `meridian_app`.
    #[arg(long, env = "MERIDIAN_APP_PASSWORD", hide_env_values = true)]
    app_password: Option<String>,
    /// `postgres` or `cockroach`; without it, detected from the server's `version()`
    /// (given, it must match the server). Only with --database-url.
    #[arg(long, env = "MERIDIAN_MIGRATE_DIALECT")]
    dialect: Option<meridian::db::Dialect>,
}

#[derive(Args)]
struct DevArgs {
    /// Comma-separated subset of regions to start (default: every region file):
    /// us-east1, europe-west1, europe-west3, europe-north1, asia-southeast1 (regions/*.toml).
    #[arg(long, value_delimiter = ',')]
    regions: Option<Vec<String>>,
    /// Where the region files are.
    #[arg(long, env = "MERIDIAN_REGIONS_DIR", default_value = "regions")]
    regions_dir: PathBuf,
    /// When a node dies, restart it after this many seconds (the other regions
    /// keep serving meanwhile); 0 leaves it down.
    #[arg(long, default_value_t = 5)]
    restart_after: u64,
    /// Emulate WAN latency: a delay proxy on each region's address, delays from
    /// regions/latency.toml by the client's source subnet (docs/wan-emulation.md).
    #[arg(long)]
    wan: bool,
    /// Also run the local GeoDNS (PowerDNS) for api.meridian.test.
    #[arg(long)]
    geodns: bool,
    /// The GeoDNS's port on 127.0.0.1.
    #[arg(long, default_value_t = 5300)]
    geodns_port: u16,
    /// Port of every node's admin (metrics) listener, on the node's admin IP
    /// (default: each region file's `local.admin_address`, else port 9090).
    #[arg(long)]
    admin_port: Option<u16>,
    /// Serve https: a local CA is made in <state-dir>/tls (kept across runs; its
    /// path is printed, with a curl line) and every node gets a certificate from it.
    #[arg(long)]
    tls: bool,
    /// Also run demo identity providers for the sign-in walk-through: a
    /// throwaway OpenLDAP and an OIDC mock on loopback ports (prints `oidc
    /// <issuer-url>`, `ldap <url>`, the demo users and their passwords).
    #[arg(long)]
    identity: bool,
}

#[derive(Args)]
struct TokenArgs {
    /// A platform-admin token (no tenant).
    #[arg(long, conflicts_with_all = ["tenant", "user", "role"])]
    platform_admin: bool,
    /// Tenant id (UUID).
    #[arg(long, requires_all = ["user", "role"])]
    tenant: Option<uuid::Uuid>,
    /// User id (UUID) within the tenant.
    #[arg(long)]
    user: Option<uuid::Uuid>,
    /// The user's role: owner, admin, member, viewer or compliance; or
    /// `operator` (alone: a platform operator's token, no tenant).
    #[arg(long)]
    role: Option<String>,
    /// The platform admin's or operator's name (the token's `sub`).
    #[arg(long, default_value = "local-admin")]
    subject: String,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
    /// Sign without asking the node whether the user exists with that role.
    #[arg(long)]
    no_check: bool,
    #[command(flatten)]
    target: NodeArg,
}

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // One line: the causes joined, no Debug dump. A backtrace only when asked
            // for with MERIDIAN_BACKTRACE=1 (RUST_BACKTRACE is often set for other
            // programs, and captures it).
            eprintln!("error: {err:#}");
            if std::env::var_os("MERIDIAN_BACKTRACE").is_some_and(|v| v == "1") {
                eprintln!("{}", err.backtrace());
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let state = StateDir(std::path::absolute(&cli.state_dir).context("resolving --state-dir")?);
    let format = if cli.json {
        Format::Json
    } else {
        Format::Human
    };
    match cli.command {
        Command::Serve(args) => serve(&state, args).await,
        Command::Migrate(args) => migrate(&state, args).await,
        Command::Dev(args) => {
            telemetry::init(LogFormat::Pretty, "warn,meridian=info,meridian_local=info");
            let geodns = args.geodns.then_some(args.geodns_port);
            dev::run(dev::DevOptions {
                state,
                regions_dir: args.regions_dir,
                only: args.regions,
                wan: args.wan,
                geodns_port: geodns,
                admin_port: args.admin_port,
                restart_after: args.restart_after,
                tls: args.tls,
                identity: args.identity,
            })
            .await
        }
        Command::Token(args) => token(&state, args, format).await,
        Command::Region(args) => region(&state, args, format).await,
        Command::Tenant(args) => tenant(&state, args, format).await,
        Command::Keys(args) => match keys_cli::run_kek(&base_settings(&state), &args).await {
            Some(done) => done,
            None => keys_cli::run(Settings::load(base_settings(&state))?.keys_file(), args),
        },
        Command::Platform(args) => platform(&state, args, format).await,
        Command::Audit(AuditCommand { target, args }) => {
            let client = if audit_cli::needs_node(&args) {
                Some(operate(&state, &target.node).await?)
            } else {
                None
            };
            audit_cli::run(client, args, format).await
        }
    }
}

async fn platform(state: &StateDir, args: PlatformArgs, format: Format) -> anyhow::Result<()> {
    let PlatformCommand::AddAdmin {
        issuer,
        subject,
        email,
    } = args.command;
    let settings = Settings::load(base_settings(state))?;
    if settings.database.url.is_empty() {
        bail!("database.url (MERIDIAN_DATABASE__URL) is required");
    }
    use meridian::platform::bootstrap::{Added, add_admin};
    let added = add_admin(
        &settings.database,
        &settings.region,
        &issuer,
        &subject,
        &email,
    )
    .await?;
    let (what, id) = match added {
        Added::Created(id) => ("created", id),
        Added::Promoted(id) => ("made an active platform admin", id),
        Added::Unchanged(id) => ("already an active platform admin", id),
    };
    match format {
        Format::Human => println!("platform user {id}: {what}"),
        Format::Json => println!("{}", serde_json::json!({ "id": id, "outcome": what })),
    }
    Ok(())
}

/// The local key set's verifier; refuses a state directory without keys.
fn local_verifier(state: &StateDir) -> anyhow::Result<TokenVerifier> {
    let settings = Settings::load(base_settings(state))?;
    require_keys(settings.keys_file(), &state.0)?;
    Ok(TokenVerifier::new(
        KeySet::load(settings.keys_file())?,
        &settings.auth,
    ))
}

async fn operate(state: &StateDir, node: &str) -> anyhow::Result<AdminClient> {
    AdminClient::new(node, &local_verifier(state)?)
}

async fn region(state: &StateDir, args: RegionArgs, format: Format) -> anyhow::Result<()> {
    let client = operate(state, &args.target.node).await?;
    match &args.action {
        RegionAction::Status => {
            let status = client.region_status().await?;
            output::print(format, &status, region_lines);
        }
        RegionAction::Drain {
            region,
            force,
            dry_run,
        } => {
            let impact = client.drain_impact(region).await?;
            let stranded = impact["unavailable"].as_array().map_or(0, Vec::len);
            if *dry_run {
                output::print(format, &impact, |v| impact_lines(region, v));
                return Ok(());
            }
            if format == Format::Human {
                println!("{}", impact_lines(region, &impact).trim_end());
            }
            if stranded > 0 && !force {
                bail!(
                    "refusing to drain {region}: {stranded} tenant(s) would be unavailable (use \
                        --force)"
                );
            }
            let report = client.drain(region, *force).await?;
            output::print(format, &report, |_| format!("drained {region}"));
        }
        RegionAction::Undrain { region } => {
            let report = client.undrain(region).await?;
            output::print(format, &report, |_| format!("{region} is back in service"));
        }
        RegionAction::Evacuate { region } => {
            let report = client.evacuate(region).await?;
            output::print(format, &report, output::human);
            if let Some(refused) = report["refused"].as_array().filter(|r| !r.is_empty()) {
                bail!(
                    "{} tenant(s) could not be moved (see `refused` above)",
                    refused.len()
                );
            }
        }
    }
    Ok(())
}

/// `region status`, one line per region.
fn region_lines(status: &serde_json::Value) -> String {
    let mut out = String::new();
    if let Some(here) = status.get("region") {
        out.push_str(&format!("answered by {}\n", output::scalar(here)));
    }
    for region in status["regions"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{:<16} {}\n",
            output::scalar(&region["id"]),
            output::scalar(&region["state"])
        ));
    }
    out
}

/// What draining `region` would do.
fn impact_lines(region: &str, impact: &serde_json::Value) -> String {
    let rows = |key: &str| impact[key].as_array().cloned().unwrap_or_default();
    let mut out = format!("draining {region}:\n");
    let (failover, stranded) = (rows("failover"), rows("unavailable"));
    for t in &failover {
        out.push_str(&format!(
            "  fails over:  {} ({}) -> {}\n",
            output::scalar(&t["slug"]),
            output::scalar(&t["tenant_id"]),
            output::scalar(&t["to"])
        ));
    }
    for t in &stranded {
        out.push_str(&format!(
            "  UNAVAILABLE: {} ({}): its residency allows no other healthy region\n",
            output::scalar(&t["slug"]),
            output::scalar(&t["tenant_id"])
        ));
    }
    if failover.is_empty() && stranded.is_empty() {
        out.push_str("  no tenant is served there\n");
    }
    out
}

async fn tenant(state: &StateDir, args: TenantArgs, format: Format) -> anyhow::Result<()> {
    let client = operate(state, &args.target.node).await?;
    match &args.action {
        TenantAction::List { slug } => {
            let page = client.tenants(slug.as_deref()).await?;
            output::print(format, &page, |page| {
                page["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        format!(
                            "{}  {}  {}  {}\n",
                            output::scalar(&t["id"]),
                            output::scalar(&t["slug"]),
                            output::scalar(&t["home_region"]),
                            output::scalar(&t["status"])
                        )
                    })
                    .collect()
            });
        }
        TenantAction::Attest { tenant, out } => {
            let signed = client
                .request(
                    "GET",
                    &format!("/v1/tenants/{tenant}/residency-report"),
                    None,
                )
                .await?;
            let keys = client.request("GET", "/signing-keys", None).await?;
            let key_id = signed["signature"]["key_id"].as_str().unwrap_or_default();
            let key = keys["keys"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|k| k["key_id"] == key_id)
                .and_then(|k| k["public_key"].as_str())
                .with_context(|| format!("the node does not publish the signing key `{key_id}`"))?;
            attest::check(&signed, key)?;
            if let Some(path) = out {
                std::fs::write(path, serde_json::to_vec_pretty(&signed)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            output::print(format, &signed, attest::human);
        }
        TenantAction::VerifyReport { file, public_key } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            let signed: serde_json::Value = serde_json::from_str(&text)?;
            attest::check(&signed, public_key)?;
            output::print(format, &signed, attest::human);
        }
        TenantAction::Relocate { tenant, to, wait } => {
            let job = client
                .relocate(&tenant.to_string(), to, *wait, |job| {
                    if format == Format::Human {
                        println!(
                            "{} moved {}",
                            output::scalar(&job["status"]),
                            output::one_line(&job["moved"])
                        );
                    }
                })
                .await?;
            output::print(format, &job, output::human);
        }
    }
    Ok(())
}
fn base_settings(state: &StateDir) -> Figment {
    Figment::new()
        .merge(Serialized::default("auth.keys_file", state.keys()))
        .merge(Serialized::default("encryption.kek_file", state.keks()))
        .merge(Serialized::default("signing.key_file", state.signing_key()))
}

async fn serve(state: &StateDir, args: ServeArgs) -> anyhow::Result<()> {
    let base = base_settings(state)
        .merge(Serialized::default("region", &args.region))
        .merge(Serialized::default("regions_dir", &args.regions_dir));
    let settings = Settings::load(base)?;
    require_keys(settings.keys_file(), &state.0)?;
    telemetry::init(settings.log.format, &settings.log.filter);
    let app = Application::build(settings).await?;
    tracing::info!(
        address = %app.address(),
        metrics = %app.admin_address(),
        region = %args.region,
        "node listening"
    );
    let shutdown = app.shutdown();
    let region = args.region.clone();
    tokio::spawn(async move {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!(region = %region, "stopping: finishing in-flight requests");
        shutdown.run().await;
    });
    app.run_until_stopped().await?;
    Ok(())
}

async fn migrate(state: &StateDir, args: MigrateArgs) -> anyhow::Result<()> {
    telemetry::init(LogFormat::Pretty, "warn");
    let applied = match args.database_url {
        Some(url) => {
            // The node's own TLS settings (MERIDIAN_DATABASE__TLS__*) reach the
            // production cluster, which accepts no plain connection.
            let tls = meridian::db::tls::DbTlsSettings::from_env()?;
            let outcome = meridian::db::migrate::run_with_tls(
                &url,
                &tls,
                args.app_password.as_deref(),
                args.dialect,
            )
            .await?;
            println!("dialect {}", outcome.dialect);
            outcome.applied
        }
        None if args.dialect == Some(meridian::db::Dialect::Cockroach) => {
            bail!("--dialect cockroach needs --database-url (the embedded database is PostgreSQL)")
        }
        None => {
            let db = dev::prepare_database(state).await?;
            let applied = db.applied.clone();
            tokio::task::spawn_blocking(move || db.pg.stop()).await??;
            applied
        }
    };
    if applied.is_empty() {
        println!("schema is up to date");
    }
    for version in applied {
        println!("applied {version}");
    }
    Ok(())
}

async fn token(state: &StateDir, args: TokenArgs, format: Format) -> anyhow::Result<()> {
    let verifier = local_verifier(state)?;
    let token = if args.platform_admin {
        verifier.issue(args.subject, None, Role::PlatformAdmin, args.ttl)?
    } else if args.role.as_deref() == Some(Role::Operator.as_str()) {
        // Like a platform admin's: no tenant, no user; `--subject` names the person.
        if args.tenant.is_some() || args.user.is_some() {
            bail!(
                "an operator token names no tenant or user: give --role operator [--subject NAME]"
            );
        }
        verifier.issue(args.subject, None, Role::Operator, args.ttl)?
    } else {
        let (Some(tenant), Some(user), Some(role)) = (args.tenant, args.user, args.role.as_deref())
        else {
            bail!("give --platform-admin, --role operator, or --tenant, --user and --role");
        };
        let role = Role::parse(role)
            .filter(|r| r.is_tenant_role())
            .with_context(|| format!("--role must be one of {}", TENANT_ROLES.join(", ")))?;
        if !args.no_check {
            AdminClient::check_user(&args.target.node, &verifier, tenant, user, role).await?;
        }
        verifier.issue(user.to_string(), Some(tenant), role, args.ttl)?
    };
    match format {
        Format::Human => println!("{token}"),
        Format::Json => output::print(
            format,
            &serde_json::json!({ "token": token }),
            output::human,
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every argument of every command says what it is (`--help`), and every
    /// argument that takes a region lists the valid region names.
    #[test]
    fn every_argument_has_help_and_region_arguments_list_the_regions() {
        fn walk(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                if help.is_empty() {
                    missing.push(format!("{path} {id}: no help"));
                }
                if matches!(id, "region" | "to" | "regions") && !help.contains("europe-west3") {
                    missing.push(format!("{path} {id}: does not list the regions"));
                }
            }
            for sub in command.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "meridian", &mut missing);
        assert!(missing.is_empty(), "{missing:#?}");
    }
}
