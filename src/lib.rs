//! xenpv: a `no_std` library for Xen PV unikernels.
//!
//! An application links xenpv, names its entry point with [`main!`], and
//! is built into a 64-bit PV ELF image that Xen boots with `xl create`.
//! xenpv boots the domain (memory, console, traps, events, time) and hands
//! `main` a [`Xen`] handle to the services a domain shares with others:
//! grant tables, event channels, xenstore, and libxenvchan-compatible rings.
//! These docs are built for the guest target, `x86_64-unknown-none`.
//!
//! # A complete application
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//!
//! use core::time::Duration;
//! use xenpv::vchan::Vchan;
//! use xenpv::{println, DomId, Xen};
//!
//! xenpv::main!(main);
//!
//! /// Offers a vchan to the domain named on the command line
//! /// (`peer=<domid>`) and echoes what it sends, in capitals.
//! fn main(xen: Xen) -> Result<(), xenpv::Error> {
//!     let me = xen.domid()?;
//!     let peer = DomId(xen.arg("peer").and_then(|p| p.parse().ok()).unwrap_or(0));
//!     let path = alloc::format!("/local/domain/{me}/data/vchan");
//!     let chan = Vchan::server(xen.vchan()?, peer, &path, 4096, 4096)?;
//!     chan.wait_connected(Some(Duration::from_secs(60)))?;
//!     let mut chan = chan;
//!     let mut buf = [0u8; 64];
//!     let n = chan.read_blocking(&mut buf, Some(Duration::from_secs(60)))?;
//!     buf[..n].make_ascii_uppercase();
//!     chan.write_all(&buf[..n], None)?;
//!     println!("echoed {n} bytes to dom{peer}");
//!     Ok(())
//! }
//! # extern crate alloc;
//! ```
//!
//! Build and run it with the `xenpv-run` cargo runner (`xenpv-run new
//! myapp` writes a ready crate; `cargo run --release` boots it under Xen,
//! in QEMU when this machine is not a Xen host). In-guest tests with
//! `cargo test` are described in [`testing`].
//!
//! # The services
//!
//! - **Ending** — `main` returns `()` or `Result<(), E: Debug>`;
//!   [`exit`]`(code)` ends the domain with a status the runner reports;
//!   a panic or a fatal exception prints where and crashes the domain.
//! - **Console** — [`println!`] and [`print!`] write to the PV console.
//! - **Time** — [`Xen::now_ns`], [`Xen::sleep`]; the one-shot timer is in
//!   [`event`].
//! - **Grant tables** — [`Xen::grants`] gives the domain's
//!   [`grant::Grants`]: share pages with another domain (`share`, gntalloc
//!   semantics: a page is never freed while the peer may map it), map
//!   pages others share (`map`), copy between domains (`copy`). Every view
//!   of shared memory is a [`shared_mem::SharedMem`] that borrows its page
//!   and never hands out a reference into memory a peer can write.
//! - **Event channels** — [`Xen::events`]: allocate, bind, notify, wait
//!   ([`event::EventOps`]); ports close when their [`event::Port`] drops.
//! - **Xenstore** — [`Xen::store`]: read, write, watch, transactions
//!   ([`xenstore::Client`]), with typed errors for anything the store or a
//!   writer of a watched node sends.
//! - **vchan** — [`vchan::Vchan`]: libxenvchan-compatible byte streams
//!   between domains, server or client, over [`Xen::vchan`]'s backends.
//! - **Devices** — [`block::BlkFront`] (a disk, the [`block::BlockDevice`]
//!   trait) and [`net::NetFront`] (a network interface, a smoltcp device;
//!   [`net::Stack`] adds the TCP/IP stack), split-driver front ends that
//!   connect to dom0's backends through [`xenbus`] over [`ring`]s.
//! - **Errors** — every subsystem's error converts into [`Error`], so `?`
//!   works across them.
//!
//! Every protocol also runs on the host over fakes (feature `host-fakes`),
//! which is how xenpv tests hostile peers and interleavings.
//!
//! # Map of the crate
//! - [`abi`]: raw Xen structs and constants, no logic.
//! - `arch::x86_64`: every `asm!` (hypercall instruction, boot entry,
//!   trap stubs); `hypercall`: typed hypercalls. Internal.
//! - [`mm`], [`console`], [`runtime`], [`start_info`], [`shared_info`]:
//!   the boot foundation.
//! - [`shared_mem`]: the only door to memory a peer domain can write.
//! - [`grant`], [`event`], [`xenstore`], [`time`], [`vchan`]: services
//!   between domains; [`handle`] ties them into [`Xen`].
//! - [`ring`]: Xen's request/response rings (`io/ring.h`), the transport
//!   of split drivers, front and back ends.

#![cfg_attr(not(test), no_std)]
// The front page describes the guest API; host builds (tests, fakes) have
// no `Xen` handle for its links to point at.
#![cfg_attr(not(target_os = "none"), allow(rustdoc::broken_intra_doc_links))]
#![warn(missing_debug_implementations)]
// Unsafe code lives only where it must: `arch`, the hypercall layer,
// `shared_mem` and the Xen backends (the `guest` modules, the real grant
// backend). Each of those opts in with `allow(unsafe_code)`.
#![deny(unsafe_code)]

extern crate alloc;

pub mod abi;
#[doc(hidden)]
pub mod arch;
pub mod block;
#[cfg(all(doctest, feature = "host-fakes"))]
mod compile_fail;
pub mod console;
pub mod errno;
pub mod error;
pub mod event;
pub mod grant;
#[cfg(target_os = "none")]
pub mod handle;
#[cfg(target_os = "none")]
pub(crate) mod hypercall;
pub mod mm;
pub mod net;
pub mod ring;
pub mod runtime;
pub mod shared_info;
pub mod shared_mem;
pub mod start_info;
pub mod testing;
pub mod time;
pub mod types;
pub mod vchan;
pub mod xenbus;
pub mod xenstore;

pub use errno::Errno;
pub use error::{Error, Result};
#[cfg(target_os = "none")]
pub use event::sleep;
#[cfg(target_os = "none")]
pub use handle::Xen;
pub use runtime::{exit, poweroff, shutdown, ShutdownReason};
pub use types::{DomId, EvtchnPort, GrantRef, Mfn, Pfn};
