//! Newtypes for the integers of the Xen ABI, so a frame number cannot be
//! passed where a grant reference or a port is expected.

use core::fmt;

macro_rules! abi_int {
    ($(#[$doc:meta])* $name:ident($inner:ty), $alias:literal) => {
        $(#[$doc])*
        #[doc(alias = $alias)]
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[repr(transparent)]
        pub struct $name(pub $inner);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

abi_int!(
    /// A machine frame number: a page of host memory.
    Mfn(u64), "xen_pfn_t"
);
abi_int!(
    /// A pseudo-physical frame number: a page of this guest's memory.
    Pfn(u64), "xen_pfn_t"
);
abi_int!(
    /// A domain id.
    DomId(u16), "domid_t"
);
abi_int!(
    /// An event-channel port.
    EvtchnPort(u32), "evtchn_port_t"
);
abi_int!(
    /// A grant reference: an index into a domain's grant table.
    GrantRef(u32), "grant_ref_t"
);

impl DomId {
    /// `DOMID_SELF`: the calling domain, in hypercalls that accept it.
    pub const SELF: DomId = DomId(0x7FF0);
    /// The largest id a real domain can have (`DOMID_FIRST_RESERVED - 1`).
    pub const MAX_REAL: DomId = DomId(0x7FEF);

    /// Whether this names an actual domain rather than a reserved id.
    pub fn is_real(self) -> bool {
        self.0 <= Self::MAX_REAL.0
    }
}

/// How a domain ends (`SHUTDOWN_*`, public/sched.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ShutdownReason {
    /// `SHUTDOWN_poweroff`: a clean exit.
    Poweroff = crate::abi::SHUTDOWN_poweroff,
    /// `SHUTDOWN_reboot`.
    Reboot = crate::abi::SHUTDOWN_reboot,
    /// `SHUTDOWN_crash`: the domain failed.
    Crash = crate::abi::SHUTDOWN_crash,
}
