//! Signed erasure receipts. A receipt is a JSON document (what was erased,
//! rows per table, when, by whom, its id); its signature is Ed25519 by the
//! node's `Signer` with the purpose `erasure-receipt` over the document's
//! canonical bytes: JSON with object keys sorted and no whitespace, which
//! [`canonical`] writes independently of how serde_json orders maps. Anyone
//! verifies it offline with `GET /signing-keys` and
//! `crypto::signing::verify(public_key, Purpose::ErasureReceipt,
//! &canonical(&receipt), signature)` (README "Compliance").

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::crypto::signing::{Purpose, Signature, Signer, VerifyError};

/// A receipt with its signature, as stored and returned.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct SignedReceipt {
    #[schema(value_type = Object)]
    pub receipt: Value,
    pub signature: Signature,
}

/// The canonical bytes of `value`: keys sorted, no insignificant whitespace.
pub fn canonical(value: &Value) -> Vec<u8> {
    crate::crypto::signing::canonical_json(value)
}

pub fn sign(signer: &Signer, receipt: Value) -> SignedReceipt {
    let signature = signer.sign(Purpose::ErasureReceipt, &canonical(&receipt));
    SignedReceipt { receipt, signature }
}

/// Verifies a receipt with a raw Ed25519 public key (what an auditor does).
pub fn verify(public_key: &[u8], signed: &SignedReceipt) -> Result<(), VerifyError> {
    crate::crypto::signing::verify(
        public_key,
        Purpose::ErasureReceipt,
        &canonical(&signed.receipt),
        &signed.signature.signature,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_bytes_ignore_key_order() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[1,"x"],"x":null}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":null,"y":[1,"x"]},"b":1}"#).unwrap();
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(
            canonical(&a),
            br#"{"a":{"x":null,"y":[1,"x"]},"b":1}"#.to_vec()
        );
    }
}
