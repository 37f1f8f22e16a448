//! `Xenpv.toml`: how the runner boots an application, kept in the crate
//! next to its `Cargo.toml`. Every key is optional; the command line
//! overrides the file.
//!
//! ```toml
//! memory = 32          # MiB for the application's guest
//! vcpus = 1
//! timeout = 120        # seconds a guest may run before it is killed
//! extra = "verbose=1"  # the guest's command line (after cargo's arguments)
//! dom0 = "dom0.sh"     # a script run in dom0 while the guests run
//!
//! [[guest]]            # a peer booted with the application
//! name = "server"
//! bin = "server"       # a binary of this package (built as needed), or
//! # image = "path/to/an/image"
//! memory = 16
//! ```

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The file's name, looked up in the crate's folder.
pub const FILE_NAME: &str = "Xenpv.toml";

/// The whole file.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub memory: Option<u32>,
    pub vcpus: Option<u32>,
    pub timeout: Option<u64>,
    pub extra: Option<String>,
    /// A dom0 script, relative to the file's folder.
    pub dom0: Option<PathBuf>,
    #[serde(default, rename = "guest")]
    pub guests: Vec<PeerConfig>,
}

/// One `[[guest]]`: a peer of the application.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub name: String,
    /// A binary target of the same package.
    pub bin: Option<String>,
    /// An image file, relative to the file's folder.
    pub image: Option<PathBuf>,
    pub memory: Option<u32>,
    pub vcpus: Option<u32>,
    pub extra: Option<String>,
}

impl Config {
    /// Parses `text` (from `origin`, for messages) and checks what serde cannot.
    pub fn parse(text: &str, origin: &Path) -> Result<Config> {
        let config: Config =
            toml::from_str(text).with_context(|| format!("reading {}", origin.display()))?;
        for peer in &config.guests {
            match (&peer.bin, &peer.image) {
                (Some(_), None) | (None, Some(_)) => {}
                _ => bail!(
                    "{}: [[guest]] `{}` needs exactly one of `bin = \"<binary of this package>\"` \
                     or `image = \"<path>\"`",
                    origin.display(),
                    peer.name
                ),
            }
        }
        if config.memory == Some(0) || config.vcpus == Some(0) || config.timeout == Some(0) {
            bail!(
                "{}: memory, vcpus and timeout must be positive",
                origin.display()
            );
        }
        Ok(config)
    }

    /// `Xenpv.toml` in `dir`, or the default when there is none.
    pub fn load(dir: &Path) -> Result<Config> {
        let path = dir.join(FILE_NAME);
        match std::fs::read_to_string(&path) {
            Ok(text) => Config::parse(&text, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_file() {
        let text = "memory = 64\nvcpus = 2\ntimeout = 30\nextra = \"a=1\"\ndom0 = \"d.sh\"\n\
                    [[guest]]\nname = \"server\"\nbin = \"server\"\nmemory = 16\n";
        let c = Config::parse(text, Path::new("Xenpv.toml")).unwrap();
        assert_eq!(c.memory, Some(64));
        assert_eq!(c.vcpus, Some(2));
        assert_eq!(c.timeout, Some(30));
        assert_eq!(c.extra.as_deref(), Some("a=1"));
        assert_eq!(c.dom0, Some(PathBuf::from("d.sh")));
        assert_eq!(c.guests.len(), 1);
        assert_eq!(c.guests[0].bin.as_deref(), Some("server"));
        assert_eq!(c.guests[0].memory, Some(16));
    }

    #[test]
    fn mistakes_are_named() {
        for (text, needle) in [
            ("memroy = 3\n", "unknown field"),
            ("[[guest]]\nname = \"x\"\n", "exactly one of"),
            (
                "[[guest]]\nname = \"x\"\nbin = \"a\"\nimage = \"b\"\n",
                "exactly one of",
            ),
            ("memory = 0\n", "positive"),
            ("memory = \"big\"\n", "invalid type"),
        ] {
            let err = format!(
                "{:#}",
                Config::parse(text, Path::new("X.toml")).unwrap_err()
            );
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn missing_file_is_the_default() {
        let dir = std::env::temp_dir().join(format!("xenpv-run-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(Config::load(&dir).unwrap(), Config::default());
        std::fs::write(dir.join(FILE_NAME), "vcpus = 3\n").unwrap();
        assert_eq!(Config::load(&dir).unwrap().vcpus, Some(3));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
