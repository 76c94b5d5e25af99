//! Channel summaries (issue 13 item 4): asked for over the API
//! (`api::summaries`), made by the `summary.create` job (`job`) under the
//! tenant's AI token cap, stored with the tenant's rows (`store`). The engine is
//! the extractive summariser (`extractive`), in process, so no message leaves
//! the tenant's region.

pub mod extractive;
pub mod job;
pub mod store;

use serde::{Deserialize, Serialize};

/// `summaries.*` settings of a node.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct SummarySettings {
    /// Messages a summary reads at most (the newest of its window).
    pub max_messages: i64,
}

impl Default for SummarySettings {
    fn default() -> Self {
        Self { max_messages: 500 }
    }
}
