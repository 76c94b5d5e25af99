//! Envelope encryption (issue 15, part 2 — primitives only so far): a tenant's
//! data keys (DEKs, AES-256-GCM, versioned) encrypt fields (`envelope`); a
//! key-encryption key (KEK) per jurisdiction, held by a `KeyProvider`
//! (`provider`: a local file, or AWS KMS in `kms`), wraps the DEKs; `settings`
//! picks the provider (`encryption.provider`). Nothing stores or uses DEKs yet:
//! no DEK table, no cache, no consumer.
//!
//! AES-256-GCM comes from ring (already built for jsonwebtoken and rustls), so no
//! second AES implementation enters the tree. Key bytes live in `Zeroizing`
//! buffers, wiped when dropped, and no type here implements `Debug` with them.

pub mod envelope;
pub mod kms;
pub mod provider;
pub mod settings;
