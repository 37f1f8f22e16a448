//! The drivers' file descriptors and mappings: every `unsafe` of the
//! tools. The mapped pages are shared with another domain that may write
//! them at any moment, so they are reached only through single volatile
//! byte accesses, never through a Rust reference.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::abi::*;
use crate::{Error, Result};

fn open(path: &'static str) -> Result<OwnedFd> {
    let c = CString::new(path).map_err(|_| Error::Usage(format!("bad path {path}")))?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(Error::Open {
            path,
            err: io::Error::last_os_error(),
        });
    }
    // SAFETY: `fd` was just returned by open(2) and is owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Issues `cmd` on `fd` with `arg` pointing at a buffer the ioctl reads and
/// writes.
///
/// # Safety
/// `arg` must point at a writable buffer at least as large as the ioctl
/// reads and writes for `cmd` (its struct, plus any variable-length tail).
unsafe fn ioctl(fd: &OwnedFd, what: &'static str, cmd: u32, arg: *mut libc::c_void) -> Result<()> {
    // SAFETY: the buffer is large enough (caller's contract); the fd is open.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), cmd as libc::c_ulong, arg) };
    if r < 0 {
        return Err(Error::Ioctl {
            what,
            err: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// `len` bytes of a device mapped with `mmap(MAP_SHARED)`; unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(fd: &OwnedFd, index: u64, len: usize, writable: bool) -> Result<Mapping> {
        let prot = libc::PROT_READ | if writable { libc::PROT_WRITE } else { 0 };
        let offset = libc::off_t::try_from(index).map_err(|_| Error::Mmap {
            err: io::Error::from_raw_os_error(libc::EOVERFLOW),
        })?;
        // SAFETY: a fresh mapping chosen by the kernel (no address hint),
        // so no existing memory is replaced.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                offset,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::Mmap {
                err: io::Error::last_os_error(),
            });
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or(Error::Mmap {
            err: io::Error::from_raw_os_error(libc::EFAULT),
        })?;
        Ok(Mapping { ptr, len })
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a mapping has at least one page.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn check(&self, offset: usize, len: usize) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(Error::OutOfRange {
                offset,
                len,
                size: self.len,
            }),
        }
    }

    /// Reads the byte at `offset`.
    pub fn load(&self, offset: usize) -> Result<u8> {
        self.check(offset, 1)?;
        // SAFETY: in bounds (checked); a volatile read of a byte the peer
        // may write concurrently yields some byte, never UB.
        Ok(unsafe { self.ptr.as_ptr().add(offset).read_volatile() })
    }

    /// Writes the byte at `offset` (the mapping must be writable, else the
    /// kernel sends SIGSEGV: callers map writable whenever they write).
    pub fn store(&self, offset: usize, v: u8) -> Result<()> {
        self.check(offset, 1)?;
        // SAFETY: in bounds (checked); volatile, no reference formed.
        unsafe { self.ptr.as_ptr().add(offset).write_volatile(v) };
        Ok(())
    }

    /// Copies `src` in at `offset`.
    pub fn write(&self, offset: usize, src: &[u8]) -> Result<()> {
        self.check(offset, src.len())?;
        for (i, b) in src.iter().enumerate() {
            self.store(offset + i, *b)?;
        }
        Ok(())
    }

    /// Copies bytes out from `offset`.
    pub fn read(&self, offset: usize, dst: &mut [u8]) -> Result<()> {
        self.check(offset, dst.len())?;
        for (i, b) in dst.iter_mut().enumerate() {
            *b = self.load(offset + i)?;
        }
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned; nothing borrows
        // the mapping (accesses are by value).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

fn pages_len(count: usize) -> Result<usize> {
    count
        .checked_mul(PAGE_SIZE)
        .filter(|_| count > 0)
        .ok_or_else(|| Error::Usage(format!("cannot map {count} pages")))
}

fn check_domid(domid: u32) -> Result<()> {
    if domid >= DOMID_FIRST_RESERVED {
        return Err(Error::Usage(format!(
            "{domid} is not a domain id (the first reserved one is {DOMID_FIRST_RESERVED:#x})"
        )));
    }
    Ok(())
}

/// `/dev/xen/gntdev`: maps other domains' grants.
#[derive(Debug)]
pub struct GntDev {
    fd: OwnedFd,
}

/// Grants mapped through gntdev. Dropping it unmaps them (`munmap`, which
/// runs any unmap notification, then `IOCTL_GNTDEV_UNMAP_GRANT_REF`).
#[derive(Debug)]
pub struct GntDevMapping<'a> {
    dev: &'a GntDev,
    index: u64,
    count: u32,
    mem: Option<Mapping>,
}

impl GntDev {
    pub const PATH: &'static str = "/dev/xen/gntdev";

    pub fn open() -> Result<GntDev> {
        Ok(GntDev {
            fd: open(Self::PATH)?,
        })
    }

    /// Maps `refs` of `domid` at consecutive pages (writable or read-only:
    /// gntdev maps read-only grants when the mmap has no PROT_WRITE).
    pub fn map(&self, domid: u32, refs: &[u32], writable: bool) -> Result<GntDevMapping<'_>> {
        check_domid(domid)?;
        let len = pages_len(refs.len())?;
        let count = u32::try_from(refs.len()).map_err(|_| Error::Usage("too many refs".into()))?;
        // Header (16 bytes) then `count` 8-byte refs, in u64 words so the
        // buffer is aligned like the struct.
        let mut buf = vec![0u64; 2 + refs.len()];
        let head = buf.as_mut_ptr().cast::<ioctl_gntdev_map_grant_ref>();
        // SAFETY: `buf` holds 16 + 8 * count >= 24 bytes, 8-aligned, so the
        // struct (24 bytes, its first ref included) fits; the refs follow
        // it at byte 16 as the ABI's variable-length array.
        unsafe {
            (*head).count = count;
            let first = std::ptr::addr_of_mut!((*head).refs).cast::<ioctl_gntdev_grant_ref>();
            for (i, r) in refs.iter().enumerate() {
                first
                    .add(i)
                    .write(ioctl_gntdev_grant_ref { domid, ref_: *r });
            }
            ioctl(
                &self.fd,
                "IOCTL_GNTDEV_MAP_GRANT_REF",
                IOCTL_GNTDEV_MAP_GRANT_REF,
                head.cast(),
            )?;
        }
        // SAFETY: the ioctl wrote the header; the buffer still lives.
        let index = unsafe { (*head).index };
        let mut m = GntDevMapping {
            dev: self,
            index,
            count,
            mem: None,
        };
        // The grant map hypercalls happen here, for a PV dom0.
        m.mem = Some(Mapping::new(&self.fd, index, len, writable)?);
        Ok(m)
    }
}

impl GntDevMapping<'_> {
    /// The mapped pages.
    pub fn mem(&self) -> &Mapping {
        // Some from construction until drop.
        self.mem.as_ref().expect("mapping present")
    }

    /// The gntdev index of the mapping (the mmap offset).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// `IOCTL_GNTDEV_SET_UNMAP_NOTIFY` with `UNMAP_NOTIFY_CLEAR_BYTE`: the
    /// kernel sets the byte at `offset` (in the whole mapping) to zero when
    /// the mapping goes, even if this process dies.
    pub fn notify_clear_byte(&self, offset: usize) -> Result<()> {
        self.mem().check(offset, 1)?;
        let mut op = ioctl_unmap_notify {
            index: self.index + offset as u64,
            action: UNMAP_NOTIFY_CLEAR_BYTE,
            event_channel_port: 0,
        };
        // SAFETY: `op` is the ioctl's whole struct.
        unsafe {
            ioctl(
                &self.dev.fd,
                "IOCTL_GNTDEV_SET_UNMAP_NOTIFY",
                IOCTL_GNTDEV_SET_UNMAP_NOTIFY,
                std::ptr::addr_of_mut!(op).cast(),
            )
        }
    }

    /// Unmaps, reporting a failure that dropping would swallow.
    pub fn unmap(mut self) -> Result<()> {
        self.release()
    }

    fn release(&mut self) -> Result<()> {
        // munmap first: the kernel refuses to forget a mapping still in use.
        self.mem = None;
        if self.count == 0 {
            return Ok(());
        }
        let mut op = ioctl_gntdev_unmap_grant_ref {
            index: self.index,
            count: self.count,
            pad: 0,
        };
        self.count = 0;
        // SAFETY: `op` is the ioctl's whole struct.
        unsafe {
            ioctl(
                &self.dev.fd,
                "IOCTL_GNTDEV_UNMAP_GRANT_REF",
                IOCTL_GNTDEV_UNMAP_GRANT_REF,
                std::ptr::addr_of_mut!(op).cast(),
            )
        }
    }
}

impl Drop for GntDevMapping<'_> {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

/// `/dev/xen/gntalloc`: shares dom0 pages with another domain.
#[derive(Debug)]
pub struct GntAlloc {
    fd: OwnedFd,
}

/// Pages shared through gntalloc. Dropping it unmaps them and deallocates
/// the grants (`IOCTL_GNTALLOC_DEALLOC_GREF`; the driver keeps a page the
/// peer still maps until the peer lets go).
#[derive(Debug)]
pub struct GntAllocPages<'a> {
    dev: &'a GntAlloc,
    index: u64,
    count: u32,
    grefs: Vec<u32>,
    mem: Option<Mapping>,
}

impl GntAlloc {
    pub const PATH: &'static str = "/dev/xen/gntalloc";

    pub fn open() -> Result<GntAlloc> {
        Ok(GntAlloc {
            fd: open(Self::PATH)?,
        })
    }

    /// `IOCTL_GNTALLOC_ALLOC_GREF`: `count` zeroed pages granted to `domid`.
    pub fn share(&self, domid: u32, count: u32, writable: bool) -> Result<GntAllocPages<'_>> {
        check_domid(domid)?;
        let len = pages_len(count as usize)?;
        // The driver copies the whole 24-byte struct back before the ids,
        // so the buffer holds max(24, 16 + 4 * count) bytes, in u64 words.
        let bytes = (16 + 4 * count as usize).max(std::mem::size_of::<ioctl_gntalloc_alloc_gref>());
        let mut buf = vec![0u64; bytes.div_ceil(8)];
        let head = buf.as_mut_ptr().cast::<ioctl_gntalloc_alloc_gref>();
        let mut grefs = vec![0u32; count as usize];
        // SAFETY: `buf` is 8-aligned and at least as large as the struct
        // plus `count` ids (see above), which is all the driver touches.
        unsafe {
            (*head).domid = domid as u16; // < DOMID_FIRST_RESERVED: fits
            (*head).flags = if writable { GNTALLOC_FLAG_WRITABLE } else { 0 };
            (*head).count = count;
            ioctl(
                &self.fd,
                "IOCTL_GNTALLOC_ALLOC_GREF",
                IOCTL_GNTALLOC_ALLOC_GREF,
                head.cast(),
            )?;
            let ids = std::ptr::addr_of!((*head).gref_ids).cast::<u32>();
            for (i, g) in grefs.iter_mut().enumerate() {
                *g = ids.add(i).read();
            }
        }
        // SAFETY: the ioctl wrote the header; the buffer still lives.
        let index = unsafe { (*head).index };
        let mut pages = GntAllocPages {
            dev: self,
            index,
            count,
            grefs,
            mem: None,
        };
        // Our own pages: always mapped writable, to fill them.
        pages.mem = Some(Mapping::new(&self.fd, index, len, true)?);
        Ok(pages)
    }
}

impl GntAllocPages<'_> {
    /// The pages.
    pub fn mem(&self) -> &Mapping {
        // Some from construction until drop.
        self.mem.as_ref().expect("mapping present")
    }

    /// The grant references, page by page.
    pub fn grefs(&self) -> &[u32] {
        &self.grefs
    }

    /// The driver's index of page 0 (the mmap offset).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Unmaps and deallocates, reporting a failure that dropping would swallow.
    pub fn dealloc(mut self) -> Result<()> {
        self.release()
    }

    fn release(&mut self) -> Result<()> {
        self.mem = None;
        if self.count == 0 {
            return Ok(());
        }
        let mut op = ioctl_gntalloc_dealloc_gref {
            index: self.index,
            count: self.count,
        };
        self.count = 0;
        // SAFETY: `op` is the ioctl's whole struct.
        unsafe {
            ioctl(
                &self.dev.fd,
                "IOCTL_GNTALLOC_DEALLOC_GREF",
                IOCTL_GNTALLOC_DEALLOC_GREF,
                std::ptr::addr_of_mut!(op).cast(),
            )
        }
    }
}

impl Drop for GntAllocPages<'_> {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

/// How a hold ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldEnd {
    /// SIGTERM, SIGINT or SIGHUP arrived (its number).
    Signal(i32),
    /// The time limit passed.
    Timeout,
}

/// SIGTERM, SIGINT and SIGHUP blocked for this process, to be waited for
/// with [`StopSignals::wait`] instead of killing it: a companion script
/// ends a hold with `kill`, and the mappings are still torn down in order.
#[derive(Debug)]
pub struct StopSignals {
    set: libc::sigset_t,
}

impl StopSignals {
    /// Blocks the signals (call it before telling anyone the pid may be
    /// signalled, so none is lost).
    pub fn block() -> Result<StopSignals> {
        // SAFETY: sigset_t is plain data; sigemptyset initialises it.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid sigset_t; the signal numbers are valid.
        let r = unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::sigaddset(&mut set, libc::SIGHUP);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
        };
        if r != 0 {
            return Err(Error::Ioctl {
                what: "pthread_sigmask",
                err: io::Error::from_raw_os_error(r),
            });
        }
        Ok(StopSignals { set })
    }

    /// Waits for one of the signals, `limit` at most.
    pub fn wait(&self, limit: Duration) -> HoldEnd {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return HoldEnd::Timeout;
            }
            let ts = libc::timespec {
                tv_sec: left.as_secs() as libc::time_t,
                tv_nsec: left.subsec_nanos() as libc::c_long,
            };
            // SAFETY: `self.set` and `ts` are valid; no siginfo wanted.
            let sig = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &ts) };
            if sig > 0 {
                return HoldEnd::Signal(sig);
            }
            // EAGAIN: timed out (the loop sees the deadline); EINTR: retry.
        }
    }
}
