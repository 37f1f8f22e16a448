//! What grant operations fail with: a hypercall's `-errno`, an op's own
//! `GNTST_*` status (grant_table.h: "GNTST_* status codes", a different
//! channel), and the grant code's own checks.

use crate::abi::grant_table as abi;
use crate::errno::Errno;
use crate::mm::MemError;
use crate::types::{DomId, GrantRef, Mfn};
use core::fmt;

/// A failed grant operation's `GNTST_*` status (the op's own `status`
/// field, a different channel from the hypercall's `-errno`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GntStatus {
    /// `GNTST_general_error`
    #[doc(alias = "GNTST_general_error")]
    GeneralError,
    /// `GNTST_bad_domain`
    #[doc(alias = "GNTST_bad_domain")]
    BadDomain,
    /// `GNTST_bad_gntref`
    #[doc(alias = "GNTST_bad_gntref")]
    BadGntref,
    /// `GNTST_bad_handle`
    #[doc(alias = "GNTST_bad_handle")]
    BadHandle,
    /// `GNTST_bad_virt_addr`
    #[doc(alias = "GNTST_bad_virt_addr")]
    BadVirtAddr,
    /// `GNTST_bad_dev_addr`
    #[doc(alias = "GNTST_bad_dev_addr")]
    BadDevAddr,
    /// `GNTST_no_device_space`
    #[doc(alias = "GNTST_no_device_space")]
    NoDeviceSpace,
    /// `GNTST_permission_denied`
    #[doc(alias = "GNTST_permission_denied")]
    PermissionDenied,
    /// `GNTST_bad_page`
    #[doc(alias = "GNTST_bad_page")]
    BadPage,
    /// `GNTST_bad_copy_arg`
    #[doc(alias = "GNTST_bad_copy_arg")]
    BadCopyArg,
    /// `GNTST_address_too_big`
    #[doc(alias = "GNTST_address_too_big")]
    AddressTooBig,
    /// `GNTST_eagain`
    #[doc(alias = "GNTST_eagain")]
    Eagain,
    /// `GNTST_no_space`
    #[doc(alias = "GNTST_no_space")]
    NoSpace,
    /// A negative status this header version does not define, or a
    /// positive one (never written by Xen: the op was not processed).
    Unknown(i16),
}

impl GntStatus {
    /// Interprets an op's `status`: `Ok` for `GNTST_okay`.
    pub fn check(status: i16) -> Result<(), GntStatus> {
        use GntStatus::*;
        Err(match status {
            abi::GNTST_okay => return Ok(()),
            abi::GNTST_general_error => GeneralError,
            abi::GNTST_bad_domain => BadDomain,
            abi::GNTST_bad_gntref => BadGntref,
            abi::GNTST_bad_handle => BadHandle,
            abi::GNTST_bad_virt_addr => BadVirtAddr,
            abi::GNTST_bad_dev_addr => BadDevAddr,
            abi::GNTST_no_device_space => NoDeviceSpace,
            abi::GNTST_permission_denied => PermissionDenied,
            abi::GNTST_bad_page => BadPage,
            abi::GNTST_bad_copy_arg => BadCopyArg,
            abi::GNTST_address_too_big => AddressTooBig,
            abi::GNTST_eagain => Eagain,
            abi::GNTST_no_space => NoSpace,
            other => Unknown(other),
        })
    }

    /// The raw `GNTST_*` value.
    pub fn raw(self) -> i16 {
        use GntStatus::*;
        match self {
            GeneralError => abi::GNTST_general_error,
            BadDomain => abi::GNTST_bad_domain,
            BadGntref => abi::GNTST_bad_gntref,
            BadHandle => abi::GNTST_bad_handle,
            BadVirtAddr => abi::GNTST_bad_virt_addr,
            BadDevAddr => abi::GNTST_bad_dev_addr,
            NoDeviceSpace => abi::GNTST_no_device_space,
            PermissionDenied => abi::GNTST_permission_denied,
            BadPage => abi::GNTST_bad_page,
            BadCopyArg => abi::GNTST_bad_copy_arg,
            AddressTooBig => abi::GNTST_address_too_big,
            Eagain => abi::GNTST_eagain,
            NoSpace => abi::GNTST_no_space,
            Unknown(v) => v,
        }
    }

    /// The header's `GNTTABOP_error_msgs` text for this status.
    pub fn message(self) -> &'static str {
        let idx = -(self.raw() as i32);
        usize::try_from(idx)
            .ok()
            .and_then(|i| abi::GNTTABOP_error_msgs.get(i))
            .copied()
            .unwrap_or("unknown grant status")
    }
}

impl fmt::Display for GntStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (GNTST {})", self.message(), self.raw())
    }
}

/// Everything a grant operation can fail with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantError {
    /// The hypercall itself failed (`-errno`).
    Hypercall(Errno),
    /// Xen processed the op and refused it (`GNTST_*`).
    Status(GntStatus),
    /// Op `index` of a batch failed with `status`; the rest were undone.
    BatchOp {
        /// Position of the first failing op in the batch.
        index: usize,
        /// Its status.
        status: GntStatus,
    },
    /// No free reference and the table is at its maximum size.
    TableFull,
    /// The share limit would be exceeded (gntalloc's `-ENOSPC`).
    LimitReached {
        /// The configured limit.
        limit: u32,
        /// Pages counted now, pending ones included.
        in_use: u32,
        /// Pages asked for.
        requested: u32,
    },
    /// The per-domain share limit would be exceeded: one peer may not
    /// take the whole global limit.
    DomainLimitReached {
        /// The domain the pages would be shared with.
        domid: DomId,
        /// The configured per-domain limit.
        limit: u32,
        /// Pages counted for `domid` now, pending ones included.
        in_use: u32,
        /// Pages asked for.
        requested: u32,
    },
    /// Too many pages from [`Grants::grant`](crate::grant::Grants::grant) are pending (dropped while
    /// the peer still maps them): no new grant until peers unmap some.
    PendingLimitReached {
        /// The configured limit.
        limit: u32,
        /// Granted pages pending now.
        pending: u32,
    },
    /// Xen reported a table size whose references would not fit a 32-bit
    /// `grant_ref_t` (or growth would pass that bound).
    BadTableSize(TableSize),
    /// A reference outside the table.
    BadRef(GrantRef),
    /// One of the 8 reserved references (console, xenstore, ...).
    ReservedRef(GrantRef),
    /// A reference freed twice.
    DoubleFree(GrantRef),
    /// The peer has the entry mapped (`GTF_reading`/`GTF_writing`): the
    /// access cannot end yet.
    InUse(GrantRef),
    /// A frame number that does not fit a v1 entry's 32-bit `frame`.
    FrameTooLarge(Mfn),
    /// A domain id that names no real domain (e.g. `DOMID_SELF` in an entry).
    BadDomain(DomId),
    /// Release of pages the owner does not hold (gntalloc's `-EINVAL`).
    NotHeld {
        /// The index asked for.
        index: u64,
        /// The count asked for.
        count: u32,
    },
    /// An offset or length outside a page, or an otherwise invalid argument.
    InvalidArgument,
    /// The memory manager failed.
    Memory(MemError),
    /// An unmap notification's event could not be sent (the unmap itself
    /// happened).
    Notify(crate::event::EventError),
    /// A wait for peers to unmap timed out with `pages` still mapped.
    StillMapped {
        /// Pages a peer still maps.
        pages: u32,
    },
    /// Every reference of a [`ReservedRefs`](crate::grant::ReservedRefs) batch is granted now.
    NoReservedRef {
        /// References the batch holds.
        reserved: u32,
    },
}

impl From<Errno> for GrantError {
    fn from(e: Errno) -> Self {
        GrantError::Hypercall(e)
    }
}

impl From<GntStatus> for GrantError {
    fn from(s: GntStatus) -> Self {
        GrantError::Status(s)
    }
}

impl From<MemError> for GrantError {
    fn from(e: MemError) -> Self {
        GrantError::Memory(e)
    }
}

impl fmt::Display for GrantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrantError::Hypercall(e) => write!(f, "grant hypercall failed: {e}"),
            GrantError::Status(s) => write!(f, "grant op failed: {s}"),
            GrantError::BatchOp { index, status } => {
                write!(f, "grant op {index} of a batch failed: {status}")
            }
            other => write!(f, "{other:?}"),
        }
    }
}

// The table size is defined here, below `ops` whose `query_size` returns
// it, because `GrantError::BadTableSize` carries it.
/// `GNTTABOP_query_size`'s answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSize {
    /// Frames the table has now.
    pub nr_frames: u32,
    /// Frames it may grow to.
    pub max_nr_frames: u32,
}
