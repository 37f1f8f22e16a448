//! `cargo xtask build`: builds the gallery (examples/, see `images.rs`) and
//! the test programs (tests/xen/, see `cases.rs`) for the guest target, and
//! lists each image with its size and its stripped size.

use std::fs;
use std::path::Path;

use anyhow::Result;

use crate::cases;
use crate::images::{build_examples, stripped_copy, Profile};
use crate::util::human_size;

/// `cargo xtask build [--debug]`.
pub fn cmd_build(debug: bool) -> Result<()> {
    let profile = if debug {
        Profile::Debug
    } else {
        Profile::Release
    };
    build_examples(profile)?;
    let programs = cases::programs()?;
    cases::build_tests(&programs, profile)?;
    for program in programs.values() {
        let name = &program.name;
        let image = cases::image(program, profile)?;
        let stripped = stripped_copy(&image)?;
        let size = |p: &Path| fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        println!(
            "{name:>16}  {}  ({}, {} stripped)",
            image.display(),
            human_size(size(&image)),
            human_size(size(&stripped))
        );
    }
    Ok(())
}
