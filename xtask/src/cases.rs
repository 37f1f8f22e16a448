//! The under-Xen test cases and the guest programs, discovered on disk.
//!
//! A case is a folder `tests/xen/<case>/` holding `case.toml` (how it
//! boots, how each guest must end, what each must print) and the guest
//! programs only it uses: `<guest>.rs`, its xl config `<guest>.cfg` and,
//! optionally, a dom0 companion script `<guest>.dom0.sh`. A case may also
//! boot the gallery's programs (`examples/<name>.rs`, with their `.cfg`
//! and `.dom0.sh` next to them). Folders without `case.toml` (such as
//! `tests/xen/bench/`) only hold programs for other commands.
//!
//! ```toml
//! # What the case checks.
//! mode = "domu"            # or "dom0": the single guest is dom0 itself
//!
//! [[guest]]
//! name = "grant_linux"     # tests/xen/*/grant_linux.rs or examples/grant_linux.rs
//! reason = "poweroff"      # poweroff, crash, gone (destroyed by dom0), ...
//! output = ['grant_linux: PASS']   # regexes, each must match a console line
//! dom0_output = ['image: ok']      # optional: regexes for its dom0 scripts' lines
//! ```
//!
//! The test programs are built from a manifest xtask writes in
//! `target/xen-tests/` (one `[[bin]]` per program found), against xenpv and
//! `xenpv-test-support`, with the repository's profiles and lock file.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::images::{self, Profile};
use crate::util::{self, run_inherited, GUEST_TARGET};
use xenpv_run::payload::{self, Guest};

/// How a case is booted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// As domUs of the lab's Linux dom0 (`xl create`); all such cases share one boot.
    Domu,
    /// The single guest is booted as dom0 itself (one boot per case).
    Dom0,
}

/// What one guest of a case must do.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The program (and domain name).
    pub name: String,
    /// Shutdown reason: `poweroff`, `crash`, `gone`, ...
    pub reason: String,
    /// Regular expressions (regex-lite syntax) that must each match a line of its console.
    #[serde(default)]
    pub output: Vec<String>,
    /// Regular expressions that must each match a line printed by its dom0
    /// scripts (`<name>.dom0.sh` and `<name>.pre.dom0.sh`), e.g. a check
    /// the companion makes after the guest has gone.
    #[serde(default)]
    pub dom0_output: Vec<String>,
}

/// One test case: guests booted together.
#[derive(Clone, Debug)]
pub struct Case {
    /// The folder's name.
    pub name: String,
    pub mode: Mode,
    pub guests: Vec<Expect>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    mode: Mode,
    #[serde(rename = "guest")]
    guests: Vec<Expect>,
}

/// Where a program comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A gallery program: `examples/<name>.rs`, an `[[example]]` of xenpv.
    Example,
    /// A test program in its case folder.
    Test,
}

/// A guest program: its source folder holds `<name>.rs`, `<name>.cfg` and
/// perhaps `<name>.dom0.sh`.
#[derive(Clone, Debug)]
pub struct Program {
    pub name: String,
    pub kind: Kind,
    pub dir: PathBuf,
}

impl Program {
    /// Its xl config.
    pub fn cfg(&self) -> Result<String> {
        let path = self.dir.join(format!("{}.cfg", self.name));
        fs::read_to_string(&path).with_context(|| {
            format!(
                "no xl config for `{}`: {} is missing (every guest booted under xl needs one, \
                 e.g. name = \"{0}\", type = \"pv\", kernel = \"...\", memory = 8)",
                self.name,
                path.display()
            )
        })
    }

    /// Its dom0 companion script, if it has one.
    pub fn companion(&self) -> Result<Option<String>> {
        self.optional_file("dom0.sh")
    }

    /// Its dom0 pre-create script (run before its `xl create`), if it has one.
    pub fn pre_create(&self) -> Result<Option<String>> {
        self.optional_file("pre.dom0.sh")
    }

    fn optional_file(&self, suffix: &str) -> Result<Option<String>> {
        let path = self.dir.join(format!("{}.{suffix}", self.name));
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// The guest to boot from `image`.
    pub fn guest(&self, image: &Path) -> Result<Guest> {
        Ok(Guest {
            name: self.name.clone(),
            image: image.to_path_buf(),
            cfg: self.cfg()?,
            companion: self.companion()?,
            pre_create: self.pre_create()?,
            ramdisk: None,
        })
    }
}

fn tests_dir() -> PathBuf {
    util::repo_root().join("tests/xen")
}

/// Every program: the gallery's `[[example]]`s and the `.rs` files of the
/// test tree. Names are unique (they are also domain names).
pub fn programs() -> Result<BTreeMap<String, Program>> {
    let mut found = BTreeMap::new();
    let examples = util::repo_root().join("examples");
    for name in images::example_names()? {
        found.insert(
            name.clone(),
            Program {
                name,
                kind: Kind::Example,
                dir: examples.clone(),
            },
        );
    }
    for dir in subdirs(&tests_dir())? {
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".rs"))
            else {
                continue;
            };
            payload::check_name(name)?;
            let program = Program {
                name: name.to_string(),
                kind: Kind::Test,
                dir: dir.clone(),
            };
            if let Some(other) = found.insert(name.to_string(), program) {
                bail!(
                    "two guest programs are named `{name}` ({} and {}): names are domain names, make them unique",
                    other.dir.display(),
                    dir.display()
                );
            }
        }
    }
    Ok(found)
}

/// Every case, in folder order, each checked against `programs`.
pub fn cases(programs: &BTreeMap<String, Program>) -> Result<Vec<Case>> {
    let mut cases = Vec::new();
    for dir in subdirs(&tests_dir())? {
        let file = dir.join("case.toml");
        if !file.exists() {
            continue;
        }
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let text =
            fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        let parsed: CaseFile =
            toml::from_str(&text).with_context(|| format!("reading {}", file.display()))?;
        let case = Case {
            name,
            mode: parsed.mode,
            guests: parsed.guests,
        };
        check_case(&case, programs).with_context(|| format!("in {}", file.display()))?;
        cases.push(case);
    }
    Ok(cases)
}

fn check_case(case: &Case, programs: &BTreeMap<String, Program>) -> Result<()> {
    if case.guests.is_empty() {
        bail!("a case needs at least one [[guest]]");
    }
    if case.mode == Mode::Dom0 && case.guests.len() != 1 {
        bail!("a dom0 case boots exactly one guest");
    }
    for g in &case.guests {
        if !programs.contains_key(&g.name) {
            bail!(
                "no program `{}`: add tests/xen/{}/{0}.rs (or name a gallery example)",
                g.name,
                case.name
            );
        }
        for pattern in g.output.iter().chain(&g.dom0_output) {
            regex_lite::Regex::new(pattern).with_context(|| format!("bad pattern /{pattern}/"))?;
        }
    }
    Ok(())
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// The generated package of the test programs.
const TESTS_PACKAGE: &str = "xenpv-xen-tests";

/// Writes `target/xen-tests/Cargo.toml` for the test programs of
/// `programs` and returns its path.
fn write_manifest(programs: &BTreeMap<String, Program>) -> Result<PathBuf> {
    let repo = util::repo_root();
    let dir = util::target_dir().join("xen-tests");
    fs::create_dir_all(&dir)?;
    let repo_manifest: toml::Table = toml::from_str(&fs::read_to_string(repo.join("Cargo.toml"))?)
        .context("reading the repository's Cargo.toml")?;
    let mut manifest = toml::Table::new();
    let mut package = toml::Table::new();
    package.insert("name".into(), TESTS_PACKAGE.into());
    package.insert("version".into(), "0.0.0".into());
    package.insert("edition".into(), "2021".into());
    package.insert("publish".into(), false.into());
    manifest.insert("package".into(), package.into());
    let path_dep = |p: PathBuf, features: &[&str]| -> toml::Value {
        let mut t = toml::Table::new();
        t.insert("path".into(), p.to_string_lossy().into_owned().into());
        if !features.is_empty() {
            t.insert(
                "features".into(),
                features
                    .iter()
                    .map(|f| toml::Value::from(*f))
                    .collect::<Vec<_>>()
                    .into(),
            );
        }
        t.into()
    };
    let mut deps = toml::Table::new();
    deps.insert("xenpv".into(), path_dep(repo.clone(), &[]));
    deps.insert(
        "xenpv-test-support".into(),
        path_dep(repo.join("tests/support"), &["guest"]),
    );
    manifest.insert("dependencies".into(), deps.into());
    let bins: Vec<toml::Value> = programs
        .values()
        .filter(|p| p.kind == Kind::Test)
        .map(|p| {
            let mut t = toml::Table::new();
            t.insert("name".into(), p.name.clone().into());
            t.insert(
                "path".into(),
                p.dir
                    .join(format!("{}.rs", p.name))
                    .to_string_lossy()
                    .into_owned()
                    .into(),
            );
            t.insert("test".into(), false.into());
            t.into()
        })
        .collect();
    manifest.insert("bin".into(), bins.into());
    // The repository's profiles (panic = "abort", the release settings),
    // so the test programs are built exactly like the gallery.
    if let Some(profile) = repo_manifest.get("profile") {
        manifest.insert("profile".into(), profile.clone());
    }
    manifest.insert("workspace".into(), toml::Table::new().into());
    let text = format!(
        "# Generated by `cargo xtask` from tests/xen/*/*.rs: do not edit.\n{}",
        toml::to_string(&manifest)?
    );
    let path = dir.join("Cargo.toml");
    if fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
        fs::write(&path, text)?;
    }
    // The repository's lock file, so the programs get the versions the
    // library is tested with (cargo adds the path packages to it).
    fs::copy(repo.join("Cargo.lock"), dir.join("Cargo.lock")).context("copying Cargo.lock")?;
    Ok(path)
}

/// Builds every test program for the guest target.
pub fn build_tests(programs: &BTreeMap<String, Program>, profile: Profile) -> Result<()> {
    util::ensure_rust_target(&util::repo_root(), GUEST_TARGET)?;
    let manifest = write_manifest(programs)?;
    println!("build: the test programs of tests/xen ({})", profile.dir());
    let mut cmd = util::cargo();
    // From the repository, whose .cargo/config.toml has the guest link flags.
    cmd.current_dir(util::repo_root())
        .arg("build")
        .arg("--manifest-path")
        .arg(&manifest);
    cmd.args(["--bins", "--target", GUEST_TARGET])
        .arg("--target-dir")
        .arg(util::target_dir());
    if profile == Profile::Release {
        cmd.arg("--release");
    }
    run_inherited(&mut cmd, Duration::from_secs(1800)).context("building the test programs")
}

/// The built image of program `p`.
pub fn image(p: &Program, profile: Profile) -> Result<PathBuf> {
    let path = match p.kind {
        Kind::Example => images::example_image_path(&p.name, profile),
        Kind::Test => util::target_dir()
            .join(GUEST_TARGET)
            .join(profile.dir())
            .join(&p.name),
    };
    if !path.is_file() {
        bail!(
            "`{}` has no image at {} (did the build fail?)",
            p.name,
            path.display()
        );
    }
    Ok(path)
}

/// Builds what `names` need (the gallery, the test programs, or both) and
/// returns each as a guest with its stripped image.
pub fn build_guests(names: &[String], profile: Profile) -> Result<Vec<Guest>> {
    let programs = programs()?;
    let wanted: Vec<&Program> = names
        .iter()
        .map(|n| {
            programs.get(n).with_context(|| {
                format!(
                    "no program named `{n}`: the programs are {}",
                    programs.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            })
        })
        .collect::<Result<_>>()?;
    if wanted.iter().any(|p| p.kind == Kind::Example) {
        images::build_examples(profile)?;
    }
    if wanted.iter().any(|p| p.kind == Kind::Test) {
        build_tests(&programs, profile)?;
    }
    wanted
        .iter()
        .map(|p| p.guest(&images::stripped_copy(&image(p, profile)?)?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_reads_and_names_known_programs() {
        let programs = programs().unwrap();
        let cases = cases(&programs).unwrap();
        assert!(cases.len() >= 20, "{} cases", cases.len());
        for case in &cases {
            for g in &case.guests {
                let p = &programs[&g.name];
                p.cfg().unwrap_or_else(|e| panic!("{}: {e:#}", case.name));
            }
        }
        assert!(programs.values().any(|p| p.kind == Kind::Example));
        assert!(programs.values().any(|p| p.kind == Kind::Test));
    }

    #[test]
    fn mistakes_in_a_case_are_named() {
        let programs = programs().unwrap();
        let bad = |mode, names: &[&str], pattern: &str| Case {
            name: "x".into(),
            mode,
            guests: names
                .iter()
                .map(|n| Expect {
                    name: n.to_string(),
                    reason: "poweroff".into(),
                    output: vec![pattern.into()],
                    dom0_output: Vec::new(),
                })
                .collect(),
        };
        assert!(check_case(&bad(Mode::Domu, &["hello"], "ok"), &programs).is_ok());
        for (case, needle) in [
            (bad(Mode::Domu, &["nope"], "ok"), "no program `nope`"),
            (bad(Mode::Dom0, &["hello", "panic"], "ok"), "exactly one"),
            (bad(Mode::Domu, &["hello"], "("), "bad pattern"),
            (bad(Mode::Domu, &[], "ok"), "at least one"),
        ] {
            let err = format!("{:#}", check_case(&case, &programs).unwrap_err());
            assert!(err.contains(needle), "{err}");
        }
        assert!(toml::from_str::<CaseFile>(
            "mode = \"domu\"\n[[guest]]\nname = \"a\"\nreason = \"poweroff\"\nextra = 1\n"
        )
        .is_err());
    }
}
