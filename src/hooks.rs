//! What the webhook, summary and export routes and jobs share on a node: the
//! SSRF-safe client, the export store and their settings. Kept apart from `AppState` (one `app_data` of its
//! own), so these features add no field to the request path's state.

use crate::outbound::{self, Client};
use crate::summaries::SummarySettings;
use crate::webhooks::WebhookSettings;

pub struct Hooks {
    pub client: Client,
    ledger: crate::limits::ledger::AiLedger,
    directory: crate::tenancy::Directory,
    pub webhooks: WebhookSettings,
    pub summaries: SummarySettings,
    /// The platform's OIDC provider (`crate::platform`), if configured.
    pub platform_identity: Option<crate::platform::PlatformIdentity>,
    /// The OpenAI-compatible summary engine, when `summaries.openai` is set.
    external: Option<std::sync::Arc<crate::summaries::openai::OpenAi>>,
    topology: std::sync::Arc<crate::topology::Topology>,
    /// Seals and opens stored secrets (`crypto::secrets`); the same keyring as
    /// `AppState::keyring`.
    pub keyring: std::sync::Arc<crate::crypto::keyring::Keyring>,
    /// Signs evidence for auditors; the same signer as `AppState::signer`.
    pub signer: std::sync::Arc<crate::crypto::signing::Signer>,
    reencrypt_batch: u32,
    /// `encryption.rotate_after_days` (0: no scheduled rotation).
    rotate_after_days: u32,
    /// `audit.checkpoint_interval_ms`: how often each trail's head is signed.
    checkpoint_interval: std::time::Duration,
    /// Exports and their store (`crate::compliance`).
    pub compliance: crate::compliance::Compliance,
    /// Calendar sync: the bridges, settings and keyring (`crate::calendar`).
    pub calendar: std::sync::Arc<crate::calendar::Calendars>,
}

impl Hooks {
    pub fn new(
        settings: &crate::config::Settings,
        db: crate::db::Database,
        directory: crate::tenancy::Directory,
        topology: std::sync::Arc<crate::topology::Topology>,
        (keyring, signer): (
            std::sync::Arc<crate::crypto::keyring::Keyring>,
            std::sync::Arc<crate::crypto::signing::Signer>,
        ),
    ) -> anyhow::Result<Self> {
        let client = Client::new(settings.outbound.clone())?;
        let openai = &settings.summaries.openai;
        let external = if openai.enabled() {
            let engine = crate::summaries::openai::OpenAi::new(openai.clone(), client.clone())
                .map_err(anyhow::Error::msg)?;
            Some(std::sync::Arc::new(engine))
        } else {
            None
        };
        let compliance = crate::compliance::Compliance::new(
            (
                settings.exports.clone(),
                settings.erasure.clone(),
                settings.retention.clone(),
                settings.access_log.retention_days,
            ),
            keyring.clone(),
            signer.clone(),
        )?;
        let calendar = std::sync::Arc::new(crate::calendar::Calendars {
            settings: settings.calendar.clone(),
            bridges: crate::calendar::bridge::BridgePool::new(client.clone(), &settings.calendar),
            keyring: keyring.clone(),
            db: db.clone(),
            region: crate::ids::RegionId::parse(&settings.region).map_err(anyhow::Error::msg)?,
        });
        Ok(Self {
            calendar,
            compliance,
            client,
            external,
            topology,
            keyring,
            signer,
            reencrypt_batch: settings.encryption.reencrypt_batch,
            rotate_after_days: settings.encryption.rotate_after_days,
            checkpoint_interval: settings.audit.checkpoint_interval,
            ledger: crate::limits::ledger::AiLedger::new(db),
            directory,
            webhooks: settings.webhooks.clone(),
            summaries: settings.summaries.clone(),
            platform_identity: settings.platform_identity.clone(),
        })
    }

    /// The node's job handlers plus the webhook, summary and key jobs.
    pub fn register(&self, registry: crate::jobs::Registry) -> crate::jobs::Registry {
        let registry = if self.rotate_after_days > 0 {
            registry
                .with(crate::crypto::rotation::RotateCheck {
                    keyring: self.keyring.clone(),
                    after_days: self.rotate_after_days,
                })
                .every(crate::jobs::Schedule {
                    kind: crate::crypto::rotation::ROTATE_CHECK_KIND,
                    every: std::time::Duration::from_secs(24 * 3600),
                    scope: crate::jobs::ScheduleScope::EachTenant,
                    max_attempts: 5,
                })
        } else {
            registry
        };
        let registry =
            crate::audit::jobs::register(registry, &self.signer, self.checkpoint_interval);
        let registry = self.compliance.register(registry);
        let every = self.calendar.settings.sync_interval;
        let registry = if every.is_zero() {
            registry
        } else {
            registry.every(crate::jobs::Schedule {
                kind: crate::calendar::sync::SYNC_KIND,
                every,
                scope: crate::jobs::ScheduleScope::EachTenant,
                max_attempts: 3,
            })
        };
        registry
            .with(crate::calendar::sync::SyncJob {
                calendars: self.calendar.clone(),
            })
            .with(crate::webhooks::jobs::Dispatch {
                settings: self.webhooks.clone(),
            })
            .with(crate::webhooks::jobs::Deliver {
                settings: self.webhooks.clone(),
                client: self.client.clone(),
                keyring: self.keyring.clone(),
            })
            .with(crate::crypto::rotation::Reencrypt {
                keyring: self.keyring.clone(),
                batch: self.reencrypt_batch,
            })
            .with(crate::summaries::job::CreateSummary {
                ledger: self.ledger.clone(),
                directory: self.directory.clone(),
                max_messages: self.summaries.max_messages,
                external: self.external.clone(),
                topology: self.topology.clone(),
                keyring: self.keyring.clone(),
            })
            .with(crate::crypto::seal_messages::SealMessages {
                keyring: self.keyring.clone(),
                batch: self.reencrypt_batch,
            })
    }

    /// Why `url` cannot be a webhook endpoint, judged without DNS (the address a
    /// name resolves to is vetted at every delivery).
    pub fn refuse_url(&self, url: &str) -> Option<String> {
        let parsed = match outbound::url::parse(url) {
            Ok(parsed) => parsed,
            Err(why) => return Some(why),
        };
        let allow_loopback = self.client.settings().allow_loopback;
        match parsed.host {
            outbound::Host::Ip(ip) => {
                outbound::vet::refusal(ip, allow_loopback).map(|reason| format!("{ip} is {reason}"))
            }
            outbound::Host::Name(name)
                if !allow_loopback && (name == "localhost" || name.ends_with(".localhost")) =>
            {
                Some(format!("{name} is loopback"))
            }
            outbound::Host::Name(_) => None,
        }
    }
}
