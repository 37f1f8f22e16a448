//! The xenbus handshake of a split-driver front end
//! (`xen/include/public/io/xenbus.h`; the conventions of Linux's
//! `xenbus_probe_frontend.c`/`xenbus_client.c` and Mini-OS's
//! `blkfront.c`/`netfront.c`).
//!
//! The toolstack creates the device in xenstore: ours under
//! `device/<class>/<devid>` (`backend`, `backend-id`, `state`), the
//! backend's under `/local/domain/<backend-id>/backend/<class>/<our
//! domid>/<devid>`. Each end publishes its [`XenbusState`] in its `state`
//! node and watches the other's:
//!
//! 1. [`Frontend::open`] reads `backend` and `backend-id` (checked: the
//!    path must be the one the toolstack builds for this device);
//! 2. [`wait_backend`](Frontend::wait_backend) for `InitWait`: the
//!    backend has probed and published its features
//!    ([`backend_flag`](Frontend::backend_flag), [`backend_u64`](Frontend::backend_u64));
//! 3. the driver [`publish`](Frontend::publish)es its keys (ring
//!    references, event channel, features) in one transaction, then
//!    [`switch`](Frontend::switch)es to `Initialised`;
//! 4. it waits for the backend's `Connected`, reads what the backend
//!    published on connecting, and switches to `Connected`;
//! 5. [`close`](Frontend::close): `Closing`, wait for the backend to
//!    close, `Closed`. A backend that starts closing by itself (the
//!    toolstack detaching the device) is seen by
//!    [`check_backend`](Frontend::check_backend) as
//!    [`XenbusError::BackendClosing`].
//!
//! Every wait is a watch with a deadline: a backend that never answers
//! gives [`XenbusError::Timeout`], garbage in a node a typed error.

use crate::types::DomId;
use crate::xenstore::{Client, Transport, XsError};
use alloc::format;
use alloc::string::{String, ToString};
use core::time::Duration;

#[cfg(all(test, not(loom)))]
mod tests;

/// `enum xenbus_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum XenbusState {
    Unknown = 0,
    Initialising = 1,
    /// "Finished early initialisation, but waiting for information from
    /// the peer or hotplug scripts."
    InitWait = 2,
    /// "Initialised and waiting for a connection from the peer."
    Initialised = 3,
    Connected = 4,
    /// "The device is being closed due to an error or an unplug event."
    Closing = 5,
    Closed = 6,
    Reconfiguring = 7,
    Reconfigured = 8,
}

impl XenbusState {
    /// Parses a `state` node's value (a decimal number).
    pub fn parse(v: &[u8]) -> Result<Self, XenbusError> {
        let bad = || XenbusError::BadState(v.first().copied().unwrap_or(0));
        let n: u8 = core::str::from_utf8(v).ok().and_then(|s| s.trim_end_matches('\0').parse().ok()).ok_or_else(bad)?;
        Ok(match n {
            0 => Self::Unknown,
            1 => Self::Initialising,
            2 => Self::InitWait,
            3 => Self::Initialised,
            4 => Self::Connected,
            5 => Self::Closing,
            6 => Self::Closed,
            7 => Self::Reconfiguring,
            8 => Self::Reconfigured,
            _ => return Err(XenbusError::BadState(n)),
        })
    }
}

/// Why a xenbus step failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XenbusError {
    /// The store refused or broke.
    Store(XsError),
    /// A `state` node that is not a state (first byte, or the number).
    BadState(u8),
    /// `backend`/`backend-id` missing, unparsable, or not the path the
    /// toolstack builds for this device.
    BadBackend(String),
    /// A backend node the driver needs is missing or unparsable.
    BadNode(String),
    /// The backend did not reach the state in time (the state it was in).
    Timeout { waiting_for: XenbusState, backend: Option<XenbusState> },
    /// The backend is closing or closed (detached), or its directory is gone.
    BackendClosing(XenbusState),
}

impl From<XsError> for XenbusError {
    fn from(e: XsError) -> Self {
        XenbusError::Store(e)
    }
}

/// One front-end device's xenbus connection.
#[derive(Debug)]
pub struct Frontend<'s, T: Transport> {
    store: &'s spin::Mutex<Client<T>>,
    /// Our directory, `/local/domain/<us>/device/<class>/<devid>`.
    path: String,
    backend: String,
    backend_id: DomId,
    devid: u32,
}

impl<'s, T: Transport> Frontend<'s, T> {
    /// The devices of `class` (`vbd`, `vif`) the toolstack gave us: their
    /// ids under `device/<class>`.
    pub fn devices(store: &'s spin::Mutex<Client<T>>, class: &str) -> Result<alloc::vec::Vec<u32>, XenbusError> {
        let mut c = store.lock();
        let home = c.own_domain_path()?;
        let names = match c.directory(&format!("{home}/device/{class}")) {
            Ok(n) => n,
            Err(XsError::Errno(e)) if e == crate::error::Errno::ENOENT => alloc::vec::Vec::new(),
            Err(e) => return Err(e.into()),
        };
        let mut ids: alloc::vec::Vec<u32> = names.iter().filter_map(|n| n.parse().ok()).collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Opens device `class`/`devid`: reads and checks its backend.
    pub fn open(store: &'s spin::Mutex<Client<T>>, class: &str, devid: u32) -> Result<Self, XenbusError> {
        let mut c = store.lock();
        let me = c.own_domid()?;
        let path = format!("{}/device/{class}/{devid}", c.own_domain_path()?);
        let read = |c: &mut Client<T>, key: &str| -> Result<String, XenbusError> {
            match c.read_string(&format!("{path}/{key}")) {
                Ok(v) => Ok(v),
                Err(XsError::Errno(_)) | Err(XsError::Malformed(_)) => Err(XenbusError::BadBackend(format!("{path}/{key}"))),
                Err(e) => Err(e.into()),
            }
        };
        let backend = read(&mut c, "backend")?;
        let id = read(&mut c, "backend-id")?;
        let backend_id = id.parse::<u16>().map(DomId).map_err(|_| XenbusError::BadBackend(format!("backend-id {id:?}")))?;
        let expected = format!("/local/domain/{}/backend/{class}/{}/{devid}", backend_id.0, me.0);
        if backend != expected {
            return Err(XenbusError::BadBackend(backend));
        }
        drop(c);
        Ok(Frontend { store, path, backend, backend_id, devid })
    }

    /// Our device directory.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The backend's directory.
    pub fn backend_path(&self) -> &str {
        &self.backend
    }

    /// The backend's domain.
    pub fn backend_id(&self) -> DomId {
        self.backend_id
    }

    /// The device id (`devid`, the vbd's virtual device number).
    pub fn devid(&self) -> u32 {
        self.devid
    }

    /// A backend node, as text; `None` when absent.
    pub fn read_backend(&self, key: &str) -> Result<Option<String>, XenbusError> {
        match self.store.lock().read_string(&format!("{}/{key}", self.backend)) {
            Ok(v) => Ok(Some(v)),
            Err(XsError::Errno(e)) if e == crate::error::Errno::ENOENT => Ok(None),
            Err(XsError::Malformed(_)) => Err(XenbusError::BadNode(key.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// A backend number (`sectors`, `info`, ...); absent or garbage is an error.
    pub fn backend_u64(&self, key: &str) -> Result<u64, XenbusError> {
        self.read_backend(key)?.and_then(|v| v.trim().parse().ok()).ok_or_else(|| XenbusError::BadNode(key.to_string()))
    }

    /// A backend `feature-*` flag: absent or `0` is off, `1` on.
    pub fn backend_flag(&self, key: &str) -> Result<bool, XenbusError> {
        match self.read_backend(key)?.as_deref().map(str::trim) {
            None | Some("0") => Ok(false),
            Some("1") => Ok(true),
            Some(_) => Err(XenbusError::BadNode(key.to_string())),
        }
    }

    /// Writes our keys (`(key, value)` under our directory) in one
    /// transaction, retried while it conflicts.
    pub fn publish(&self, keys: &[(&str, &str)]) -> Result<(), XenbusError> {
        let path = &self.path;
        self.store.lock().transaction(|tx| {
            for (k, v) in keys {
                tx.write(&format!("{path}/{k}"), v.as_bytes())?;
            }
            Ok(())
        })?;
        Ok(())
    }

    /// Publishes our state.
    pub fn switch(&self, state: XenbusState) -> Result<(), XenbusError> {
        let v = (state as u8).to_string();
        self.store.lock().write(&format!("{}/state", self.path), v.as_bytes())?;
        Ok(())
    }

    /// The backend's state now (a missing node is `Closed`: the
    /// toolstack removed the device).
    pub fn backend_state(&self) -> Result<XenbusState, XenbusError> {
        match self.read_backend("state")? {
            Some(v) => XenbusState::parse(v.as_bytes()),
            None => Ok(XenbusState::Closed),
        }
    }

    /// Whether the backend is still with us: `Err(BackendClosing)` once it
    /// is closing, closed or gone.
    pub fn check_backend(&self) -> Result<(), XenbusError> {
        match self.backend_state()? {
            s @ (XenbusState::Closing | XenbusState::Closed) => Err(XenbusError::BackendClosing(s)),
            _ => Ok(()),
        }
    }

    /// Waits (on a watch of the backend's `state`) until the backend is in
    /// `want` or further along the handshake; a backend that goes to
    /// Closing/Closed instead (unless that is what we wait for) is an error.
    pub fn wait_backend(&self, want: XenbusState, timeout: Duration) -> Result<XenbusState, XenbusError> {
        let node = format!("{}/state", self.backend);
        let mut last: Result<Option<XenbusState>, XenbusError> = Ok(None);
        let closing_ok = want >= XenbusState::Closing;
        let ns = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
        let r = self.store.lock().wait_node_until(&node, ns, |v| {
            last = match v {
                None => Ok(Some(XenbusState::Closed)),
                Some(v) => XenbusState::parse(v).map(Some),
            };
            match &last {
                Err(_) => true,
                Ok(Some(s)) if closing_ok => *s >= want && *s <= XenbusState::Closed,
                Ok(Some(s @ (XenbusState::Closing | XenbusState::Closed))) => {
                    last = Err(XenbusError::BackendClosing(*s));
                    true
                }
                Ok(Some(s)) => *s >= want && *s < XenbusState::Closing,
                Ok(None) => false,
            }
        });
        match r {
            Ok(_) => last.map(|s| s.unwrap_or(XenbusState::Unknown)),
            Err(XsError::Timeout) => Err(XenbusError::Timeout { waiting_for: want, backend: last.ok().flatten() }),
            Err(e) => Err(e.into()),
        }
    }

    /// Closes our end: `Closing`, wait (up to `timeout`) for the backend
    /// to close, `Closed`. A backend that is gone or never answers still
    /// leaves us `Closed`; the timeout is then reported.
    pub fn close(&self, timeout: Duration) -> Result<(), XenbusError> {
        self.switch(XenbusState::Closing)?;
        let waited = self.wait_backend(XenbusState::Closing, timeout);
        self.switch(XenbusState::Closed)?;
        waited.map(drop)
    }
}
