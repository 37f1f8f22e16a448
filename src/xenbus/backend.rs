//! The back end's half of the xenbus handshake
//! (`xen/include/public/io/xenbus.h`; the conventions of Linux's
//! `xenbus_probe_backend.c` and of netback's and blkback's
//! `frontend_changed`): watch the front end's `state`, publish the back
//! end's keys, go InitWait, Connected, Closing and Closed from the other
//! side.
//!
//! A back end's device lives under `/local/domain/<us>/backend/<class>/
//! <frontend domid>/<devid>` (`frontend`, `frontend-id`, `state`, written
//! by the toolstack). [`Backend`] is built on the same end-of-a-device
//! core as [`Frontend`]: the state switch in a transaction that never
//! recreates a removed device, the watch on the other end's `state`, the
//! typed readers of its nodes. The driver reacts to
//! [`FrontendEvent`]s:
//!
//! ```ignore
//! let be = Backend::open(store, "vif", frontend, devid)?;
//! be.init_wait(&features)?;               // InitWait with our features
//! loop {
//!     match be.next(timeout)? {           // or be.poll() in an event loop
//!         FrontendEvent::Connect => {     // the front end published its keys
//!             let ring = be.frontend_u64("tx-ring-ref")?; // map, bind...
//!             be.connect(&keys)?;         // Connected
//!         }
//!         FrontendEvent::Closing => { /* unmap, unbind */ }
//!         FrontendEvent::Closed | FrontendEvent::Gone => break,
//!         FrontendEvent::Reopened | FrontendEvent::Nothing => {}
//!     }
//! }
//! ```

use super::{verdict_closing, Frontend, Keys, Snippet, Verdict, XenbusError, XenbusState};
use crate::types::DomId;
use crate::xenstore::{Client, Transport};
use alloc::format;
use core::sync::atomic::{AtomicU8, Ordering};
use core::time::Duration;

/// What the front end's last state change asks of the back-end driver
/// (after [`Backend`] switched its own state as Linux's back ends do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontendEvent {
    /// The front end is Initialised or Connected while we wait in
    /// InitWait: read its keys, map its rings, then [`Backend::connect`].
    Connect,
    /// The front end is closing: we switched to Closing; stop serving
    /// (unmap, unbind).
    Closing,
    /// The front end closed: we switched to Closed.
    Closed,
    /// The front end is gone (no `state`, or `Unknown`): we switched to
    /// Closed.
    Gone,
    /// The front end came back (Initialising) to a back end left Closed
    /// (or still Closing: then we went through Closed): we are in
    /// InitWait again, our features published.
    Reopened,
    /// A change that asks nothing (a state we are already past).
    Nothing,
}

/// One back-end device's xenbus side.
#[derive(Debug)]
pub struct Backend<'s, T: Transport> {
    end: Frontend<'s, T>,
    /// Our state as we last published it.
    state: AtomicU8,
    /// The features we published with InitWait (for a reopen).
    features: spin::Mutex<Keys>,
}

/// When a back end's wait for the front end's `state` is over.
fn backend_verdict(want: XenbusState, value: Option<&[u8]>) -> Verdict {
    use XenbusState::*;
    let now = match value.map(XenbusState::parse).transpose() {
        Ok(s) => s,
        Err(e) => return Verdict::Fail(e),
    };
    match (want, now) {
        // blkfront announces Initialised, netfront Connected at once.
        (Initialised, Some(s @ (Initialised | Connected))) => Verdict::Done(s),
        (Initialised, Some(s @ Closing)) => Verdict::Fail(XenbusError::FrontendClosing(s)),
        (Closing | Closed, _) => verdict_closing(want, now),
        (w, Some(s)) if w != Initialised && s == w => Verdict::Done(s),
        (_, s) => Verdict::Wait(s),
    }
}

impl<'s, T: Transport> Backend<'s, T> {
    /// Opens our back end of device `class`/`devid` of domain `frontend`:
    /// reads and checks `frontend` and `frontend-id` (they must name the
    /// device directory the toolstack builds for it).
    pub fn open(
        store: &'s spin::Mutex<Client<T>>,
        class: &str,
        frontend: DomId,
        devid: u32,
    ) -> Result<Self, XenbusError> {
        let mut c = store.lock();
        let path = format!(
            "{}/backend/{class}/{}/{devid}",
            c.own_domain_path()?,
            frontend.0
        );
        let mut read = |key: &str| -> Result<alloc::string::String, XenbusError> {
            let node = format!("{path}/{key}");
            super::read_text(&mut c, &node)?
                .ok_or(XenbusError::Missing(Snippet::new(node.as_bytes())))
        };
        let front = read("frontend")?;
        let id = read("frontend-id")?;
        if super::parse_domid(&id) != Some(frontend) {
            return Err(XenbusError::BadFrontend(Snippet::new(id.as_bytes())));
        }
        let expected = format!("/local/domain/{}/device/{class}/{devid}", frontend.0);
        if front != expected {
            return Err(XenbusError::BadFrontend(Snippet::new(front.as_bytes())));
        }
        drop(c);
        Ok(Backend {
            end: Frontend::end(store, path, front, frontend, devid, "frontend"),
            state: AtomicU8::new(XenbusState::Unknown as u8),
            features: spin::Mutex::new(Keys::new()),
        })
    }

    /// Our device directory.
    pub fn path(&self) -> &str {
        self.end.path()
    }

    /// The front end's device directory.
    pub fn frontend_path(&self) -> &str {
        self.end.backend_path()
    }

    /// The front end's domain.
    pub fn frontend_id(&self) -> DomId {
        self.end.backend_id()
    }

    /// The device id.
    pub fn devid(&self) -> u32 {
        self.end.devid()
    }

    /// Our state as we last published it.
    pub fn state(&self) -> XenbusState {
        XenbusState::from_number(u32::from(self.state.load(Ordering::Relaxed)))
            .unwrap_or(XenbusState::Unknown)
    }

    /// A front-end node, as text; `None` when absent.
    pub fn read_frontend(&self, key: &str) -> Result<Option<alloc::string::String>, XenbusError> {
        self.end.read_backend(key)
    }

    /// A front-end number (`ring-ref`, `event-channel`, ...), as
    /// [`Frontend::backend_u64`] reads the backend's.
    pub fn frontend_u64(&self, key: &str) -> Result<u64, XenbusError> {
        self.end.backend_u64(key)
    }

    /// A front-end flag (`feature-*`, `request-rx-copy`), as
    /// [`Frontend::backend_flag`] reads the backend's.
    pub fn frontend_flag(&self, key: &str) -> Result<bool, XenbusError> {
        self.end.backend_flag(key)
    }

    /// The front end's state now; [`XenbusError::FrontendGone`] when its
    /// `state` node is missing.
    pub fn frontend_state(&self) -> Result<XenbusState, XenbusError> {
        self.end.peer_state()?.ok_or(XenbusError::FrontendGone)
    }

    /// Publishes `keys` and `state` in one transaction;
    /// [`XenbusError::DeviceGone`] when the toolstack removed our
    /// directory.
    fn switch_with(&self, state: XenbusState, keys: &Keys) -> Result<(), XenbusError> {
        if !self.end.switch_with(state, &keys.pairs())? {
            return Err(XenbusError::DeviceGone);
        }
        self.state.store(state as u8, Ordering::Relaxed);
        Ok(())
    }

    /// Probed: publishes our `features` and InitWait in one transaction,
    /// and watches the front end's `state` from now on.
    pub fn init_wait(&self, features: &Keys) -> Result<(), XenbusError> {
        *self.features.lock() = features.clone();
        self.switch_with(XenbusState::InitWait, features)?;
        self.end.watch_backend()
    }

    /// Waits (up to `timeout`) until the front end reaches `want`:
    /// - `Initialised`: Initialised or Connected (a closing front end is
    ///   [`XenbusError::FrontendClosing`]);
    /// - `Closing`/`Closed`: that state or later, or gone (as `Closed`);
    /// - any other state: exactly it.
    pub fn wait_frontend(
        &self,
        want: XenbusState,
        timeout: Duration,
    ) -> Result<XenbusState, XenbusError> {
        self.end.wait_peer(want, timeout, backend_verdict)
    }

    /// The rings are mapped: publishes `keys` (what the front end reads
    /// on connecting: a disk's `sectors`...) and Connected in one
    /// transaction.
    pub fn connect(&self, keys: &Keys) -> Result<(), XenbusError> {
        self.switch_with(XenbusState::Connected, keys)
    }

    /// Without blocking: the front end's state change since the last call,
    /// if any, handled ([`FrontendEvent`]).
    pub fn poll(&self) -> Result<FrontendEvent, XenbusError> {
        if !self.end.drain_watch()? {
            return Ok(FrontendEvent::Nothing);
        }
        let now = self.end.peer_state()?;
        self.handle(now)
    }

    /// Waits up to `timeout` for the front end's state to ask something
    /// of us and handles it; [`XenbusError::Timeout`] when nothing came.
    pub fn next(&self, timeout: Duration) -> Result<FrontendEvent, XenbusError> {
        let node = format!("{}/state", self.frontend_path());
        let ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        let mut seen = None;
        let r = self.end.store.lock().wait_node_until(&node, ns, |v| {
            let s = v.map(XenbusState::parse);
            let ask = match &s {
                Some(Err(_)) => true,
                Some(Ok(s)) => self.asks(Some(*s)),
                None => self.asks(None),
            };
            if ask {
                seen = Some(s);
            }
            ask
        });
        let now = match (r, seen) {
            (Ok(_), Some(s)) => s.transpose()?,
            (Err(crate::xenstore::XsError::Timeout), _) | (Ok(_), None) => {
                return Err(XenbusError::Timeout {
                    waiting_for: XenbusState::Unknown,
                    backend: Some(self.state()),
                })
            }
            (Err(e), _) => return Err(e.into()),
        };
        // The watch events of what was just handled are stale.
        let _ = self.end.drain_watch();
        self.handle(now)
    }

    /// Whether the front end in `now` asks anything of us in our state.
    fn asks(&self, now: Option<XenbusState>) -> bool {
        use XenbusState::*;
        let me = self.state();
        match now {
            // Closing too: a front end that closed and started over
            // before we saw its Closed.
            Some(Initialising) => matches!(me, Closing | Closed),
            Some(Initialised | Connected) => me == InitWait,
            Some(Closing) => !matches!(me, Closing | Closed),
            Some(Closed | Unknown) | None => me != Closed,
            Some(_) => false,
        }
    }

    /// Linux's back ends' `frontend_changed`, for the front end in `now`.
    fn handle(&self, now: Option<XenbusState>) -> Result<FrontendEvent, XenbusError> {
        use XenbusState::*;
        if !self.asks(now) {
            return Ok(FrontendEvent::Nothing);
        }
        Ok(match now {
            Some(Initialising) => {
                if self.state() == Closing {
                    self.switch_with(Closed, &Keys::new())?;
                }
                let features = self.features.lock().clone();
                self.switch_with(InitWait, &features)?;
                FrontendEvent::Reopened
            }
            Some(Initialised | Connected) => FrontendEvent::Connect,
            Some(Closing) => {
                self.switch_with(Closing, &Keys::new())?;
                FrontendEvent::Closing
            }
            Some(Closed) => {
                self.switch_with(Closed, &Keys::new())?;
                FrontendEvent::Closed
            }
            _ => {
                // Our directory may be gone with the device: Closed where
                // it is still there.
                match self.switch_with(Closed, &Keys::new()) {
                    Ok(()) | Err(XenbusError::DeviceGone) => {}
                    Err(e) => return Err(e),
                }
                FrontendEvent::Gone
            }
        })
    }

    /// Closes our end from this side (the device is being unplugged):
    /// Closing, wait (up to `timeout`) for the front end to close or be
    /// gone, Closed.
    pub fn close(&self, timeout: Duration) -> Result<(), XenbusError> {
        self.state
            .store(XenbusState::Closed as u8, Ordering::Relaxed);
        self.end.close(timeout)
    }
}
