//! The headers of a rate-limit refusal: `Retry-After` and the IETF httpapi
//! RateLimit headers draft (`RateLimit-Policy: "<scope>";q=<burst>;w=<seconds>`,
//! `RateLimit: "<scope>";r=0;t=<seconds>`). The contract (`api::contract`)
//! documents them; `error.rs` adds them to the problem answer.

use std::time::Duration;

use super::rate::RateDenied;

/// A refusal's wait as `Retry-After` seconds: whole seconds, rounded up, at
/// least 1 (a client must not retry at once).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// The headers of a `429 rate_limited` for `denied`, as (name, value).
pub fn rate_limited(denied: &RateDenied) -> [(&'static str, String); 3] {
    let retry = retry_after_secs(denied.retry_after);
    let window = (f64::from(denied.burst) / f64::from(denied.per_second.max(1)))
        .ceil()
        .max(1.0) as u64;
    [
        ("Retry-After", retry.to_string()),
        (
            "RateLimit-Policy",
            format!("\"{}\";q={};w={window}", denied.scope, denied.burst),
        ),
        ("RateLimit", format!("\"{}\";r=0;t={retry}", denied.scope)),
    ]
}
