//! Channel summaries (issue 13 item 4): asked for over the API
//! (`api::summaries`), made by the `summary.create` job (`job`) under the
//! tenant's AI token cap, stored with the tenant's rows (`store`). Engines sit
//! behind one trait (`engine`): the extractive summariser (`extractive`), in
//! process, so no message leaves the tenant's region, is the default; the
//! OpenAI-compatible engine (`openai`) is used by tenants that chose it, within
//! their residency or with their opt-in (`gate`).

pub mod engine;
pub mod extractive;
pub mod gate;
pub mod job;
pub mod openai;
pub mod store;

use serde::{Deserialize, Serialize};

/// `summaries.*` settings of a node.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct SummarySettings {
    /// Messages a summary reads at most (the newest of its window).
    pub max_messages: i64,
    /// The OpenAI-compatible engine (off unless `base_url` is set).
    pub openai: openai::OpenAiSettings,
}

impl Default for SummarySettings {
    fn default() -> Self {
        Self {
            max_messages: 500,
            openai: openai::OpenAiSettings::default(),
        }
    }
}
