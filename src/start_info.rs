//! `start_info`: what Xen tells a PV guest at boot (public/xen.h, "Start-of-day memory layout").
//!
//! [`BootInfo`] is a plain copy of the fields xenpv uses, parsed from the
//! raw page so the parsing is testable on the host.

// ABI parsing of Xen's start_info, whose console field is a C union.
#![allow(unsafe_code)]

use crate::abi::{self, start_info};
use crate::types::{EvtchnPort, Mfn};

/// Why a `start_info` page was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartInfoError {
    /// The magic string does not start with `xen-3.0-x86_64`.
    BadMagic,
    /// `nr_pages` is zero or larger than the 2 GiB that fit the direct map.
    BadPageCount(u64),
    /// `pt_base` lies below the image's virtual base.
    BadPageTableBase(u64),
}

/// The fields of `start_info` xenpv uses, copied out of the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootInfo {
    /// Total pages allocated to this domain.
    pub nr_pages: u64,
    /// Machine address of the `shared_info` page.
    pub shared_info_maddr: u64,
    /// `SIF_*` flags.
    pub flags: u32,
    /// Machine frame of the xenstore ring page.
    pub store_mfn: Mfn,
    /// Event channel of the xenstore ring.
    pub store_evtchn: EvtchnPort,
    /// Machine frame of the console ring page (domU only).
    pub console_mfn: Mfn,
    /// Event channel of the console ring (domU only).
    pub console_evtchn: EvtchnPort,
    /// Virtual address of the initial L4 page table.
    pub pt_base: u64,
    /// Number of bootstrap page-table frames.
    pub nr_pt_frames: u64,
    /// Virtual address of the pfn→mfn list (one `u64` per pfn).
    pub mfn_list: u64,
    /// Guest command line (NUL-terminated in the page; up to 1024 bytes).
    pub cmd_line: [u8; 1024],
}

/// Largest domain the direct map covers: it lives in the top 2 GiB of the
/// address space next to the image (see linker.ld).
pub const MAX_PAGES: u64 = (2 << 30) / abi::PAGE_SIZE as u64 - 1024;

impl BootInfo {
    /// Parses a `start_info` page.
    pub fn parse(raw: &start_info, virt_base: u64) -> Result<Self, StartInfoError> {
        let magic: [u8; 32] = raw.magic.map(|c| c as u8);
        if !magic.starts_with(b"xen-3.0-x86_64") {
            return Err(StartInfoError::BadMagic);
        }
        if raw.nr_pages == 0 || raw.nr_pages > MAX_PAGES {
            return Err(StartInfoError::BadPageCount(raw.nr_pages));
        }
        if raw.pt_base < virt_base {
            return Err(StartInfoError::BadPageTableBase(raw.pt_base));
        }
        let init_domain = raw.flags & abi::SIF_INITDOMAIN != 0;
        // SAFETY: both union variants are plain integers; which one is
        // meaningful depends on SIF_INITDOMAIN, checked here.
        let (console_mfn, console_evtchn) = if init_domain {
            (0, 0)
        } else {
            // SAFETY: see above: a domU's console field is the domU variant.
            let c = unsafe { raw.console.domU };
            (c.mfn, c.evtchn)
        };
        Ok(BootInfo {
            nr_pages: raw.nr_pages,
            shared_info_maddr: raw.shared_info,
            flags: raw.flags,
            store_mfn: Mfn(raw.store_mfn),
            store_evtchn: EvtchnPort(raw.store_evtchn),
            console_mfn: Mfn(console_mfn),
            console_evtchn: EvtchnPort(console_evtchn),
            pt_base: raw.pt_base,
            nr_pt_frames: raw.nr_pt_frames,
            mfn_list: raw.mfn_list,
            cmd_line: raw.cmd_line.map(|c| c as u8),
        })
    }

    /// Whether this is the initial domain (dom0), which has no console ring
    /// and prints through `console_io`.
    pub fn is_initial_domain(&self) -> bool {
        self.flags & abi::SIF_INITDOMAIN != 0
    }

    /// The first pfn after the bootstrap page tables: every pfn from here
    /// to `nr_pages` is free for the guest (public/xen.h layout: image,
    /// modules, p2m list, start_info, page tables, then free space).
    pub fn first_free_pfn(&self, virt_base: u64) -> u64 {
        (self.pt_base - virt_base) / abi::PAGE_SIZE as u64 + self.nr_pt_frames
    }

    /// The value of `key=value` on the command line (xl's `extra=`), if any.
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.cmd_line()?
            .split_ascii_whitespace()
            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
    }

    /// The command line up to its first NUL, if it is UTF-8.
    pub fn cmd_line(&self) -> Option<&str> {
        let len = self
            .cmd_line
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.cmd_line.len());
        core::str::from_utf8(&self.cmd_line[..len]).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0xFFFF_FFFF_8000_0000;

    fn sample() -> start_info {
        // SAFETY: start_info is plain integers and arrays; all-zero is valid.
        let mut si: start_info = unsafe { core::mem::zeroed() };
        for (d, s) in si.magic.iter_mut().zip(b"xen-3.0-x86_64\0") {
            *d = *s as _;
        }
        si.nr_pages = 2048;
        si.shared_info = 0x1234_5000;
        si.store_mfn = 0x777;
        si.store_evtchn = 1;
        si.console.domU.mfn = 0x778;
        si.console.domU.evtchn = 2;
        si.pt_base = BASE + 0x40_0000;
        si.nr_pt_frames = 6;
        si.mfn_list = BASE + 0x20_0000;
        for (d, s) in si.cmd_line.iter_mut().zip(b"verbose=1\0") {
            *d = *s as _;
        }
        si
    }

    #[test]
    fn parses_a_domu_start_info() {
        let info = BootInfo::parse(&sample(), BASE).unwrap();
        assert_eq!(info.nr_pages, 2048);
        assert_eq!(info.store_mfn, Mfn(0x777));
        assert_eq!(info.store_evtchn, EvtchnPort(1));
        assert_eq!(info.console_mfn, Mfn(0x778));
        assert_eq!(info.console_evtchn, EvtchnPort(2));
        assert!(!info.is_initial_domain());
        assert_eq!(info.first_free_pfn(BASE), 0x400 + 6);
        assert_eq!(info.cmd_line(), Some("verbose=1"));
        assert_eq!(info.arg("verbose"), Some("1"));
        assert_eq!(info.arg("verb"), None);
        assert_eq!(info.arg("quiet"), None);
    }

    #[test]
    fn dom0_has_no_console_ring() {
        let mut si = sample();
        si.flags = abi::SIF_INITDOMAIN | abi::SIF_PRIVILEGED;
        let info = BootInfo::parse(&si, BASE).unwrap();
        assert!(info.is_initial_domain());
        assert_eq!(info.console_mfn, Mfn(0));
    }

    #[test]
    fn rejects_bad_magic_page_count_and_pt_base() {
        let mut si = sample();
        si.magic[4] = b'4' as _;
        assert_eq!(BootInfo::parse(&si, BASE), Err(StartInfoError::BadMagic));
        let mut si = sample();
        si.nr_pages = 0;
        assert_eq!(
            BootInfo::parse(&si, BASE),
            Err(StartInfoError::BadPageCount(0))
        );
        si.nr_pages = MAX_PAGES + 1;
        assert_eq!(
            BootInfo::parse(&si, BASE),
            Err(StartInfoError::BadPageCount(MAX_PAGES + 1))
        );
        let mut si = sample();
        si.pt_base = 0x1000;
        assert_eq!(
            BootInfo::parse(&si, BASE),
            Err(StartInfoError::BadPageTableBase(0x1000))
        );
    }

    #[test]
    fn command_line_without_nul_or_utf8() {
        let mut si = sample();
        si.cmd_line = [b'a' as _; 1024];
        let info = BootInfo::parse(&si, BASE).unwrap();
        assert_eq!(info.cmd_line().map(str::len), Some(1024));
        si.cmd_line[0] = 0xff_u8 as _;
        let info = BootInfo::parse(&si, BASE).unwrap();
        assert_eq!(info.cmd_line(), None);
    }
}

#[cfg(target_os = "none")]
static BOOT_INFO: spin::Once<BootInfo> = spin::Once::new();

/// What Xen told us at boot.
#[cfg(target_os = "none")]
pub fn boot_info() -> &'static BootInfo {
    BOOT_INFO.get().expect("boot_info() before boot")
}

/// Keeps what Xen told us (once, by the boot sequence).
#[cfg(target_os = "none")]
pub(crate) fn set_boot_info(info: BootInfo) -> &'static BootInfo {
    BOOT_INFO.call_once(|| info)
}
