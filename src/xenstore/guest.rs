//! The xenstore transport of a PV guest: the store page from
//! `start_info.store_mfn` and its event channel `store_evtchn`.

// Xen backend: the store page Xen maps for us.
#![allow(unsafe_code)]

use super::ring::StoreRing;
use super::{Client, Transport, XsError};
use crate::event;
use crate::mm::paging::mfn_to_pfn;
use crate::mm::pfn_to_virt;
use crate::shared_mem::SharedMem;
use crate::types::EvtchnPort;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};

static OPEN: AtomicBool = AtomicBool::new(false);

/// The store ring and its port. Only one exists at a time (the ring has
/// one reader); applications reach it through [`Xen::store`](crate::Xen::store).
#[derive(Debug)]
pub struct RingTransport {
    ring: StoreRing<'static>,
    port: EvtchnPort,
}

impl Drop for RingTransport {
    fn drop(&mut self) {
        OPEN.store(false, Ordering::Release);
    }
}

/// Connects to xenstored through the store page. Fails with
/// `Unavailable` when there is none (a dom0 booted without a toolstack)
/// or when a client is already open.
pub fn open() -> Result<Client<RingTransport>, XsError> {
    let info = crate::start_info::boot_info();
    if info.store_mfn.0 == 0 || info.store_evtchn.0 == 0 || !event::is_ready() {
        return Err(XsError::Unavailable);
    }
    if OPEN.swap(true, Ordering::AcqRel) {
        return Err(XsError::Unavailable);
    }
    connect().inspect_err(|_| OPEN.store(false, Ordering::Release))
}

/// Records `code` in `<own domain>/data/xenpv-exit-code` on the way out of
/// [`crate::exit`]. Uses the ring even when the application holds the
/// client: exit never returns to the application, and a call on this one
/// vCPU cannot be in the middle of a request, so that client is never
/// used again.
pub(crate) fn write_exit_code(code: i32) -> Result<(), XsError> {
    let mut client = connect()?;
    client.set_timeout_ns(2_000_000_000);
    let home = client.own_domain_path()?;
    let mut text = alloc::string::String::new();
    let _ = core::fmt::Write::write_fmt(&mut text, format_args!("{code}"));
    client.write(
        &alloc::format!("{home}/data/xenpv-exit-code"),
        text.as_bytes(),
    )
}

/// The client over the store page, whether or not another one is open.
fn connect() -> Result<Client<RingTransport>, XsError> {
    let info = crate::start_info::boot_info();
    if info.store_mfn.0 == 0 || info.store_evtchn.0 == 0 || !event::is_ready() {
        return Err(XsError::Unavailable);
    }
    // SAFETY: the store page is one of our own frames, inside the
    // bootstrap direct map (the domain builder allocates it with the
    // console page, before the page tables; see console::guest).
    let pfn = unsafe { mfn_to_pfn(info.store_mfn) };
    if pfn.0 >= info.nr_pages {
        return Err(XsError::Unavailable);
    }
    let va = pfn_to_virt(pfn).ok_or(XsError::Unavailable)?;
    // SAFETY: mapped writable for the domain's lifetime; shared with
    // xenstored, hence only accessed through SharedMem.
    let page =
        unsafe { SharedMem::new(NonNull::new_unchecked(va as *mut u8), crate::abi::PAGE_SIZE) };
    let Some(ring) = StoreRing::new(page) else {
        return Err(XsError::Unavailable);
    };
    // event::init unmasked the store port; its fired bit wakes `wait`.
    Ok(Client::new(RingTransport {
        ring,
        port: info.store_evtchn,
    }))
}

impl Transport for RingTransport {
    fn send(&mut self, bytes: &[u8]) -> Result<usize, XsError> {
        let n = self.ring.write_request(bytes)?;
        if n > 0 {
            let _ = event::send(self.port);
        }
        Ok(n)
    }

    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, XsError> {
        let n = self.ring.read_response(buf)?;
        if n > 0 {
            // xenstored may be waiting for room to write the rest.
            let _ = event::send(self.port);
        }
        Ok(n)
    }

    fn now_ns(&self) -> u64 {
        crate::time::now_ns()
    }

    fn wait(&mut self, deadline_ns: u64) -> Result<(), XsError> {
        // The client looked at the ring before calling: a notification
        // after that look sets the fired bit, so this cannot miss it.
        let port = self.port;
        match event::wait_until(Some(deadline_ns), || event::take_fired(port)) {
            Ok(()) | Err(event::EventError::Timeout) => Ok(()),
            Err(_) => Err(XsError::Unavailable),
        }
    }
}

/// [`open`], behind a lock, for code that keeps the store, such as a
/// vchan server that removes its nodes when it closes.
pub fn open_shared() -> Result<spin::Mutex<Client<RingTransport>>, XsError> {
    open().map(spin::Mutex::new)
}
