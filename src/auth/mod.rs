//! Authentication: the key set (kid-based rotation), token claims and roles, and
//! verification (signature, `exp`, `aud`, `iss`). The tenant of a request comes from
//! a verified token only; `scope::extract` turns a verified token into a scope.

pub mod claims;
pub mod keys;

pub use claims::{Claims, Permission, Role};
pub use keys::{KeySet, TokenVerifier};
