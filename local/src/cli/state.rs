//! The key set a command signs with. Only `dev` and `migrate` create a state
//! directory; every other command refuses one without keys, naming the path,
//! instead of making a fresh key set whose tokens no running node accepts.

use std::path::Path;

use anyhow::bail;

/// `Ok` when `keys` exists; else an error naming it and how to point elsewhere.
pub fn require_keys(keys: &Path, state_dir: &Path) -> anyhow::Result<()> {
    if keys.is_file() {
        return Ok(());
    }
    bail!(
        "no key set at {} (state directory {}): run this where `meridian dev` runs, or point \
         --state-dir / MERIDIAN_STATE_DIR (or MERIDIAN_AUTH__KEYS_FILE) at the key set of the \
         nodes; only `meridian dev` and `meridian migrate` create one",
        keys.display(),
        state_dir.display()
    )
}
