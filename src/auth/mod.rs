//! Authentication: the key set (kid-based rotation), token claims and roles, and
//! verification (signature, `exp`, `nbf`, `iat`, `aud`, `iss`). The tenant of a request comes from
//! a verified token only; `scope::extract` turns a verified token into a scope.
//! `rotation` edits the key set file (`meridian keys …`); `reload` puts a changed
//! file in force on a running node.

pub mod claims;
pub mod keys;
pub mod reload;
pub mod rotation;

pub use claims::{Actor, Claims, Permission, PermissionType, Role, perm};
pub use keys::{KeySet, TokenVerifier};
