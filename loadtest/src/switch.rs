//! The figures of a failover drill, from the records of the run: when the
//! region's location got its first answer served elsewhere, the last answer the
//! region itself gave, the errors after the action, a per-second timeline, and
//! when the GeoDNS answer for that location moved. Pure, unit-tested.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::report::Record;

/// How the switch went, from the records.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Switch {
    /// Action → end of the first success, for a user in the region's location and
    /// a tenant homed in the region, served by another region.
    pub served_elsewhere_ms: Option<f64>,
    /// Action → end of the last success served by the region (any location).
    pub last_served_by_region_ms: Option<f64>,
    /// Action → end of the last error seen by a user in the region's location.
    pub last_error_in_location_ms: Option<f64>,
    /// Errors of requests ending after the action, by bucket: all locations.
    pub errors_after_action: BTreeMap<String, u64>,
    /// The same, for the region's own location.
    pub errors_after_action_in_location: BTreeMap<String, u64>,
    /// The region's location, second by second from the action.
    pub timeline: Vec<Second>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Second {
    pub second: u64,
    pub requests: u64,
    pub errors: u64,
    /// Serving region → successes.
    pub served: BTreeMap<String, u64>,
}

pub fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Measures the switch away from `region` (whose users are in `location`).
pub fn switch(records: &[Record], action_us: u64, location: &str, region: &str) -> Switch {
    let mut s = Switch::default();
    let after: Vec<&Record> = records.iter().filter(|r| r.end_us() >= action_us).collect();
    let since = |r: &Record| ms(r.end_us() - action_us);
    s.served_elsewhere_ms = after
        .iter()
        .filter(|r| {
            r.ok()
                && r.start_us >= action_us
                && r.location == location
                && r.home.as_deref() == Some(region)
                && r.served.as_deref().is_some_and(|s| s != region)
        })
        .map(|r| since(r))
        .reduce(f64::min);
    s.last_served_by_region_ms = after
        .iter()
        .filter(|r| r.ok() && r.served.as_deref() == Some(region))
        .map(|r| since(r))
        .reduce(f64::max);
    for r in &after {
        if let Some(bucket) = r.error_bucket() {
            *s.errors_after_action.entry(bucket.clone()).or_default() += 1;
            if r.location == location {
                *s.errors_after_action_in_location.entry(bucket).or_default() += 1;
                let t = since(r);
                s.last_error_in_location_ms =
                    Some(s.last_error_in_location_ms.map_or(t, |m: f64| m.max(t)));
            }
        }
        if r.location == location {
            let second = (r.end_us() - action_us) / 1_000_000;
            if s.timeline.len() <= second as usize {
                s.timeline.resize_with(second as usize + 1, Second::default);
            }
            let slot = &mut s.timeline[second as usize];
            slot.second = second;
            slot.requests += 1;
            match (&r.served, r.ok()) {
                (Some(served), true) => *slot.served.entry(served.clone()).or_default() += 1,
                (_, false) => slot.errors += 1,
                _ => {}
            }
        }
    }
    for (i, slot) in s.timeline.iter_mut().enumerate() {
        slot.second = i as u64;
    }
    s
}

/// Action → the first DNS answer (from the region's location) that is not `from`.
pub fn dns_moved(samples: &[(u64, Option<IpAddr>)], action_us: u64, from: IpAddr) -> Option<f64> {
    samples
        .iter()
        .find(|(t, answer)| *t >= action_us && answer.is_some_and(|ip| ip != from))
        .map(|(t, _)| ms(t - action_us))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::record;

    fn at(mut r: Record, start_ms: u64, home: &str, served: Option<&str>) -> Record {
        r.start_us = start_ms * 1000;
        r.home = Some(home.into());
        r.served = served.map(Into::into);
        r
    }

    #[test]
    fn the_switch_is_timed_from_the_action() {
        let eu = "europe-west1";
        let records = vec![
            at(record(eu, 200, 1), 500, eu, Some(eu)),
            // In flight across the action, still served by the region.
            at(record(eu, 200, 700), 900, eu, Some(eu)),
            at(record(eu, 599, 2000), 1100, eu, None),
            // Another tenant's request, already served elsewhere before: not the switch.
            at(record(eu, 200, 1), 1200, "us-east1", Some("us-east1")),
            at(record(eu, 200, 5), 3000, eu, Some("europe-west3")),
            at(record("us-east1", 503, 1), 1500, eu, Some("us-east1")),
        ];
        let s = switch(&records, 1_000_000, eu, eu);
        assert_eq!(s.served_elsewhere_ms, Some(2005.0));
        assert_eq!(s.last_served_by_region_ms, Some(600.0));
        assert_eq!(s.last_error_in_location_ms, Some(2100.0));
        assert_eq!(s.errors_after_action.get("599"), Some(&1));
        assert_eq!(s.errors_after_action.get("503"), Some(&1));
        assert_eq!(s.errors_after_action_in_location.len(), 1);
        assert_eq!(s.timeline.len(), 3);
        assert_eq!(s.timeline[0].requests, 2);
        assert_eq!(s.timeline[2].errors, 1);
        assert_eq!(s.timeline[2].served.get("europe-west3"), Some(&1));
    }

    #[test]
    fn dns_move_is_the_first_other_answer_after_the_action() {
        let (a, b): (IpAddr, IpAddr) =
            ("127.0.0.21".parse().unwrap(), "127.0.0.31".parse().unwrap());
        let samples = vec![
            (0, Some(a)),
            (900, Some(b)),
            (1000, Some(a)),
            (1100, None),
            (1500, Some(b)),
        ];
        assert_eq!(dns_moved(&samples, 1000, a), Some(0.5));
        assert_eq!(dns_moved(&samples[..4], 1000, a), None);
    }
}
