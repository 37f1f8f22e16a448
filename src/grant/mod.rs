//! Grant tables (xen/include/public/grant_table.h): our own table, the
//! v1 entry protocol, foreign mappings, hypervisor copies and transfers,
//! and a page-sharing API with the semantics of Linux's gntalloc driver.
//!
//! Layers, bottom up (each file imports only the ones above it in this
//! list, and this face re-exports what applications use):
//! - [`error`](GrantError) and [`view`](PageView): what operations fail
//!   with; borrowed views of pages and the unmap notification;
//! - [`entry`]: the raw entry protocol over the table's [`SharedMem`]
//!   (introduce, end access with one compare-and-swap, transfers);
//! - [`refs`]: the free list of grant references;
//! - [`ops`]: the narrow [`GrantOps`] trait behind which the hypervisor
//!   sits; for host tests, `fake`, a simulated Xen with peers that can
//!   misbehave;
//! - [`Grants`]: the table itself (growth on demand), owner objects for
//!   granted pages ([`Granted`], [`SharedPages`]), mapped foreign pages
//!   ([`MappedPages`]), copies and transfers;
//! - [`ReservedRefs`]: a caller's own batch of references, taken from the
//!   table once, through which granting and ending access take no lock
//!   (for drivers that grant per request);
//! - `guest`: the real backend, [`XenGrantOps`] (guest builds only), and
//!   the domain's one table.
//!
//! Everything but the real backend is free of `unsafe` and runs on the
//! host against the fake.
//!
//! [`SharedMem`]: crate::shared_mem::SharedMem

#[doc(hidden)]
pub mod entry;
#[cfg(any(test, feature = "host-fakes"))]
pub mod fake;
pub mod ops;
#[doc(hidden)]
pub mod refs;

mod copy;
mod error;
#[cfg(target_os = "none")]
mod guest;
mod map;
mod reserve;
mod share;
mod table;
mod transfer;
mod view;

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(all(test, not(loom)))]
mod tests;

pub use copy::{CopyOp, CopyPtr};
pub use error::{GntStatus, GrantError, TableSize};
pub use map::MappedPages;
pub use ops::{GrantOps, LocalFrame, SharePage, Vacant};
pub use reserve::{ReservedGrant, ReservedRefs};
pub use share::{Released, SharedPages};
pub use table::{
    Granted, Grants, DEFAULT_PENDING_LIMIT, DEFAULT_SHARE_LIMIT, DEFAULT_SHARE_LIMIT_PER_DOMAIN,
};
pub use transfer::{Cancelled, TransferError, TransferPoll, TransferSlot};
pub use view::{Access, PageSpan, PageView, UnmapNotify};

#[cfg(target_os = "none")]
pub(crate) use guest::grants;
#[cfg(target_os = "none")]
pub use guest::XenGrantOps;
