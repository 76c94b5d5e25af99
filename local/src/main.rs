//! The `meridian` command line: serve, migrate, dev, token.
#![forbid(unsafe_code)]

mod keys_cli;

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use figment::Figment;
use figment::providers::Serialized;
use meridian::auth::{KeySet, Role, TokenVerifier};
use meridian::config::{LogFormat, Settings};
use meridian::{Application, telemetry};
use meridian_local::admin_client::AdminClient;
use meridian_local::dev::{self, StateDir};

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
    /// Tenant operations through a node's API: relocate.
    Tenant(TenantArgs),
    /// JWT key rotation on the key set file: list, add, promote, retire, export-public.
    Keys(keys_cli::KeysArgs),
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
    /// Topology and health as the node sees it.
    Status,
    /// Print the impact, then drain (refused while tenants would be stranded, unless --force).
    Drain {
        region: String,
        #[arg(long)]
        force: bool,
    },
    /// Return a drained region to service.
    Undrain { region: String },
    /// Relocate every tenant of the region to its next allowed healthy region.
    Evacuate { region: String },
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
    /// Move a tenant to another home region (online, batched).
    Relocate {
        tenant: uuid::Uuid,
        #[arg(long)]
        to: String,
        /// Poll until the relocation is done.
        #[arg(long)]
        wait: bool,
    },
}

#[derive(Args)]
struct ServeArgs {
    #[arg(long, env = "MERIDIAN_REGION", default_value = "us-east1")]
    region: String,
    #[arg(long, env = "MERIDIAN_REGIONS_DIR", default_value = "regions")]
    regions_dir: PathBuf,
}

#[derive(Args)]
struct MigrateArgs {
    /// A URL of the schema owner; without it, the embedded database in --state-dir.
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
    /// Comma-separated subset of regions to start (default: every region file).
    #[arg(long, value_delimiter = ',')]
    regions: Option<Vec<String>>,
    #[arg(long, env = "MERIDIAN_REGIONS_DIR", default_value = "regions")]
    regions_dir: PathBuf,
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
    /// owner, admin, member, viewer or compliance.
    #[arg(long)]
    role: Option<String>,
    /// The platform admin's name (the token's `sub`).
    #[arg(long, default_value = "local-admin")]
    subject: String,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl: u64,
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let state = StateDir(std::path::absolute(&cli.state_dir).context("resolving --state-dir")?);
    match cli.command {
        Command::Serve(args) => serve(&state, args).await,
        Command::Migrate(args) => migrate(&state, args).await,
        Command::Dev(args) => {
            telemetry::init(LogFormat::Pretty, "warn,meridian=info");
            let geodns = args.geodns.then_some(args.geodns_port);
            dev::run(
                state,
                args.regions_dir,
                args.regions,
                args.wan,
                geodns,
                args.admin_port,
            )
            .await
        }
        Command::Token(args) => token(&state, args),
        Command::Region(args) => region(&state, args).await,
        Command::Tenant(args) => tenant(&state, args).await,
        Command::Keys(args) => {
            keys_cli::run(Settings::load(base_settings(&state))?.keys_file(), args)
        }
    }
}

async fn operate(state: &StateDir, node: &str) -> anyhow::Result<AdminClient> {
    let settings = Settings::load(base_settings(state))?;
    let verifier = TokenVerifier::new(KeySet::load(settings.keys_file())?, &settings.auth);
    AdminClient::new(node, &verifier)
}

async fn region(state: &StateDir, args: RegionArgs) -> anyhow::Result<()> {
    let client = operate(state, &args.target.node).await?;
    match &args.action {
        RegionAction::Status => client.region_status().await,
        RegionAction::Drain { region, force } => client.drain(region, *force).await,
        RegionAction::Undrain { region } => client.undrain(region).await,
        RegionAction::Evacuate { region } => client.evacuate(region).await,
    }
}

async fn tenant(state: &StateDir, args: TenantArgs) -> anyhow::Result<()> {
    let client = operate(state, &args.target.node).await?;
    match &args.action {
        TenantAction::Relocate { tenant, to, wait } => {
            client.relocate(&tenant.to_string(), to, *wait).await
        }
    }
}

fn base_settings(state: &StateDir) -> Figment {
    Figment::new().merge(Serialized::default("auth.keys_file", state.keys()))
}

async fn serve(state: &StateDir, args: ServeArgs) -> anyhow::Result<()> {
    let base = base_settings(state)
        .merge(Serialized::default("region", &args.region))
        .merge(Serialized::default("regions_dir", &args.regions_dir));
    let settings = Settings::load(base)?;
    telemetry::init(settings.log.format, &settings.log.filter);
    let app = Application::build(settings).await?;
    tracing::info!(
        address = %app.address(),
        metrics = %app.admin_address(),
        region = %args.region,
        "node listening"
    );
    let shutdown = app.shutdown();
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
        tracing::info!("stopping: finishing in-flight requests");
        shutdown.run().await;
    });
    app.run_until_stopped().await?;
    Ok(())
}

async fn migrate(state: &StateDir, args: MigrateArgs) -> anyhow::Result<()> {
    telemetry::init(LogFormat::Pretty, "warn");
    let applied = match args.database_url {
        Some(url) => {
            let outcome =
                meridian::db::migrate::run(&url, args.app_password.as_deref(), args.dialect)
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

fn token(state: &StateDir, args: TokenArgs) -> anyhow::Result<()> {
    let settings = Settings::load(base_settings(state))?;
    KeySet::ensure_file(settings.keys_file())?;
    let keys = KeySet::load(settings.keys_file())?;
    let verifier = TokenVerifier::new(keys, &settings.auth);
    let token = if args.platform_admin {
        verifier.issue(args.subject, None, Role::PlatformAdmin, args.ttl)?
    } else {
        let (Some(tenant), Some(user), Some(role)) = (args.tenant, args.user, args.role.as_deref())
        else {
            bail!("give --platform-admin, or --tenant, --user and --role");
        };
        let role = Role::parse(role)
            .filter(|r| r.is_tenant_role())
            .context("--role must be owner, admin, member, viewer or compliance")?;
        verifier.issue(user.to_string(), Some(tenant), role, args.ttl)?
    };
    println!("{token}");
    Ok(())
}
