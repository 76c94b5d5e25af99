//! The headers of a rate-limit refusal: `Retry-After` and the IETF httpapi
//! RateLimit headers draft (`RateLimit-Policy: "<scope>";q=<burst>;w=<seconds>`,
//! `RateLimit: "<scope>";r=0;t=<seconds>`). The contract (`api::contract`)
//! documents them; `error.rs` adds them to the problem answer.

use super::rate::RateDenied;

/// The headers of a `429 rate_limited` for `denied`, as (name, value).
pub fn rate_limited(denied: &RateDenied) -> [(&'static str, String); 3] {
    // Whole seconds, at least 1: a client must not retry at once.
    let retry = denied.retry_after.as_secs_f64().ceil().max(1.0) as u64;
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
