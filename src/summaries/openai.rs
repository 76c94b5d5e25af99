//! The OpenAI-compatible engine: one `POST {base_url}/chat/completions` through
//! the SSRF-safe client (`crate::outbound`) with the window's messages, answered
//! by `choices[0].message.content` and `usage.total_tokens`, which is what the
//! ledger is charged. Off unless `summaries.openai.base_url` is set; a tenant
//! uses it only if it chose the `external` engine, and only where its residency
//! allows the engine's `region` or it opted in (`summaries::gate`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::engine::{Engine, EngineError, Input, Output};
use super::extractive;
use crate::outbound::{Client, HttpUrl, OutboundError};
use crate::secret::Secret;
use crate::topology::Jurisdiction;

/// `summaries.openai.*`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct OpenAiSettings {
    /// `https://host/v1` (the engine posts to `{base_url}/chat/completions`).
    /// Empty (the default): no external engine on this node.
    pub base_url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer …`; never logged.
    pub api_key: Secret,
    /// Where the engine processes what it is sent: a region id of the topology
    /// (a region the topology does not know is allowed by no residency policy),
    /// or empty when `jurisdiction` says it instead. Exactly one of the two.
    pub region: String,
    /// Where the engine processes what it is sent, when its operator names only
    /// a jurisdiction (`us`, `eu`, `apac`), not a region: allowed by a residency
    /// policy of that jurisdiction, by none that lists regions.
    pub jurisdiction: Option<Jurisdiction>,
    #[serde(rename = "timeout_ms", with = "crate::config::millis")]
    pub timeout: Duration,
    /// The answer's length cap, sent as `max_tokens` and reserved up front.
    pub max_tokens: u32,
}

impl Default for OpenAiSettings {
    fn default() -> Self {
        Self {
            base_url: String::new(),
            model: String::new(),
            api_key: Secret::default(),
            region: String::new(),
            jurisdiction: None,
            timeout: Duration::from_secs(30),
            max_tokens: 512,
        }
    }
}

impl OpenAiSettings {
    pub fn enabled(&self) -> bool {
        !self.base_url.is_empty()
    }

    /// Where the engine runs, as configured: its region id or its jurisdiction.
    pub fn location(&self) -> String {
        match self.jurisdiction {
            Some(Jurisdiction::Us) => "jurisdiction us".into(),
            Some(Jurisdiction::Eu) => "jurisdiction eu".into(),
            Some(Jurisdiction::Apac) => "jurisdiction apac".into(),
            None => self.region.clone(),
        }
    }

    /// The endpoint's URL, or why the settings are unusable.
    pub fn endpoint(&self) -> Result<HttpUrl, String> {
        if self.model.is_empty() {
            return Err("summaries.openai needs `model` with `base_url`".into());
        }
        if self.region.is_empty() == self.jurisdiction.is_none() {
            return Err(
                "summaries.openai needs exactly one of `region` and `jurisdiction` with `base_url`"
                    .into(),
            );
        }
        if self.max_tokens == 0 || self.timeout.is_zero() {
            return Err("summaries.openai.max_tokens and timeout_ms must be positive".into());
        }
        let url = format!("{}/chat/completions", self.base_url.trim_end_matches('/'));
        crate::outbound::url::parse(&url).map_err(|why| format!("summaries.openai.base_url: {why}"))
    }
}

pub struct OpenAi {
    settings: OpenAiSettings,
    url: HttpUrl,
    client: Client,
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
    usage: Usage,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    content: Option<String>,
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

impl OpenAi {
    pub fn new(settings: OpenAiSettings, client: Client) -> Result<Self, String> {
        let url = settings.endpoint()?;
        Ok(Self {
            settings,
            url,
            client,
        })
    }

    pub fn settings(&self) -> &OpenAiSettings {
        &self.settings
    }

    fn prompt(&self, input: &Input<'_>) -> (String, String) {
        let system = format!(
            "You summarise a team chat channel. Answer with at most {} sentences \
             in the language of the conversation, and nothing else.",
            input.max_sentences
        );
        let user = input
            .messages
            .iter()
            .map(|(_, b)| b.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        (system, user)
    }
}

/// What an HTTP status means for another attempt: 408, 409, 429 and 5xx may
/// pass later; any other 4xx (bad key, bad model, request too large) will not.
pub fn classify_status(status: u16) -> Option<EngineError> {
    let why = format!("the engine answered {status}");
    match status {
        200..=299 => None,
        408 | 409 | 429 | 500..=599 => Some(EngineError::Retry(why)),
        _ => Some(EngineError::Permanent(why)),
    }
}

/// Transport failures: an address the SSRF rules refuse or an oversized answer
/// is permanent; timeouts, DNS and connection failures are worth another try.
pub fn classify_transport(err: OutboundError) -> EngineError {
    match err {
        OutboundError::Refused { .. } | OutboundError::TooLarge(_) => {
            EngineError::Permanent(err.to_string())
        }
        OutboundError::Resolve(_)
        | OutboundError::Connect(_)
        | OutboundError::Timeout(_)
        | OutboundError::Protocol(_) => EngineError::Retry(err.to_string()),
        // A certificate that does not verify will not verify on the next try.
        OutboundError::Tls(_) => EngineError::Permanent(err.to_string()),
    }
}

#[async_trait::async_trait(?Send)]
impl Engine for OpenAi {
    fn name(&self) -> &'static str {
        "external"
    }

    /// Byte-level BPE tokenisers never make more tokens than the text has bytes;
    /// each chat message adds a few framing tokens. So the prompt's bytes plus
    /// framing plus `max_tokens` bound what the engine can report.
    fn estimate(&self, input: &Input<'_>) -> u64 {
        let (system, user) = self.prompt(input);
        (system.len() + user.len()) as u64 + 16 + u64::from(self.settings.max_tokens)
    }

    async fn summarise(&self, input: &Input<'_>) -> Result<Output, EngineError> {
        let (system, user) = self.prompt(input);
        let body = json!({
            "model": self.settings.model,
            "max_tokens": self.settings.max_tokens,
            "messages": [
                { "role": "system", "content": system },
                { "role": "user", "content": user },
            ],
        });
        let body = serde_json::to_vec(&body).map_err(|e| EngineError::Permanent(e.to_string()))?;
        let mut headers = vec![("Accept", "application/json".to_owned())];
        if !self.settings.api_key.expose().is_empty() {
            headers.push((
                "Authorization",
                format!("Bearer {}", self.settings.api_key.expose()),
            ));
        }
        let answer = self
            .client
            .post_json_within(&self.url, &headers, &body, self.settings.timeout)
            .await
            .map_err(classify_transport)?;
        if let Some(err) = classify_status(answer.status) {
            return Err(err);
        }
        let completion: Completion = serde_json::from_slice(&answer.body).map_err(|e| {
            EngineError::Permanent(format!("the engine's answer is not a chat completion: {e}"))
        })?;
        let text = completion
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| EngineError::Permanent("the engine answered no content".into()))?;
        let usage = completion.usage;
        if usage.total_tokens < usage.prompt_tokens.saturating_add(usage.completion_tokens) {
            return Err(EngineError::Permanent(format!(
                "the engine's usage does not add up ({} + {} > {})",
                usage.prompt_tokens, usage.completion_tokens, usage.total_tokens
            )));
        }
        let sentences = json!(
            extractive::sentences(std::slice::from_ref(&text))
                .into_iter()
                .map(|s| json!({ "text": s.text }))
                .collect::<Vec<_>>()
        );
        Ok(Output {
            text,
            sentences,
            tokens_used: usage.total_tokens,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_retry_or_permanent() {
        assert_eq!(classify_status(200), None);
        for retry in [408, 409, 429, 500, 502, 503, 504] {
            assert!(
                matches!(classify_status(retry), Some(EngineError::Retry(_))),
                "{retry}"
            );
        }
        for permanent in [400, 401, 403, 404, 413, 422, 301] {
            assert!(
                matches!(classify_status(permanent), Some(EngineError::Permanent(_))),
                "{permanent}"
            );
        }
        assert!(matches!(
            classify_transport(OutboundError::Timeout(5)),
            EngineError::Retry(_)
        ));
        assert!(matches!(
            classify_transport(OutboundError::TooLarge(5)),
            EngineError::Permanent(_)
        ));
    }

    #[test]
    fn settings_are_off_by_default_and_checked_when_on() {
        let off = OpenAiSettings::default();
        assert!(!off.enabled());
        let mut on = OpenAiSettings {
            base_url: "http://engine.example/v1/".into(),
            model: "m".into(),
            region: "us-east1".into(),
            ..OpenAiSettings::default()
        };
        let url = on.endpoint().unwrap();
        assert_eq!(url.path, "/v1/chat/completions");
        on.region.clear();
        assert!(on.endpoint().is_err(), "neither region nor jurisdiction");
        on.jurisdiction = Some(Jurisdiction::Eu);
        assert!(on.endpoint().is_ok(), "a jurisdiction instead of a region");
        assert_eq!(on.location(), "jurisdiction eu");
        on.region = "europe-west1".into();
        assert!(on.endpoint().is_err(), "both region and jurisdiction");
        on.region.clear();
        // The key never reaches a log through the settings' Debug.
        on.api_key = Secret::new("sk-very-secret");
        assert!(!format!("{on:?}").contains("sk-very-secret"));
    }
}
