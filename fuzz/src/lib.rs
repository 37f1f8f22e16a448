//! Helpers shared by the fuzz targets: a cursor over the fuzz input that
//! never fails (an exhausted input reads as zeros, and ends the op loop).

/// Reads little-endian integers off the front of the fuzz input.
#[derive(Debug)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// A cursor over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// Whether the input is used up.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte (0 once exhausted).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// The next little-endian `u32`.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// A length-prefixed byte string (one length byte, scaled by `unit`).
    pub fn chunk(&mut self, unit: usize) -> &'a [u8] {
        let n = self.u8() as usize * unit;
        self.bytes(n)
    }
}

/// Zeroed, 8-byte aligned memory standing in for a shared page, freed on
/// drop (`SharedMem::leak_zeroed` would leak on every fuzz run).
#[derive(Debug)]
pub struct Region {
    words: Vec<u64>,
    /// Taken once from `words`, so every view derives from the same
    /// pointer and none goes through a reference to the buffer.
    base: core::ptr::NonNull<u8>,
}

impl Region {
    /// `len` zeroed bytes (rounded up to a multiple of 8).
    pub fn new(len: usize) -> Self {
        let mut words = vec![0u64; len.div_ceil(8).max(1)];
        let base = core::ptr::NonNull::new(words.as_mut_ptr().cast::<u8>())
            .expect("Vec pointer is non-null");
        Region { words, base }
    }

    /// A view of the first `len` bytes, borrowing the region.
    pub fn mem(&self, len: usize) -> xenpv::shared_mem::SharedMem<'_> {
        assert!(len <= self.words.len() * 8);
        // SAFETY: base..base+len lies inside `words` (asserted), which
        // stays allocated, readable and writable while `self` is borrowed
        // (the view's lifetime), and is never touched through a
        // reference after `new`: all access goes through these views.
        unsafe { xenpv::shared_mem::SharedMem::new(self.base, len) }
    }
}

/// One zeroed page for the whole process, for APIs that want a
/// `SharedMem<'static>` (`TwoLevel`, the fake xenstored): leaked once,
/// zeroed again at every [`take`](Self::take), so no fuzz run leaks.
#[derive(Debug)]
pub struct StaticPage(std::sync::OnceLock<xenpv::shared_mem::SharedMem<'static>>);

impl StaticPage {
    /// The page, not yet allocated.
    pub const fn new() -> Self {
        StaticPage(std::sync::OnceLock::new())
    }

    /// The page, all zero. libFuzzer runs one input at a time, so the
    /// previous run's views are gone when the next one takes it.
    pub fn take(&self) -> xenpv::shared_mem::SharedMem<'static> {
        let page = *self
            .0
            .get_or_init(|| xenpv::shared_mem::SharedMem::leak_zeroed(4096));
        page.fill(0, page.len(), 0).expect("the whole page");
        page
    }
}

impl Default for StaticPage {
    fn default() -> Self {
        Self::new()
    }
}

/// The peer run at each wait step, handed the events (to kill them).
pub type Peer<'h> = Box<dyn FnMut(&Events<'h>) + 'h>;

/// Event channels for the driver targets: deterministic, one thread.
/// The clock is virtual (each wait step and clock read moves it), every
/// allocated port counts as bound by the peer until [`kill`](Self::kill),
/// and every wait step runs the peer (a fuzz-driven back end), so a
/// driver that waits for its back end is answered (or times out) at
/// once, in an order the fuzz input chooses.
pub struct Events<'h> {
    clock: core::cell::Cell<u64>,
    next_port: core::cell::Cell<u32>,
    open: core::cell::RefCell<std::collections::BTreeSet<u32>>,
    alive: core::cell::Cell<bool>,
    sends: core::cell::Cell<u64>,
    steps: core::cell::Cell<u64>,
    peer: core::cell::RefCell<Option<Peer<'h>>>,
}

impl core::fmt::Debug for Events<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Events")
            .field("clock", &self.clock.get())
            .field("sends", &self.sends.get())
            .finish()
    }
}

impl Default for Events<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'h> Events<'h> {
    /// No port open, the clock at 1 s.
    pub fn new() -> Self {
        Events {
            clock: core::cell::Cell::new(1_000_000_000),
            next_port: core::cell::Cell::new(1),
            open: Default::default(),
            alive: core::cell::Cell::new(true),
            sends: core::cell::Cell::new(0),
            steps: core::cell::Cell::new(0),
            peer: core::cell::RefCell::new(None),
        }
    }

    /// Runs `peer` at every wait step.
    pub fn set_peer(&self, peer: Peer<'h>) {
        *self.peer.borrow_mut() = Some(peer);
    }

    /// Removes the peer (before what it borrows goes away).
    pub fn clear_peer(&self) {
        self.peer.borrow_mut().take();
    }

    /// The peer domain dies: its ends close, ours turn unbound.
    pub fn kill(&self) {
        self.alive.set(false);
    }

    /// Events we sent.
    pub fn sends(&self) -> u64 {
        self.sends.get()
    }

    /// Ports open now.
    pub fn open_ports(&self) -> usize {
        self.open.borrow().len()
    }

    /// Moves the clock on by `ns`.
    pub fn advance(&self, ns: u64) {
        self.clock.set(self.clock.get().saturating_add(ns));
    }

    /// Wait steps so far.
    pub fn steps(&self) -> u64 {
        self.steps.get()
    }

    fn step_peer(&self) {
        self.steps.set(self.steps.get() + 1);
        // A peer that makes the driver wait again does not recurse.
        if let Ok(mut p) = self.peer.try_borrow_mut() {
            if let Some(f) = p.as_mut() {
                f(self);
            }
        }
    }
}

const PEER: xenpv::DomId = xenpv::DomId(0);

impl xenpv::event::EventOps for Events<'_> {
    fn alloc_unbound(
        &self,
        _remote: xenpv::DomId,
    ) -> Result<xenpv::EvtchnPort, xenpv::event::EventError> {
        let p = self.next_port.get();
        self.next_port.set(p + 1);
        self.open.borrow_mut().insert(p);
        Ok(xenpv::EvtchnPort(p))
    }

    fn bind_interdomain(
        &self,
        remote: xenpv::DomId,
        _remote_port: xenpv::EvtchnPort,
    ) -> Result<xenpv::EvtchnPort, xenpv::event::EventError> {
        self.alloc_unbound(remote)
    }

    fn send(&self, port: xenpv::EvtchnPort) -> Result<(), xenpv::event::EventError> {
        if !self.open.borrow().contains(&port.0) {
            return Err(xenpv::event::EventError::Hypercall(xenpv::Errno::EINVAL));
        }
        self.sends.set(self.sends.get() + 1);
        Ok(())
    }

    fn close(&self, port: xenpv::EvtchnPort) -> Result<(), xenpv::event::EventError> {
        if self.open.borrow_mut().remove(&port.0) {
            Ok(())
        } else {
            Err(xenpv::event::EventError::Hypercall(xenpv::Errno::EINVAL))
        }
    }

    fn status(
        &self,
        port: xenpv::EvtchnPort,
    ) -> Result<xenpv::event::Status, xenpv::event::EventError> {
        use xenpv::event::Status;
        Ok(if !self.open.borrow().contains(&port.0) {
            Status::Closed
        } else if self.alive.get() {
            Status::Interdomain {
                remote: PEER,
                remote_port: xenpv::EvtchnPort(1),
            }
        } else {
            Status::Unbound { remote: PEER }
        })
    }

    fn wait_until(
        &self,
        deadline_ns: Option<u64>,
        cond: &mut dyn FnMut() -> bool,
    ) -> Result<(), xenpv::event::EventError> {
        loop {
            if cond() {
                return Ok(());
            }
            if deadline_ns.is_some_and(|d| self.clock.get() >= d) {
                return Err(xenpv::event::EventError::Timeout);
            }
            // 1 ms per step: a wait without a deadline still ends (the
            // peer answers, or the driver's own checks give up).
            self.advance(1_000_000);
            self.step_peer();
        }
    }

    fn now_ns(&self) -> u64 {
        self.advance(1_000);
        self.clock.get()
    }
}
