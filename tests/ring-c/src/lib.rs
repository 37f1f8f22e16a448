//! The C side of the differential test of `xenpv::ring`: Xen's own
//! `io/ring.h` macros, instantiated in `shim.c` for three ring types
//! (a: 12-byte requests / 16-byte responses, b: blkif-sized 112 / 16,
//! c: 4 / 4), behind a safe wrapper that owns the ring's pages and both
//! ends' private state. `tests/differential.rs` drives it and xenpv's
//! ring through the same operations.

use std::alloc::{alloc_zeroed, dealloc, Layout};

/// The shim's table of functions for one ring type (`struct fns` in
/// shim.c, same field order; the C side stores each function as a
/// `void *` of the signature given here).
#[repr(C)]
pub struct Fns {
    /// `sizeof` the request and the response struct.
    pub req: usize,
    pub rsp: usize,
    front_state_size: unsafe extern "C" fn() -> usize,
    back_state_size: unsafe extern "C" fn() -> usize,
    /// `sizeof(union sring_entry)`.
    pub entry_size: unsafe extern "C" fn() -> usize,
    init: unsafe extern "C" fn(*mut u8, *mut u8, *mut u8, usize, u32),
    front_size: unsafe extern "C" fn(*mut u8) -> u32,
    front_free: unsafe extern "C" fn(*mut u8) -> u32,
    front_push: unsafe extern "C" fn(*mut u8, *const u8) -> i32,
    front_push_notify: unsafe extern "C" fn(*mut u8) -> i32,
    front_unconsumed: unsafe extern "C" fn(*mut u8) -> u32,
    front_poll: unsafe extern "C" fn(*mut u8, *mut u8) -> i32,
    front_final_check: unsafe extern "C" fn(*mut u8) -> i32,
    back_unconsumed: unsafe extern "C" fn(*mut u8) -> u32,
    back_poll: unsafe extern "C" fn(*mut u8, *mut u8) -> i32,
    back_push: unsafe extern "C" fn(*mut u8, *const u8) -> i32,
    back_push_notify: unsafe extern "C" fn(*mut u8) -> i32,
    back_final_check: unsafe extern "C" fn(*mut u8) -> i32,
    front_idx: unsafe extern "C" fn(*mut u8, *mut u32),
    back_idx: unsafe extern "C" fn(*mut u8, *mut u32),
}

/// One ring type's functions.
pub type Shim = &'static Fns;

extern "C" {
    fn a_fns() -> *const Fns;
    fn b_fns() -> *const Fns;
    fn c_fns() -> *const Fns;
}

fn table(get: unsafe extern "C" fn() -> *const Fns) -> Shim {
    // SAFETY: each `*_fns` returns a pointer to a static `struct fns`,
    // whose layout `Fns` mirrors (all fields pointer-sized).
    unsafe { &*get() }
}

/// Ring type a: 12-byte requests, 16-byte responses.
pub fn a() -> Shim {
    table(a_fns)
}

/// Ring type b: 112-byte requests (blkif's size), 16-byte responses.
pub fn b() -> Shim {
    table(b_fns)
}

/// Ring type c: 4-byte requests and responses.
pub fn c() -> Shim {
    table(c_fns)
}

/// A C ring: its pages and both ends' `front_ring`/`back_ring` structs.
pub struct CRing {
    shim: Shim,
    page: *mut u8,
    layout: Layout,
    front: Vec<u64>,
    back: Vec<u64>,
}

impl CRing {
    /// `SHARED_RING_INIT` + `FRONT_RING_ATTACH` + `BACK_RING_ATTACH` over
    /// `bytes` zeroed, page-aligned bytes, indices at `start`.
    pub fn new(shim: Shim, bytes: usize, start: u32) -> CRing {
        let layout = Layout::from_size_align(bytes, 4096).expect("layout");
        // SAFETY: non-zero size (the tests use whole pages).
        let page = unsafe { alloc_zeroed(layout) };
        assert!(!page.is_null());
        // SAFETY: plain size queries.
        let (fs, bs) = unsafe { ((shim.front_state_size)(), (shim.back_state_size)()) };
        let mut r = CRing {
            shim,
            page,
            layout,
            front: vec![0; fs.div_ceil(8)],
            back: vec![0; bs.div_ceil(8)],
        };
        // SAFETY: the state buffers are at least the structs' sizes and
        // 8-aligned; the page is `bytes` long.
        unsafe { (shim.init)(r.f(), r.b(), page, bytes, start) };
        r
    }

    fn f(&mut self) -> *mut u8 {
        self.front.as_mut_ptr().cast()
    }

    fn b(&mut self) -> *mut u8 {
        self.back.as_mut_ptr().cast()
    }

    /// The shared bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `page` is `layout.size()` initialised bytes we own; the C
        // code only runs inside our `&mut self` calls.
        unsafe { std::slice::from_raw_parts(self.page, self.layout.size()) }
    }

    /// `RING_SIZE`.
    pub fn size(&mut self) -> u32 {
        // SAFETY: front state initialised in `new`.
        unsafe { (self.shim.front_size)(self.f()) }
    }

    /// `RING_FREE_REQUESTS`.
    pub fn free(&mut self) -> u32 {
        // SAFETY: as above.
        unsafe { (self.shim.front_free)(self.f()) }
    }

    /// Queues `req` (`shim.req` bytes) unless `RING_FULL`.
    pub fn push_request(&mut self, req: &[u8]) -> bool {
        assert_eq!(req.len(), self.shim.req);
        // SAFETY: `req` holds sizeof(req) bytes.
        unsafe { (self.shim.front_push)(self.f(), req.as_ptr()) != 0 }
    }

    /// `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`.
    pub fn push_requests_notify(&mut self) -> bool {
        // SAFETY: front state initialised.
        unsafe { (self.shim.front_push_notify)(self.f()) != 0 }
    }

    /// `RING_HAS_UNCONSUMED_RESPONSES`.
    pub fn unconsumed_responses(&mut self) -> u32 {
        // SAFETY: front state initialised.
        unsafe { (self.shim.front_unconsumed)(self.f()) }
    }

    /// The next response, if any.
    pub fn poll_response(&mut self) -> Option<Vec<u8>> {
        let mut out = vec![0u8; self.shim.rsp];
        // SAFETY: `out` holds sizeof(rsp) bytes.
        (unsafe { (self.shim.front_poll)(self.f(), out.as_mut_ptr()) } != 0).then_some(out)
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES`.
    pub fn final_check_responses(&mut self) -> bool {
        // SAFETY: front state initialised.
        unsafe { (self.shim.front_final_check)(self.f()) != 0 }
    }

    /// `RING_HAS_UNCONSUMED_REQUESTS`.
    pub fn unconsumed_requests(&mut self) -> u32 {
        // SAFETY: back state initialised.
        unsafe { (self.shim.back_unconsumed)(self.b()) }
    }

    /// The next request (`RING_COPY_REQUEST`), if any.
    pub fn poll_request(&mut self) -> Option<Vec<u8>> {
        let mut out = vec![0u8; self.shim.req];
        // SAFETY: `out` holds sizeof(req) bytes.
        (unsafe { (self.shim.back_poll)(self.b(), out.as_mut_ptr()) } != 0).then_some(out)
    }

    /// Queues a response unless every consumed request is answered.
    pub fn push_response(&mut self, rsp: &[u8]) -> bool {
        assert_eq!(rsp.len(), self.shim.rsp);
        // SAFETY: `rsp` holds sizeof(rsp) bytes.
        unsafe { (self.shim.back_push)(self.b(), rsp.as_ptr()) != 0 }
    }

    /// `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`.
    pub fn push_responses_notify(&mut self) -> bool {
        // SAFETY: back state initialised.
        unsafe { (self.shim.back_push_notify)(self.b()) != 0 }
    }

    /// The front end's `(req_prod_pvt, rsp_cons)`.
    pub fn front_indices(&mut self) -> (u32, u32) {
        let mut out = [0u32; 2];
        // SAFETY: front state initialised; `out` holds two RING_IDX.
        unsafe { (self.shim.front_idx)(self.f(), out.as_mut_ptr()) };
        (out[0], out[1])
    }

    /// The back end's `(req_cons, rsp_prod_pvt)`.
    pub fn back_indices(&mut self) -> (u32, u32) {
        let mut out = [0u32; 2];
        // SAFETY: back state initialised; `out` holds two RING_IDX.
        unsafe { (self.shim.back_idx)(self.b(), out.as_mut_ptr()) };
        (out[0], out[1])
    }

    /// `RING_FINAL_CHECK_FOR_REQUESTS`.
    pub fn final_check_requests(&mut self) -> bool {
        // SAFETY: back state initialised.
        unsafe { (self.shim.back_final_check)(self.b()) != 0 }
    }
}

impl Drop for CRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.page, self.layout) };
    }
}
