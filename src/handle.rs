//! [`Xen`]: the application's one handle to the services of its domain,
//! handed to `main` by [`main!`](crate::main).
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//!
//! xenpv::main!(main);
//!
//! fn main(xen: xenpv::Xen) -> Result<(), xenpv::Error> {
//!     let me = xen.domid()?;                         // xenstore
//!     let page = xen.grants()?.alloc_page()?;        // grant tables
//!     let port = xen.events().alloc_unbound(me)?;    // event channels
//!     xen.sleep(core::time::Duration::from_millis(10)); // time
//!     xenpv::println!("dom{me}: page, port {port:?}"); // console
//!     Ok(())
//! }
//! ```
//!
//! Every service is set up once for the domain (a PV guest has one grant
//! table, one xenstore ring, one event-channel array), so the handle is a
//! small `Copy` value: pass it, or copies of it, to whatever needs Xen.

use core::time::Duration;

use crate::event::{EventOps, XenEvents};
use crate::grant::{GrantError, Grants, XenGrantOps};
use crate::types::DomId;
use crate::vchan::Backends;
use crate::xenstore::{Client, RingTransport, XsError};

/// `main!` accepts `fn(Xen) -> R`: the runtime's entry hands it the handle.
impl<F: FnOnce(Xen) -> R, R: crate::runtime::MainResult> crate::runtime::Entry<Xen> for F {
    fn enter(self) -> ! {
        self(Xen::from_runtime()).finish()
    }
}

/// The domain's xenstore connection, shared behind a lock.
pub type Store = spin::Mutex<Client<RingTransport>>;

/// The vchan backends of this domain (see [`Xen::vchan`]).
pub type XenBackends = Backends<'static, XenGrantOps, XenEvents, Store>;

/// The handle to this domain's Xen services: grant table, event channels,
/// xenstore, time, command line and exit. See the [module](self) docs.
#[derive(Debug, Clone, Copy)]
pub struct Xen {
    _private: (),
}

static STORE: spin::Once<Store> = spin::Once::new();
static EVENTS: XenEvents = XenEvents::new();

impl Xen {
    /// Made by [`main!`](crate::main) once the runtime is up.
    #[doc(hidden)]
    pub fn from_runtime() -> Xen {
        Xen { _private: () }
    }

    /// The grant table: share pages with other domains, map theirs, copy.
    /// Set up (`GNTTABOP_setup_table`) on first use.
    pub fn grants(&self) -> Result<&'static Grants<XenGrantOps>, GrantError> {
        crate::grant::grants()
    }

    /// Event channels: allocate, bind, notify, wait.
    pub fn events(&self) -> &'static XenEvents {
        &EVENTS
    }

    /// The xenstore connection, opened on first use. Take the lock for each
    /// operation: `xen.store()?.lock().read_string("name")`.
    pub fn store(&self) -> Result<&'static Store, XsError> {
        STORE.try_call_once(crate::xenstore::open_shared)
    }

    /// This domain's id (asked of xenstore).
    pub fn domid(&self) -> Result<DomId, XsError> {
        self.store()?.lock().own_domid()
    }

    /// The backends a [`Vchan`](crate::vchan::Vchan) needs: this grant
    /// table, these event channels and this xenstore.
    pub fn vchan(&self) -> Result<XenBackends, crate::error::Error> {
        Ok(Backends {
            grants: self.grants()?,
            events: &EVENTS,
            store: self.store()?,
        })
    }

    /// Xen's system time, in ns since Xen booted.
    pub fn now_ns(&self) -> u64 {
        EVENTS.now_ns()
    }

    /// Blocks for `d` (the vCPU sleeps until the timer fires).
    pub fn sleep(&self, d: Duration) {
        crate::event::sleep(d)
    }

    /// The domain's command line (`extra=` in its xl config; the words
    /// after `cargo run --`), split on whitespace.
    pub fn args(&self) -> impl Iterator<Item = &'static str> {
        crate::start_info::boot_info()
            .cmd_line()
            .unwrap_or("")
            .split_ascii_whitespace()
    }

    /// The value of `key=value` on the command line, if present.
    pub fn arg(&self, key: &str) -> Option<&'static str> {
        crate::start_info::boot_info().arg(key)
    }

    /// Ends the application with an exit status (see [`crate::exit`]).
    pub fn exit(&self, code: i32) -> ! {
        crate::runtime::exit(code)
    }
}
