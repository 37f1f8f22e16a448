//! xenpv-run: boots xenpv unikernels under Xen.
//!
//! - [`lab`]: the lab, Debian's Xen 4.17 and a Linux dom0 prepared into a
//!   cache folder, booted in QEMU on any Linux machine (no Xen host needed);
//! - [`boot`]: one boot of the lab, following its serial console, with a
//!   [`payload::Plan`] of guests that dom0 `xl create`s;
//! - [`runner`]: the cargo runner (`runner = "xenpv-run"`): boots the image
//!   cargo hands it, streams its console and exits with its status; on a
//!   real Xen host it runs the same dom0 plan there ([`host`]). What it runs is a
//!   [`plan::RunPlan`], and how each guest ended a [`plan::Outcome`];
//! - [`template`]: `xenpv-run new <path>`, a ready application crate.
//!
//! `cargo xtask` in xenpv's repository drives the same code for its own
//! test cases.

pub mod boot;
pub mod config;
pub mod cpio;
pub mod host;
pub mod initramfs;
pub mod lab;
pub mod markers;
pub mod payload;
pub mod plan;
pub mod qemu;
pub mod resume;
pub mod runner;
pub mod template;
pub mod util;
