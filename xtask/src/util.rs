//! xtask's helpers: the repository and its target directory. The general
//! ones (running programs with a limit, finding tools) live in xenpv-run's
//! `util`, re-exported here.

use std::path::{Path, PathBuf};

pub use xenpv_run::util::*;

/// The repository root: the folder holding the workspace's `Cargo.toml`.
///
/// `XENPV_REPO` overrides it (useful when the xtask binary is built outside
/// the repository); otherwise it is the parent of this crate's folder.
pub fn repo_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("XENPV_REPO") {
        return PathBuf::from(dir);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Cargo's target directory for builds run in the repository: honours
/// `CARGO_TARGET_DIR` like cargo itself does.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                repo_root().join(dir)
            }
        }
        None => repo_root().join("target"),
    }
}
