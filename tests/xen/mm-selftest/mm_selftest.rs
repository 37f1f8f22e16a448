//! In-guest test of the memory layer under real Xen: the frame allocator,
//! mapping a frame at a second address, unmapping, and the heap.
//! Prints `mm_selftest: PASS` and powers off, or panics (crash).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use xenpv::mm::{self, Page};
use xenpv::println;

xenpv::main!(main);

fn main() {
    let boot = mm::stats();
    println!("mm_selftest: {boot:?}");
    assert!(boot.free_frames > 0 && boot.heap_size > 0);
    // The first round also builds the map area's page tables and sizes
    // the address-space free list: both stay. The second round must then
    // give back exactly what it took.
    alias_round();
    let before = mm::stats();
    alias_round();
    churn();
    let after = mm::stats();
    assert_eq!(before.free_frames, after.free_frames, "frames leaked");
    assert_eq!(before.heap_free, after.heap_free, "heap leaked");
    assert_eq!(before.free_map_pages, after.free_map_pages, "address space leaked");
    println!("mm_selftest: {after:?}");
    println!("mm_selftest: PASS");
}

fn alias_round() {
    {
        // Two mappings of one frame: the direct map and a map-area page.
        let page = Page::alloc().expect("alloc page");
        assert_eq!(mm::mfn_to_pfn(page.mfn()), Some(page.pfn()), "M2P and P2M agree");
        assert_eq!(mm::virt_to_mfn(page.virt()), Some(page.mfn()));
        let va = mm::reserve_map_area(1).expect("reserve");
        assert!(mm::lookup(va).is_none(), "fresh map area is unmapped");
        // SAFETY: the frame is our own and nothing uses `va` yet.
        unsafe { mm::map_frames(va, &[page.mfn()], true) }.expect("map");
        assert!(mm::lookup(va).is_some());
        page.shared().store_u32(128, 0xfeed_f00d, Ordering::SeqCst).unwrap();
        // SAFETY: `va` maps our own frame for the duration of this block.
        let alias = unsafe { xenpv::shared_mem::SharedMem::new(core::ptr::NonNull::new(va as *mut u8).unwrap(), 4096) };
        assert_eq!(alias.load_u32(128, Ordering::SeqCst).unwrap(), 0xfeed_f00d);
        alias.store_u32(256, 0x1234_5678, Ordering::SeqCst).unwrap();
        assert_eq!(page.shared().load_u32(256, Ordering::SeqCst).unwrap(), 0x1234_5678);
        // SAFETY: `alias` is not used after this point.
        unsafe { mm::unmap_pages(va, 1) }.expect("unmap");
        assert!(mm::lookup(va).is_none());
        // SAFETY: unmapped above, and nothing refers to it any more.
        unsafe { mm::release_map_area(va, 1) }.expect("release");
        println!("mm_selftest: aliasing map/unmap ok (mfn {:?})", page.mfn());
    }
}

fn churn() {
    // Exhaust and refill: every frame comes back.
    let mut pages = Vec::new();
    while let Ok(p) = Page::alloc() {
        pages.push(p);
        if pages.len() >= 4096 {
            break;
        }
    }
    let taken = pages.len();
    drop(pages);
    println!("mm_selftest: allocated and freed {taken} pages");

    // The heap.
    let v: Vec<u64> = (0..100_000).collect();
    assert_eq!(v.iter().sum::<u64>(), 4_999_950_000);
    drop(v);

}
