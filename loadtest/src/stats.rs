//! Latency and outcome statistics for a set of requests.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

#[derive(Debug, Default, Clone)]
pub struct Samples {
    latencies_us: Vec<u64>,
    statuses: BTreeMap<u16, u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub requests: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Share of requests that did not answer 2xx.
    pub error_rate: f64,
    pub statuses: BTreeMap<u16, u64>,
}

impl Samples {
    pub fn record(&mut self, status: u16, latency: Duration) {
        self.latencies_us.push(latency.as_micros() as u64);
        *self.statuses.entry(status).or_default() += 1;
    }

    pub fn summary(&self) -> Summary {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let requests = sorted.len() as u64;
        let errors: u64 = self
            .statuses
            .iter()
            .filter(|(s, _)| !(200..300).contains(*s))
            .map(|(_, n)| n)
            .sum();
        Summary {
            requests,
            p50_ms: percentile(&sorted, 50.0) as f64 / 1000.0,
            p99_ms: percentile(&sorted, 99.0) as f64 / 1000.0,
            max_ms: sorted.last().copied().unwrap_or(0) as f64 / 1000.0,
            error_rate: if requests == 0 {
                0.0
            } else {
                errors as f64 / requests as f64
            },
            statuses: self.statuses.clone(),
        }
    }
}

/// Nearest-rank percentile of sorted values (0 for none).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50.0), 50);
        assert_eq!(percentile(&values, 99.0), 99);
        assert_eq!(percentile(&values, 100.0), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn summary_counts_non_2xx_as_errors() {
        let mut samples = Samples::default();
        for (status, ms) in [(200, 1), (200, 2), (201, 3), (429, 4), (500, 5)] {
            samples.record(status, Duration::from_millis(ms));
        }
        let summary = samples.summary();
        assert_eq!(summary.requests, 5);
        assert!((summary.error_rate - 0.4).abs() < 1e-9);
        assert_eq!(summary.p50_ms, 3.0);
        assert_eq!(summary.max_ms, 5.0);
    }
}
