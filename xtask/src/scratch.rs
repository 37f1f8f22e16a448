//! The "someone else's unikernel" test: a scratch application outside the
//! repository that depends on xenpv by path, set up exactly as the README
//! tells users to. The snippets below are the single source of truth; the
//! README quotes them (`cargo xtask app-template` prints them).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::payload::Guest;
use crate::util::{self, run_inherited};

/// The dependency path in [`APP_CARGO_TOML`], replaced by the real one.
pub const XENPV_PATH_PLACEHOLDER: &str = "../xenpv";

/// The application's `Cargo.toml`.
pub const APP_CARGO_TOML: &str = r#"[package]
name = "myapp"
version = "0.1.0"
edition = "2021"

[dependencies]
xenpv = { path = "../xenpv" }   # or a git dependency

[profile.dev]
panic = "abort"

[profile.release]
panic = "abort"
"#;

/// The application's `.cargo/config.toml`.
pub const APP_CARGO_CONFIG: &str = r#"[build]
target = "x86_64-unknown-none"

[target.x86_64-unknown-none]
rustflags = ["-C", "link-arg=-Txenpv.ld", "-C", "relocation-model=static"]
"#;

/// The application's `src/main.rs`.
pub const APP_MAIN_RS: &str = r#"#![no_std]
#![no_main]

xenpv::main!(main);

fn main() {
    xenpv::println!("scratch app says hi");
}
"#;

/// An xl config for it (xtask rewrites `kernel=`).
pub const APP_XL_CFG: &str = r#"name = "myapp"
type = "pv"
kernel = "/path/to/target/x86_64-unknown-none/release/myapp"
memory = 4
on_crash = "preserve"
"#;

/// The binary's name, which is also its domain name.
pub const APP_NAME: &str = "myapp";

/// The line the application prints.
pub const APP_GREETING: &str = "scratch app says hi";

/// `cargo xtask app-template`: prints the files for the README.
pub fn cmd_app_template(args: &[String]) -> Result<()> {
    if let Some(arg) = args.first() {
        bail!("`app-template` takes no arguments (got `{arg}`)");
    }
    let text = format!(
        "# Cargo.toml\n{APP_CARGO_TOML}\n# .cargo/config.toml\n{APP_CARGO_CONFIG}\n\
         # rust-toolchain.toml: a copy of xenpv's\n\n# src/main.rs\n{APP_MAIN_RS}\n\
         # an xl config\n{APP_XL_CFG}"
    );
    // Written without println! so that `| head` does not make us panic.
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(())
}

/// Where the scratch application is built: outside the repository, and kept
/// between runs so that rebuilding it is incremental.
pub fn app_dir() -> PathBuf {
    std::env::temp_dir().join("xenpv-scratch-app")
}

/// Writes the application, builds it with `cargo build --release` as a user
/// would, and returns it as a guest.
pub fn build_app() -> Result<Guest> {
    let repo = util::repo_root();
    let dir = app_dir();
    let repo_str = repo.to_str().context("the repository path is not UTF-8")?;
    let toolchain = fs::read_to_string(repo.join("rust-toolchain.toml"))
        .context("reading rust-toolchain.toml")?;
    let mut manifest = APP_CARGO_TOML.replace(
        &format!("path = \"{XENPV_PATH_PLACEHOLDER}\""),
        &format!("path = \"{repo_str}\""),
    );
    // Cargo looks for a workspace in every parent folder and trips over any
    // Cargo.toml it finds there (seen: a stray /tmp/Cargo.toml). Only then,
    // make the app its own workspace; otherwise keep the README's text exactly.
    if let Some(parent) = dir
        .ancestors()
        .skip(1)
        .map(|d| d.join("Cargo.toml"))
        .find(|m| m.exists())
    {
        println!(
            "xtask: {} exists; giving the scratch app an empty [workspace] so cargo ignores it",
            parent.display()
        );
        manifest.push_str("\n[workspace]\n");
    }
    write_if_changed(&dir.join("Cargo.toml"), &manifest)?;
    write_if_changed(&dir.join(".cargo/config.toml"), APP_CARGO_CONFIG)?;
    write_if_changed(&dir.join("rust-toolchain.toml"), &toolchain)?;
    write_if_changed(&dir.join("src/main.rs"), APP_MAIN_RS)?;

    println!(
        "xtask: building the scratch application in {} (cargo build --release)",
        dir.display()
    );
    let mut cmd = util::cargo();
    cmd.current_dir(&dir).args(["build", "--release"]);
    // Build it like a user in a fresh shell would: our own target folder and
    // flags must not leak in.
    for var in [
        "CARGO_TARGET_DIR",
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    run_inherited(&mut cmd, Duration::from_secs(1800))
        .context("building the scratch application")?;
    let image = dir
        .join("target/x86_64-unknown-none/release")
        .join(APP_NAME);
    if !image.is_file() {
        bail!(
            "the scratch application built, but {} is missing",
            image.display()
        );
    }
    let image = crate::images::stripped_copy(&image)?;
    Ok(Guest {
        name: APP_NAME.into(),
        image,
        cfg: APP_XL_CFG.into(),
        companion: None,
    })
}

/// Keeps the file's modification time when nothing changed (cargo rebuilds less).
fn write_if_changed(path: &Path, text: &str) -> Result<()> {
    if fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_agree() {
        assert!(APP_CARGO_TOML.contains(&format!("path = \"{XENPV_PATH_PLACEHOLDER}\"")));
        assert!(APP_CARGO_TOML.contains(&format!("name = \"{APP_NAME}\"")));
        assert!(APP_XL_CFG.contains(&format!("name = \"{APP_NAME}\"")));
        assert!(APP_MAIN_RS.contains(APP_GREETING));
    }

    /// The README shows these very files, so that what users copy is what
    /// `cargo xtask test` builds and boots.
    #[test]
    fn readme_quotes_the_template() {
        let readme = util::repo_root().join("README.md");
        let text = fs::read_to_string(&readme).expect("README.md");
        for (what, snippet) in [
            ("Cargo.toml", APP_CARGO_TOML),
            (".cargo/config.toml", APP_CARGO_CONFIG),
            ("src/main.rs", APP_MAIN_RS),
            ("the xl config", APP_XL_CFG),
        ] {
            assert!(
                text.contains(snippet),
                "README.md must quote the app's {what} exactly as xtask/src/scratch.rs has it:\n{snippet}"
            );
        }
    }
}
