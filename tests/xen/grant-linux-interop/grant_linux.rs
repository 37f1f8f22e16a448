//! Grant interop with Linux (issue 4, test e): the guest's peer is dom0's
//! Linux, driven by `gnt-interop` (`tests/dom0-tools`) from the companion
//! `grant_linux.dom0.sh`; `cargo xtask run grant_linux`.
//!
//! 1. gntdev: the guest shares two pages (`Grants::share`) and grants one
//!    more (`Grants::grant`) writable to dom0, fills them with a pattern and
//!    publishes the references in `data/grefs`. dom0 maps all three through
//!    `/dev/xen/gntdev`, checks the pattern, writes a reply into each page
//!    and arms `UNMAP_NOTIFY_CLEAR_BYTE` on the last byte of the third.
//!    While dom0 maps them, ending access is refused and released pages
//!    stay pending; once dom0 unmaps (the notify byte drops to 0), access
//!    ends and nothing is left pending.
//! 2. gntalloc: dom0 shares three pages with the guest through
//!    `/dev/xen/gntalloc` and relays their references to `data/alloc_grefs`;
//!    the guest maps them, checks dom0's pattern, writes a reply that dom0
//!    checks, and unmaps.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use alloc::{format, vec};
use core::time::Duration;
use xenpv::grant::{Access, GrantError, PageView};
use xenpv::mm::{MemError, Page};
use xenpv::xenstore::{Client, Transport, XsError};
use xenpv::{println, DomId, GrantRef};

xenpv::main!(main);

#[derive(Debug)]
#[allow(dead_code)] // read through Debug when main fails
enum Error {
    Grant(GrantError),
    Xs(XsError),
    Mem(MemError),
    Timeout(&'static str),
    Check(&'static str),
    Pattern { page: usize, offset: usize },
}

impl From<GrantError> for Error {
    fn from(e: GrantError) -> Self {
        Error::Grant(e)
    }
}
impl From<XsError> for Error {
    fn from(e: XsError) -> Self {
        Error::Xs(e)
    }
}
impl From<MemError> for Error {
    fn from(e: MemError) -> Self {
        Error::Mem(e)
    }
}

const PAGE: usize = 4096;
/// Seeds of the pattern: the guest's pages, and dom0's gntalloc pages.
const GUEST_SEED: u8 = 0x5a;
const DOM0_SEED: u8 = 0xa5;
/// What dom0 writes at offset 0 of each page it maps (the companion's `--reply`).
const DOM0_REPLY: &[u8] = b"hello xenpv from dom0 gntdev";
/// What the guest writes into dom0's first gntalloc page (the companion's `--expect-reply`).
const GUEST_REPLY: &[u8] = b"xenpv read 3 gntalloc pages";
/// The byte dom0's gntdev clears at unmap: the last one of page 2.
const NOTIFY_OFFSET: usize = PAGE - 1;
/// `GTF_reading | GTF_writing`: Xen's "mapped by the peer" bits.
const GTF_IN_USE: u16 = 0x18;
const DOM0: DomId = DomId(0);

/// The pattern byte at position `i` of a run of pages: the function dom0's
/// tool uses too (one copy, in the support crate).
use xenpv_test_support::pattern::byte as pattern;

fn fill_pattern(view: PageView<'_>, page: usize, seed: u8) -> Result<(), Error> {
    let buf: Vec<u8> = (0..PAGE).map(|o| pattern(seed, page * PAGE + o)).collect();
    Ok(view.write(0, &buf)?)
}

/// Checks the pattern of page `page` over `range`.
fn check_pattern(view: PageView<'_>, page: usize, seed: u8, range: core::ops::Range<usize>) -> Result<(), Error> {
    let mut buf = vec![0u8; PAGE];
    view.read(0, &mut buf)?;
    match range.clone().find(|&o| buf[o] != pattern(seed, page * PAGE + o)) {
        Some(offset) => Err(Error::Pattern { page, offset }),
        None => Ok(()),
    }
}

fn main(xen: xenpv::Xen) -> Result<(), Error> {
    let store = xen.store()?;
    let mut xs = store.lock();
    let me = xs.read_string("domid")?;
    let g = xen.grants()?;

    // 1. dom0 maps our grants through gntdev.
    let mut shared = g.share(DOM0, 2, Access::ReadWrite)?;
    let granted = g.grant(DOM0, Page::alloc()?, Access::ReadWrite).map_err(|e| e.1)?;
    let views = [shared.page(0).ok_or(Error::Check("page 0"))?, shared.page(1).ok_or(Error::Check("page 1"))?, granted.page()];
    for (i, v) in views.iter().enumerate() {
        fill_pattern(*v, i, GUEST_SEED)?;
    }
    let refs: Vec<GrantRef> = shared.refs().chain([granted.gref()]).collect();
    let list: Vec<String> = refs.iter().map(|r| format!("{}", r.0)).collect();
    xs.write("data/grefs", list.join(" ").as_bytes())?;
    println!("grant_linux: dom{me} shares grefs {} with dom0", list.join(" "));

    wait_key(&mut xs, "data/gntdev_mapped")?;
    let flags: Vec<u16> = refs.iter().map(|&r| g.entry_flags(r)).collect::<Result<_, _>>()?;
    let shown: Vec<String> = flags.iter().map(|f| format!("{f:#x}")).collect();
    println!("grant_linux: (e) dom0 maps them through gntdev; entry flags {}", shown.join(" "));
    if flags.iter().any(|f| f & GTF_IN_USE == 0) {
        return Err(Error::Check("an entry dom0 maps has no GTF_reading/GTF_writing"));
    }
    let mut reply = [0u8; DOM0_REPLY.len()];
    for (i, v) in views.iter().enumerate() {
        v.read(0, &mut reply)?;
        if reply != *DOM0_REPLY {
            println!("grant_linux: page {i} says {:?}", core::str::from_utf8(&reply));
            return Err(Error::Check("dom0's reply"));
        }
        let end = if i == 2 { NOTIFY_OFFSET } else { PAGE };
        check_pattern(*v, i, GUEST_SEED, DOM0_REPLY.len()..end)?;
    }
    if views[2].load_u8(NOTIFY_OFFSET)? != 1 {
        return Err(Error::Check("dom0's notify byte is not set"));
    }
    println!("grant_linux: (e) dom0's gntdev write seen in all 3 pages: {:?}", core::str::from_utf8(&reply));

    let (granted, e) = match granted.end_access() {
        Ok(_) => return Err(Error::Check("end access worked while dom0 maps the page")),
        Err(refused) => refused,
    };
    if e != GrantError::InUse(refs[2]) {
        return Err(e.into());
    }
    println!("grant_linux: (e) end_access while dom0 maps: refused ({e:?})");
    let released = shared.release(shared.index(), 2)?;
    println!("grant_linux: (e) release of the shared pages while mapped: {released:?}");
    if released.pending != 2 || g.stats().pending != 2 {
        return Err(Error::Check("released pages dom0 maps should be pending"));
    }
    xs.write("data/end_refused", b"yes")?;

    // dom0 unmaps: gntdev clears the notify byte, then Xen the entry flags.
    let deadline = xenpv::time::now_ns() + 60_000_000_000;
    loop {
        let byte = granted.page().load_u8(NOTIFY_OFFSET)?;
        let busy = refs.iter().map(|&r| g.entry_flags(r)).collect::<Result<Vec<_>, _>>()?;
        if byte == 0 && busy.iter().all(|f| f & GTF_IN_USE == 0) {
            break;
        }
        if xenpv::time::now_ns() > deadline {
            return Err(Error::Timeout("dom0's unmap"));
        }
        xenpv::sleep(Duration::from_millis(20));
    }
    println!("grant_linux: (e) dom0 unmapped: notify byte cleared by gntdev, entries idle");
    let page = granted.end_access().map_err(|e| e.1)?;
    drop(page);
    let left = g.reclaim();
    println!("grant_linux: (e) end_access after the unmap: ok; pending after reclaim: {left}");
    if left != 0 {
        return Err(Error::Check("pages still pending after dom0's unmap"));
    }
    drop(shared);

    // 2. dom0 shares pages with us through gntalloc.
    let list = wait_key(&mut xs, "data/alloc_grefs")?;
    let arefs = list
        .split_whitespace()
        .map(|s| s.parse().map(GrantRef).map_err(|_| Error::Check("alloc_grefs")))
        .collect::<Result<Vec<_>, _>>()?;
    if arefs.is_empty() || arefs.len() > 16 {
        return Err(Error::Check("alloc_grefs: 1 to 16 references"));
    }
    let m = g.map(DOM0, &arefs, Access::ReadWrite)?;
    for i in 0..m.len() {
        check_pattern(m.page(i).ok_or(Error::Check("mapped page"))?, i, DOM0_SEED, 0..PAGE)?;
    }
    println!("grant_linux: (e) mapped dom0's gntalloc grefs {list} at {:#x}: pattern ok in {} pages", m.va(), m.len());
    m.page(0).ok_or(Error::Check("mapped page"))?.write(0, GUEST_REPLY)?;
    m.unmap()?;
    xs.write("data/alloc_checked", b"ok")?;
    let verdict = wait_key(&mut xs, "data/alloc_result")?;
    println!("grant_linux: (e) dom0 on our reply in its gntalloc page: {verdict}");
    if verdict != "ok" {
        return Err(Error::Check("dom0 did not see our reply"));
    }
    let st = g.stats();
    println!("grant_linux: refs in use {}, pending {}", st.refs_used, st.pending);
    println!("grant_linux: PASS");
    Ok(())
}

fn wait_key<T: Transport>(xs: &mut Client<T>, key: &str) -> Result<String, Error> {
    let deadline = xenpv::time::now_ns() + 60_000_000_000;
    loop {
        match xs.read_string(key) {
            Ok(v) => return Ok(v),
            Err(XsError::Errno(_)) if xenpv::time::now_ns() < deadline => xenpv::sleep(Duration::from_millis(50)),
            Err(XsError::Errno(_)) => return Err(Error::Timeout("xenstore key")),
            Err(e) => return Err(e.into()),
        }
    }
}
