//! `meridian tenant attest` / `verify-report`: checking a signed residency
//! report (`meridian::tenancy::attest`) with a public key alone, and its
//! summary for a person.

use anyhow::bail;
use serde_json::Value;

use meridian::crypto::signing::{PublicKey, Purpose, canonical_json, verify};

/// Fails unless `signed.signature` is a valid signature of `signed.report` by
/// `public_key` (base64url, 32 bytes) and names that key.
pub fn check(signed: &Value, public_key: &str) -> anyhow::Result<()> {
    let named = signed["signature"]["key_id"].as_str().unwrap_or_default();
    let key = PublicKey {
        key_id: named.to_owned(),
        algorithm: "Ed25519".into(),
        public_key: public_key.trim().to_owned(),
    };
    // `decode` refuses a key whose id is not the one the signature names.
    let raw = key
        .decode()
        .map_err(|e| anyhow::anyhow!("the report is signed by `{named}`; this key: {e}"))?;
    let Some(signature) = signed["signature"]["signature"].as_str() else {
        bail!("no signature in the report");
    };
    if signed["report"].is_null() {
        bail!("no report in the file");
    }
    verify(
        &raw,
        Purpose::ResidencyReport,
        &canonical_json(&signed["report"]),
        signature,
    )
    .map_err(|e| anyhow::anyhow!("the report's signature does not hold: {e}"))
}

/// The report's verdict, findings and evidence, one line each.
pub fn human(signed: &Value) -> String {
    let report = &signed["report"];
    let mut out = format!(
        "tenant {} ({}), home {}: {}\nsigned by {} at {}: signature valid\n",
        scalar(&report["tenant_id"]),
        scalar(&report["slug"]),
        scalar(&report["home_region"]),
        if report["compliant"] == Value::Bool(true) {
            "compliant"
        } else {
            "NOT COMPLIANT"
        },
        scalar(&signed["signature"]["key_id"]),
        scalar(&report["generated_at"]),
    );
    for finding in report["findings"].as_array().into_iter().flatten() {
        out.push_str(&format!("finding: {}\n", scalar(finding)));
    }
    for row in report["rows"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "rows {} in {}: {}\n",
            scalar(&row["table"]),
            scalar(&row["home_region"]),
            scalar(&row["rows"])
        ));
    }
    for served in report["served"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "served from {}: {} requests (last {})\n",
            scalar(&served["region"]),
            scalar(&served["requests"]),
            scalar(&served["last_seen"])
        ));
    }
    out
}

fn scalar(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian::crypto::signing::{Signer, SigningSettings};

    #[test]
    fn a_signed_report_checks_and_an_edited_one_does_not() {
        let dir = std::env::temp_dir().join(format!("attest-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let signer = Signer::load(&SigningSettings {
            key_file: dir.join("k.json"),
            trusted_keys: vec![],
        })
        .unwrap();
        let report = serde_json::json!({"tenant_id": "t", "compliant": true, "rows": []});
        let signature = signer.sign(Purpose::ResidencyReport, &canonical_json(&report));
        let mut signed = serde_json::json!({"report": report, "signature": signature});
        let key = signer.public_keys()[0].public_key.clone();
        check(&signed, &key).unwrap();
        signed["report"]["compliant"] = Value::Bool(false);
        assert!(
            check(&signed, &key)
                .unwrap_err()
                .to_string()
                .contains("does not hold")
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
