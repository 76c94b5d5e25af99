//! The engine trait every summariser implements, and the in-process extractive
//! engine behind it. The `summary.create` job asks the engine for a reservation
//! estimate before it reserves AI tokens, then runs it; the engine answers with
//! the summary and the tokens to commit, or an error that says whether another
//! attempt could succeed.

use serde_json::{Value, json};
use uuid::Uuid;

use super::extractive;

/// What a summary is made of: the channel's messages in the window, oldest first.
pub struct Input<'a> {
    pub messages: &'a [(Uuid, String)],
    pub max_sentences: usize,
}

impl Input<'_> {
    pub fn bodies(&self) -> Vec<String> {
        self.messages.iter().map(|(_, b)| b.clone()).collect()
    }
}

#[derive(Debug)]
pub struct Output {
    pub text: String,
    /// `[{ "text": …, "message_id": … }]` (`message_id` only where a sentence is
    /// a message's own, as with the extractive engine).
    pub sentences: Value,
    /// Tokens to commit on the ledger: what the engine says it used.
    pub tokens_used: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EngineError {
    /// Another attempt may succeed (timeout, connection, 429, 5xx).
    #[error("{0}")]
    Retry(String),
    /// It will not (refused request, bad key, malformed answer, refused address).
    #[error("{0}")]
    Permanent(String),
}

#[async_trait::async_trait(?Send)]
pub trait Engine {
    /// The name stored with the summary (`channel_summaries.engine`).
    fn name(&self) -> &'static str;
    /// Tokens to reserve before `summarise`: never less than it can report.
    fn estimate(&self, input: &Input<'_>) -> u64;
    async fn summarise(&self, input: &Input<'_>) -> Result<Output, EngineError>;
}

/// TextRank in process (`extractive`): no message leaves the node's region. It
/// charges the tokens it read.
pub struct Extractive;

#[async_trait::async_trait(?Send)]
impl Engine for Extractive {
    fn name(&self) -> &'static str {
        "extractive"
    }

    fn estimate(&self, input: &Input<'_>) -> u64 {
        input
            .messages
            .iter()
            .map(|(_, b)| extractive::tokens(b).len() as u64)
            .sum::<u64>()
            .max(1)
    }

    async fn summarise(&self, input: &Input<'_>) -> Result<Output, EngineError> {
        let (chosen, read) = extractive::summarise(&input.bodies(), input.max_sentences);
        let sentences = json!(
            chosen
                .iter()
                .map(|s| json!({ "message_id": input.messages[s.message].0, "text": s.text }))
                .collect::<Vec<_>>()
        );
        let text = chosen
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Output {
            text,
            sentences,
            tokens_used: read,
        })
    }
}
