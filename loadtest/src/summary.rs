//! The end of a global run: the verdict of the checks, the human summary (tables
//! per location and serving region) and the JSON document written to `--out`.

use serde_json::{Value, json};

use crate::checks::{Violations, WriteCheck};
use crate::global::GlobalArgs;
use crate::report::{self, Breakdown};
use crate::users::Shared;
use crate::world::World;

/// The result of a run: figures, checks, verdict.
pub struct Outcome {
    pub json: Value,
    pub human: String,
    pub failures: Vec<String>,
}

impl Outcome {
    /// Prints the summary, writes the JSON to `out`, and fails (exit code 1) when a
    /// check failed; `what` names the run in that error.
    pub fn finish(&self, out: &std::path::Path, what: &str) -> anyhow::Result<()> {
        use anyhow::Context;
        print!("{}", self.human);
        std::fs::write(out, serde_json::to_string_pretty(&self.json)?)
            .with_context(|| format!("writing {}", out.display()))?;
        println!("results: {}", out.display());
        if !self.failures.is_empty() {
            anyhow::bail!("{what} FAILED: {}", self.failures.join("; "));
        }
        Ok(())
    }
}

pub fn summarize(
    args: &GlobalArgs,
    world: &World,
    label: &str,
    shared: &Shared,
    violations: &Violations,
    writes: &WriteCheck,
    seconds: f64,
) -> Outcome {
    let b: Breakdown = report::breakdown(&shared.records, seconds);
    let mut failures = Vec::new();
    if violations.isolation > 0 {
        failures.push(format!(
            "{} answer item(s) carried another tenant's data",
            violations.isolation
        ));
    }
    if violations.residency > 0 {
        failures.push(format!(
            "{} answer(s) to residency-pinned tenants were served outside their residency",
            violations.residency
        ));
    }
    if !writes.missing.is_empty() {
        failures.push(format!(
            "{} acknowledged write(s) missing from the read-back",
            writes.missing.len()
        ));
    }
    if !writes.duplicated.is_empty() {
        failures.push(format!(
            "{} acknowledged write(s) listed more than once",
            writes.duplicated.len()
        ));
    }
    let mut human = format!(
        "global mix: {label}; {} users in {} locations, {} tenants ({} EU-pinned), \
         mix {:?}, {:.1} s\n\n",
        world.users.len(),
        world.locations.len(),
        world.tenants.len(),
        args.pinned.min(args.tenants),
        args.mix,
        seconds
    );
    human.push_str(&report::table("location", &b.by_location));
    human.push('\n');
    human.push_str(&report::table("served by", &b.by_serving_region));
    human.push('\n');
    human.push_str(&report::row("overall", &b.overall));
    human.push_str(&format!("errors: {:?}\n", b.overall.errors));
    human.push_str(&format!(
        "writes: {} acknowledged, {} listed, {} missing, {} duplicated, \
         {} unacknowledged but present\n",
        writes.acknowledged,
        writes.listed,
        writes.missing.len(),
        writes.duplicated.len(),
        writes.unacknowledged_present
    ));
    human.push_str(&format!(
        "isolation violations: {}, residency violations: {}\n",
        violations.isolation, violations.residency
    ));
    for example in &violations.examples {
        human.push_str(&format!("  {example}\n"));
    }
    match failures.is_empty() {
        true => human.push_str("checks: PASS\n"),
        false => human.push_str(&format!("checks: FAIL: {}\n", failures.join("; "))),
    }
    let json = json!({
        "routing": label,
        "seconds": seconds,
        "users": world.users.len(),
        "users_per_location": args.users_per_location,
        "tenants": world.tenants.len(),
        "pinned_tenants": args.pinned.min(args.tenants),
        "mix": { "read": args.mix.read, "write": args.mix.write, "search": args.mix.search },
        "think_ms": args.think_ms,
        "overall": b.overall,
        "by_location": b.by_location,
        "by_serving_region": b.by_serving_region,
        "dns_errors": shared.dns_errors,
        "checks": {
            "passed": failures.is_empty(),
            "failures": failures,
            "isolation_violations": violations.isolation,
            "residency_violations": violations.residency,
            "examples": violations.examples,
            "writes_passed": writes.passed(),
            "writes": writes,
        },
        "tenant_homes": world.tenants.iter()
            .map(|t| json!({"id": t.id, "home": t.home, "residency": t.allowed}))
            .collect::<Vec<_>>(),
    });
    Outcome {
        json,
        human,
        failures,
    }
}
