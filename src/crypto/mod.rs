//! Envelope encryption (issue 15, part 2): a tenant's data keys (DEKs,
//! AES-256-GCM, versioned) encrypt fields (`envelope`); a key-encryption key
//! (KEK) per jurisdiction, held by a `KeyProvider` (`provider`: a local file, or
//! AWS KMS in `kms`), wraps the DEKs;
//! the `keyring` stores the wrapped DEKs (`tenant_keys`), caches unwrapped ones
//! and is what the rest of the code seals and opens with (`settings`:
//! `encryption.*`). `signing` is the Ed25519 key that signs evidence for
//! auditors (audit checkpoints, erasure receipts, residency reports).
//!
//! AES-256-GCM comes from ring (already built for jsonwebtoken and rustls), so no
//! second AES implementation enters the tree. Key bytes live in `Zeroizing`
//! buffers, wiped when dropped, and no type here implements `Debug` with them.

pub mod envelope;
pub mod keyring;
pub mod kms;
pub mod messages;
pub mod provider;
pub mod rotation;
pub mod seal_messages;
pub mod secrets;
pub mod settings;
pub mod signing;
