//! Xen's own libxenvchan (`tools/libs/vchan`, API in
//! `tools/include/libxenvchan.h`), loaded at run time with `dlopen` from
//! dom0's `libxenvchan.so.4.17`, so that xenpv's rings can be measured and
//! checked against the C implementation they claim to be compatible with.
//!
//! Why `dlopen`: the dom0 tools are static binaries (they must run whatever
//! the initramfs carries), and static glibc can still `dlopen`: it loads
//! the library and its dependencies (libxenstore, libxengnttab,
//! libxenevtchn, libxentoollog, and a second libc.so.6, the same glibc the
//! tools were linked with, since the lab copies the build machine's) into
//! the process. That is the mechanism glibc uses for NSS modules in static
//! programs; libxenvchan starts no threads and shares no `FILE` or heap
//! pointer with the caller, which is what two libc copies cannot share.
//! Two costs of that choice: `errno` set inside the library is the other
//! copy's, so failures carry no errno; and that copy's own dependency,
//! `ld-linux-x86-64.so.2`, is looked up on the library search path, so
//! dom0 (which has it only at `/lib64`) must have `/lib64` in
//! `LD_LIBRARY_PATH` (the bench's companion scripts set it). A dynamically
//! linked tool would avoid both but need its own build of the package
//! without `crt-static`.
//!
//! Every `unsafe` of the vchan tool is in this module.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::fmt;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

/// The library's soname in the lab's dom0 (Xen 4.17).
pub const SONAME: &str = "libxenvchan.so.4.17";

type ClientInit = unsafe extern "C" fn(*mut c_void, c_int, *const c_char) -> *mut c_void;
type ServerInit =
    unsafe extern "C" fn(*mut c_void, c_int, *const c_char, usize, usize) -> *mut c_void;
type Io = unsafe extern "C" fn(*mut c_void, *const c_void, usize) -> c_int;
type IoMut = unsafe extern "C" fn(*mut c_void, *mut c_void, usize) -> c_int;
type Ctl = unsafe extern "C" fn(*mut c_void) -> c_int;
type Close = unsafe extern "C" fn(*mut c_void);

/// The head of `struct libxenvchan` (libxenvchan.h) up to its flag bits,
/// on x86_64 with GCC's bit-field layout: the handle union, `ring`,
/// `event`, `event_port`, then `is_server:1`, `server_persist:1`,
/// `blocking:1` allocated from bit 0 of the next `int`.
#[repr(C)]
struct CtrlHead {
    handle: *mut c_void,
    ring: *mut c_void,
    event: *mut c_void,
    event_port: u32,
    flags: u32,
}
const _: () = assert!(core::mem::offset_of!(CtrlHead, flags) == 28);
/// `blocking:1`, the third bit-field.
const FLAG_BLOCKING: u32 = 1 << 2;

/// What a libxenvchan call can fail with.
#[derive(Debug)]
pub enum VchanError {
    /// `dlopen`/`dlsym` failed; the text is `dlerror()`'s.
    Load(String),
    /// `libxenvchan_server_init`/`client_init` returned NULL. (No errno:
    /// the library sets the one of the libc copy it was loaded with, in
    /// that copy's thread-local storage, which this program never sees.)
    Init { what: &'static str },
    /// A call returned -1 (the peer closed, or an event-channel error).
    Call { what: &'static str },
    /// Waiting on the event channel failed.
    Poll(std::io::Error),
    /// Nothing moved for this long.
    Stalled { what: &'static str, after: Duration },
    /// A path with a NUL byte.
    BadPath,
}

impl fmt::Display for VchanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VchanError::Load(s) => write!(f, "cannot load {SONAME}: {s}"),
            VchanError::Init { what } => write!(f, "{what} returned NULL"),
            VchanError::Call { what } => write!(f, "{what} returned -1"),
            VchanError::Poll(e) => write!(f, "poll on the vchan's event channel failed: {e}"),
            VchanError::Stalled { what, after } => write!(f, "{what}: nothing moved for {after:?}"),
            VchanError::BadPath => write!(f, "xenstore path contains a NUL byte"),
        }
    }
}

impl std::error::Error for VchanError {}

/// libxenvchan's entry points, resolved once.
pub struct Library {
    client_init: ClientInit,
    server_init: ServerInit,
    write: Io,
    read: IoMut,
    wait: Ctl,
    is_open: Ctl,
    fd_for_select: Ctl,
    close: Close,
}

fn dlerror() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string that stays
    // valid until the next dl* call on this thread; it is copied at once.
    unsafe {
        let e = libc::dlerror();
        if e.is_null() {
            "unknown error".into()
        } else {
            CStr::from_ptr(e).to_string_lossy().into_owned()
        }
    }
}

impl Library {
    /// Loads [`SONAME`] from the loader's search path (dom0's
    /// `LD_LIBRARY_PATH` or `/usr/lib/x86_64-linux-gnu`).
    pub fn open() -> Result<Library, VchanError> {
        let name = CString::new(SONAME).map_err(|_| VchanError::BadPath)?;
        // The handle is never closed: resolved functions stay valid for the
        // process's life.
        // SAFETY: `name` is NUL-terminated; the library's constructors
        // (libxenvchan's and its dependencies') touch none of our state.
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(VchanError::Load(dlerror()));
        }
        let sym = |n: &str| -> Result<*mut c_void, VchanError> {
            let c = CString::new(n).map_err(|_| VchanError::BadPath)?;
            // SAFETY: `handle` is a live dlopen handle, `c` NUL-terminated.
            let p = unsafe { libc::dlsym(handle, c.as_ptr()) };
            if p.is_null() {
                Err(VchanError::Load(format!("{n}: {}", dlerror())))
            } else {
                Ok(p)
            }
        };
        // SAFETY: each symbol is the function of that name in
        // libxenvchan.h, whose C signature the target type spells out
        // (struct pointers as `*mut c_void`, `int` as c_int, `size_t` as usize).
        unsafe {
            Ok(Library {
                client_init: std::mem::transmute::<*mut c_void, ClientInit>(sym(
                    "libxenvchan_client_init",
                )?),
                server_init: std::mem::transmute::<*mut c_void, ServerInit>(sym(
                    "libxenvchan_server_init",
                )?),
                write: std::mem::transmute::<*mut c_void, Io>(sym("libxenvchan_write")?),
                read: std::mem::transmute::<*mut c_void, IoMut>(sym("libxenvchan_read")?),
                wait: std::mem::transmute::<*mut c_void, Ctl>(sym("libxenvchan_wait")?),
                is_open: std::mem::transmute::<*mut c_void, Ctl>(sym("libxenvchan_is_open")?),
                fd_for_select: std::mem::transmute::<*mut c_void, Ctl>(sym(
                    "libxenvchan_fd_for_select",
                )?),
                close: std::mem::transmute::<*mut c_void, Close>(sym("libxenvchan_close")?),
            })
        }
    }

    /// `libxenvchan_client_init(NULL, domain, path)`: connects to the
    /// server that `domain` published at `path`.
    pub fn client(&self, domain: u16, path: &str) -> Result<Vchan<'_>, VchanError> {
        let c = CString::new(path).map_err(|_| VchanError::BadPath)?;
        // A NULL logger is allowed: init.c hands it to xenevtchn_open and
        // xengnttab_open, which then log to stderr.
        // SAFETY: the logger may be NULL (above); `c` is NUL-terminated
        // and only read during the call.
        let ctrl =
            unsafe { (self.client_init)(std::ptr::null_mut(), c_int::from(domain), c.as_ptr()) };
        Vchan::new(self, ctrl, "libxenvchan_client_init")
    }

    /// `libxenvchan_server_init(NULL, domain, path, read_min, write_min)`:
    /// offers a vchan to `domain` at `path`; `read_min` sizes the ring the
    /// client writes (left), `write_min` the one it reads (right).
    pub fn server(
        &self,
        domain: u16,
        path: &str,
        read_min: usize,
        write_min: usize,
    ) -> Result<Vchan<'_>, VchanError> {
        let c = CString::new(path).map_err(|_| VchanError::BadPath)?;
        // SAFETY: as in `client`.
        let ctrl = unsafe {
            (self.server_init)(
                std::ptr::null_mut(),
                c_int::from(domain),
                c.as_ptr(),
                read_min,
                write_min,
            )
        };
        Vchan::new(self, ctrl, "libxenvchan_server_init")
    }
}

/// One open vchan (a `struct libxenvchan *`), non-blocking: reads and
/// writes move what they can and [`Vchan::wait`] sleeps on its event
/// channel with a timeout, so a peer that vanishes cannot hang the tool.
pub struct Vchan<'a> {
    lib: &'a Library,
    ctrl: NonNull<c_void>,
}

impl<'a> Vchan<'a> {
    fn new(lib: &'a Library, ctrl: *mut c_void, what: &'static str) -> Result<Self, VchanError> {
        let ctrl = NonNull::new(ctrl).ok_or(VchanError::Init { what })?;
        // libxenvchan mallocs the struct and never sets `blocking`
        // (init.c), so every caller must; the tool chooses non-blocking.
        // SAFETY: `ctrl` points to a live `struct libxenvchan` in our own
        // heap, whose head `CtrlHead` describes; only this thread uses it.
        unsafe {
            let flags = &raw mut (*ctrl.as_ptr().cast::<CtrlHead>()).flags;
            flags.write(flags.read() & !FLAG_BLOCKING);
        }
        Ok(Vchan { lib, ctrl })
    }

    /// `libxenvchan_write`: bytes taken (0 when the ring is full).
    pub fn write(&mut self, data: &[u8]) -> Result<usize, VchanError> {
        // SAFETY: `ctrl` is live; `data` is readable for its length.
        let n = unsafe { (self.lib.write)(self.ctrl.as_ptr(), data.as_ptr().cast(), data.len()) };
        usize::try_from(n).map_err(|_| VchanError::Call {
            what: "libxenvchan_write",
        })
    }

    /// `libxenvchan_read`: bytes read (0 when the ring is empty).
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, VchanError> {
        // SAFETY: `ctrl` is live; `buf` is writable for its length.
        let n = unsafe { (self.lib.read)(self.ctrl.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        usize::try_from(n).map_err(|_| VchanError::Call {
            what: "libxenvchan_read",
        })
    }

    /// `libxenvchan_is_open`: 0 closed, 1 open, 2 server still waiting for its client.
    pub fn is_open(&self) -> i32 {
        // SAFETY: `ctrl` is live.
        unsafe { (self.lib.is_open)(self.ctrl.as_ptr()) }
    }

    /// Sleeps until the event channel fires (true; the event is consumed
    /// with `libxenvchan_wait`) or `timeout` passes (false).
    pub fn wait(&mut self, timeout: Duration) -> Result<bool, VchanError> {
        // SAFETY: `ctrl` is live.
        let fd = unsafe { (self.lib.fd_for_select)(self.ctrl.as_ptr()) };
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            return if e.kind() == std::io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(VchanError::Poll(e))
            };
        }
        if r == 0 {
            return Ok(false);
        }
        // The fd is readable, so libxenvchan_wait's read of the pending
        // port does not block.
        // SAFETY: `ctrl` is live.
        if unsafe { (self.lib.wait)(self.ctrl.as_ptr()) } < 0 {
            return Err(VchanError::Call {
                what: "libxenvchan_wait",
            });
        }
        Ok(true)
    }

    /// Writes all of `data`, failing if nothing moves for `stall`.
    pub fn write_all(&mut self, mut data: &[u8], stall: Duration) -> Result<(), VchanError> {
        let mut last = Instant::now();
        while !data.is_empty() {
            let n = self.write(data)?;
            if n > 0 {
                data = &data[n..];
                last = Instant::now();
            } else if !self.wait(Duration::from_millis(100))? && last.elapsed() > stall {
                return Err(VchanError::Stalled {
                    what: "write",
                    after: stall,
                });
            }
        }
        Ok(())
    }

    /// Reads at least one byte into `buf`, failing if nothing comes for `stall`.
    pub fn read_some(&mut self, buf: &mut [u8], stall: Duration) -> Result<usize, VchanError> {
        let start = Instant::now();
        loop {
            let n = self.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if !self.wait(Duration::from_millis(100))? && start.elapsed() > stall {
                return Err(VchanError::Stalled {
                    what: "read",
                    after: stall,
                });
            }
        }
    }
}

impl Drop for Vchan<'_> {
    fn drop(&mut self) {
        // SAFETY: `ctrl` came from *_init and is closed exactly once here.
        unsafe { (self.lib.close)(self.ctrl.as_ptr()) }
    }
}
