//! Channel summaries (issue 13 item 4): asked for over the API, made by a job
//! under the tenant's AI token cap, stored with the tenant's rows.

pub mod extractive;

use serde::{Deserialize, Serialize};

/// `summaries.*` settings of a node.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SummarySettings {}
