//! The report maths of the global mix: one `Record` per logical request (after
//! following redirects), aggregated per location, per serving region and overall
//! into throughput, latency percentiles, error buckets and routing shares.
//! Pure: no I/O, so every figure in the summary is unit-tested here.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::stats::percentile;

/// What a virtual user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Read,
    Write,
    Search,
}

/// One logical request as the user saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// When it was sent, since the start of the run (µs).
    pub start_us: u64,
    /// Until the final answer, redirects included (µs).
    pub latency_us: u64,
    pub location: String,
    pub op: Op,
    /// Final status; 599 = no HTTP answer (connect error, reset, timeout).
    pub status: u16,
    /// The problem `code` of an error answer, or the transport failure kind.
    pub code: Option<String>,
    /// The region whose node the final attempt was sent to.
    pub landing: Option<String>,
    /// `X-Meridian-Region` of the final answer.
    pub served: Option<String>,
    /// `X-Meridian-Home-Region` of the final answer.
    pub home: Option<String>,
    /// 307s followed before the final answer.
    pub redirects: u32,
}

impl Record {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn end_us(&self) -> u64 {
        self.start_us + self.latency_us
    }

    /// Served by another region than the one whose node received it: one hop.
    pub fn forwarded(&self) -> bool {
        matches!((&self.landing, &self.served), (Some(l), Some(s)) if l != s)
    }

    pub fn at_home(&self) -> bool {
        matches!((&self.served, &self.home), (Some(s), Some(h)) if s == h)
    }

    /// The error bucket: `"<status> <code>"`, or `None` for a success.
    pub fn error_bucket(&self) -> Option<String> {
        if self.ok() {
            return None;
        }
        Some(match &self.code {
            Some(code) => format!("{} {code}", self.status),
            None => self.status.to_string(),
        })
    }
}

/// The figures of one group of records.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct GroupStats {
    pub requests: u64,
    pub ok: u64,
    pub throughput_rps: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Error bucket (`"<status> <code>"`) → count.
    pub errors: BTreeMap<String, u64>,
    pub error_share: f64,
    /// Shares of the requests that got an answer naming its serving region.
    pub forwarded_share: f64,
    pub redirected_share: f64,
    pub home_share: f64,
    pub by_op: BTreeMap<String, u64>,
}

/// `part / whole`, 0 for an empty whole.
pub fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Aggregates `records` over a run of `seconds`.
pub fn aggregate<'a>(records: impl IntoIterator<Item = &'a Record>, seconds: f64) -> GroupStats {
    let mut stats = GroupStats::default();
    let mut latencies = Vec::new();
    let (mut routed, mut forwarded, mut redirected, mut home) = (0, 0, 0, 0);
    for r in records {
        stats.requests += 1;
        latencies.push(r.latency_us);
        *stats
            .by_op
            .entry(format!("{:?}", r.op).to_lowercase())
            .or_default() += 1;
        match r.error_bucket() {
            None => stats.ok += 1,
            Some(bucket) => *stats.errors.entry(bucket).or_default() += 1,
        }
        if r.redirects > 0 {
            redirected += 1;
        }
        if r.served.is_some() {
            routed += 1;
            forwarded += u64::from(r.forwarded());
            home += u64::from(r.at_home());
        }
    }
    latencies.sort_unstable();
    let ms = |us: u64| us as f64 / 1000.0;
    stats.p50_ms = ms(percentile(&latencies, 50.0));
    stats.p95_ms = ms(percentile(&latencies, 95.0));
    stats.p99_ms = ms(percentile(&latencies, 99.0));
    stats.max_ms = ms(latencies.last().copied().unwrap_or(0));
    stats.throughput_rps = if seconds > 0.0 {
        stats.requests as f64 / seconds
    } else {
        0.0
    };
    stats.error_share = share(stats.requests - stats.ok, stats.requests);
    stats.forwarded_share = share(forwarded, routed);
    stats.redirected_share = share(redirected, stats.requests);
    stats.home_share = share(home, routed);
    stats
}

/// Aggregates per key (records with no key are left out of every group).
pub fn grouped(
    records: &[Record],
    seconds: f64,
    key: impl Fn(&Record) -> Option<String>,
) -> BTreeMap<String, GroupStats> {
    let mut groups: BTreeMap<String, Vec<&Record>> = BTreeMap::new();
    for r in records {
        if let Some(k) = key(r) {
            groups.entry(k).or_default().push(r);
        }
    }
    groups
        .into_iter()
        .map(|(k, rs)| (k, aggregate(rs, seconds)))
        .collect()
}

/// Overall, per location and per serving region.
#[derive(Clone, Debug, Serialize)]
pub struct Breakdown {
    pub overall: GroupStats,
    pub by_location: BTreeMap<String, GroupStats>,
    pub by_serving_region: BTreeMap<String, GroupStats>,
}

pub fn breakdown(records: &[Record], seconds: f64) -> Breakdown {
    Breakdown {
        overall: aggregate(records, seconds),
        by_location: grouped(records, seconds, |r| Some(r.location.clone())),
        by_serving_region: grouped(records, seconds, |r| r.served.clone()),
    }
}

/// One line per group, for the human summary.
pub fn table(title: &str, groups: &BTreeMap<String, GroupStats>) -> String {
    let mut out = format!(
        "{title:<18} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>6} {:>6} {:>6}\n",
        "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "fwd", "307", "home"
    );
    for (name, g) in groups {
        out.push_str(&row(name, g));
    }
    out
}

pub fn row(name: &str, g: &GroupStats) -> String {
    format!(
        "{name:<18} {:>8} {:>8.1} {:>8.2} {:>8.2} {:>8.2} {:>6.2}% {:>5.1}% {:>5.1}% {:>5.1}%\n",
        g.requests,
        g.throughput_rps,
        g.p50_ms,
        g.p95_ms,
        g.p99_ms,
        g.error_share * 100.0,
        g.forwarded_share * 100.0,
        g.redirected_share * 100.0,
        g.home_share * 100.0
    )
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub fn record(location: &str, status: u16, ms: u64) -> Record {
        Record {
            start_us: 0,
            latency_us: ms * 1000,
            location: location.into(),
            op: Op::Read,
            status,
            code: None,
            landing: Some(location.into()),
            served: Some(location.into()),
            home: Some(location.into()),
            redirects: 0,
        }
    }

    #[test]
    fn shares_handle_empty_wholes() {
        assert_eq!(share(0, 0), 0.0);
        assert_eq!(share(1, 4), 0.25);
    }

    #[test]
    fn forwarded_redirected_and_home_are_told_apart() {
        let home = record("us", 200, 1);
        let mut forwarded = record("us", 200, 1);
        forwarded.served = Some("eu".into());
        forwarded.home = Some("eu".into());
        let mut redirected = record("us", 200, 1);
        redirected.redirects = 1;
        redirected.landing = Some("eu".into());
        redirected.served = Some("eu".into());
        redirected.home = Some("eu-3".into());
        let mut failed = record("us", 599, 1);
        failed.served = None;
        failed.code = Some("connect".into());
        let g = aggregate([&home, &forwarded, &redirected, &failed], 2.0);
        assert_eq!(g.requests, 4);
        assert_eq!(g.ok, 3);
        assert_eq!(g.throughput_rps, 2.0);
        // Shares of routing are over the three answers that name a region.
        assert!((g.forwarded_share - 1.0 / 3.0).abs() < 1e-9);
        assert!((g.home_share - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(g.redirected_share, 0.25);
        assert_eq!(g.errors.get("599 connect"), Some(&1));
    }

    #[test]
    fn errors_are_bucketed_by_status_and_code() {
        let mut a = record("us", 503, 1);
        a.code = Some("unavailable".into());
        let b = a.clone();
        let mut c = record("us", 429, 1);
        c.code = Some("rate_limited".into());
        let d = record("us", 500, 1);
        let g = aggregate([&a, &b, &c, &d, &record("us", 201, 1)], 1.0);
        let expected: BTreeMap<String, u64> = [
            ("503 unavailable".to_owned(), 2),
            ("429 rate_limited".to_owned(), 1),
            ("500".to_owned(), 1),
        ]
        .into_iter()
        .collect();
        assert_eq!(g.errors, expected);
        assert!((g.error_share - 0.8).abs() < 1e-9);
    }

    #[test]
    fn groups_split_by_location_and_serving_region() {
        let mut records: Vec<Record> = (1..=100).map(|ms| record("us", 200, ms)).collect();
        let mut eu = record("eu", 200, 500);
        eu.served = Some("us".into());
        records.push(eu);
        let mut lost = record("eu", 599, 900);
        lost.served = None;
        records.push(lost);
        let b = breakdown(&records, 10.0);
        assert_eq!(b.overall.requests, 102);
        assert_eq!(b.by_location["us"].requests, 100);
        assert_eq!(b.by_location["us"].p50_ms, 50.0);
        assert_eq!(b.by_location["us"].p95_ms, 95.0);
        assert_eq!(b.by_location["us"].p99_ms, 99.0);
        assert_eq!(b.by_location["eu"].requests, 2);
        // The unanswered request has no serving region and is in no region's group.
        assert_eq!(b.by_serving_region["us"].requests, 101);
        assert!(!b.by_serving_region.contains_key("eu"));
        assert_eq!(b.by_location["eu"].forwarded_share, 1.0);
    }
}
