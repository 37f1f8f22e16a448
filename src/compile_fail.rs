//! Misuses the type system forbids, as compile-fail doctests: each one
//! compiles again (and the doctest fails) if the hole it guards reopens.
//! Each snippet names the error it must fail with, so a snippet that
//! fails for an unrelated reason (a typo, a renamed item) fails too.
//! Run with `cargo test --doc --features host-fakes`.
//!
//! # A view cannot outlive its page
//!
//! A shared page's view borrows the owner; after release it is gone:
//! ```compile_fail,E0505
//! use xenpv::grant::{fake::FakeWorld, Access, Grants};
//! use xenpv::DomId;
//! let w = FakeWorld::new();
//! let g = Grants::new(w.add_domain(DomId(1), 1, 4), 1).unwrap();
//! let shared = g.share(DomId(2), 1, Access::ReadWrite).unwrap();
//! let view = shared.page(0).unwrap();
//! drop(shared); // releases the page, which may be reused
//! let _ = view.load_u8(0);
//! ```
//! The same for a page's own view ([`SharePage::mem`](crate::grant::SharePage::mem)):
//! ```compile_fail,E0505
//! use xenpv::grant::{fake::FakeWorld, Grants, SharePage};
//! use xenpv::DomId;
//! let w = FakeWorld::new();
//! let g = Grants::new(w.add_domain(DomId(1), 1, 4), 1).unwrap();
//! let page = g.alloc_page().unwrap();
//! let mem = page.mem();
//! drop(page); // frees the frame
//! let _ = mem.load_u8(0, core::sync::atomic::Ordering::Relaxed);
//! ```
//! A granted page's view:
//! ```compile_fail,E0505
//! use xenpv::grant::{fake::FakeWorld, Access, Grants};
//! use xenpv::DomId;
//! let w = FakeWorld::new();
//! let g = Grants::new(w.add_domain(DomId(1), 1, 4), 1).unwrap();
//! let granted = g.grant(DomId(2), g.alloc_page().unwrap(), Access::ReadWrite).unwrap();
//! let view = granted.page();
//! drop(granted);
//! let _ = view.load_u8(0);
//! ```
//! A foreign mapping's view:
//! ```compile_fail,E0505
//! use xenpv::grant::{fake::FakeWorld, Access, Grants};
//! use xenpv::DomId;
//! let w = FakeWorld::new();
//! let a = Grants::new(w.add_domain(DomId(1), 1, 4), 1).unwrap();
//! let b = Grants::new(w.add_domain(DomId(2), 1, 4), 1).unwrap();
//! let shared = a.share(DomId(2), 1, Access::ReadWrite).unwrap();
//! let mapped = b.map(DomId(1), &[shared.gref(0).unwrap()], Access::ReadWrite).unwrap();
//! let view = mapped.page(0).unwrap();
//! drop(mapped); // unmaps
//! let _ = view.load_u8(0);
//! ```
//! A sub-view keeps the borrow of the whole:
//! ```compile_fail,E0505
//! use xenpv::grant::{fake::FakeWorld, Grants, SharePage};
//! use xenpv::DomId;
//! let w = FakeWorld::new();
//! let g = Grants::new(w.add_domain(DomId(1), 1, 4), 1).unwrap();
//! let page = g.alloc_page().unwrap();
//! let part = page.mem().slice(16, 16).unwrap();
//! drop(page);
//! let _ = part.load_u8(0, core::sync::atomic::Ordering::Relaxed);
//! ```
//!
//! # A reserved batch outlives its grants and stays on one thread
//!
//! A grant through a [`ReservedRefs`](crate::grant::ReservedRefs) batch
//! gives its reference back to the batch, so the batch cannot go first:
//! ```compile_fail,E0505
//! use xenpv::grant::{fake::FakeWorld, Access, Grants};
//! use xenpv::DomId;
//! let w = FakeWorld::new();
//! let g = Grants::new(w.add_domain(DomId(1), 1, 4), 1).unwrap();
//! let refs = g.reserve_refs(1).unwrap();
//! let granted = refs.grant(DomId(2), g.alloc_page().unwrap(), Access::ReadWrite).unwrap();
//! drop(refs); // would free the reference the grant still holds
//! let _ = granted.gref();
//! ```
//! The batch takes no lock, so two threads may not use it at once:
//! ```compile_fail,E0277
//! use xenpv::grant::{fake::FakeWorld, Access, Grants};
//! use xenpv::DomId;
//! let w = FakeWorld::new();
//! let g = Grants::new(w.add_domain(DomId(1), 1, 4), 1).unwrap();
//! let refs = g.reserve_refs(2).unwrap();
//! std::thread::scope(|s| {
//!     s.spawn(|| refs.grant(DomId(2), g.alloc_page().unwrap(), Access::ReadWrite).map(drop));
//!     let _ = refs.grant(DomId(2), g.alloc_page().unwrap(), Access::ReadWrite).map(drop);
//! });
//! ```
//!
//! # The backend is not reachable from safe code
//!
//! No accessor hands out a `Grants`' backend (its raw operations map at
//! any address and view any address):
//! ```compile_fail,E0599
//! use xenpv::grant::{GrantOps, Grants};
//! fn reach<B: GrantOps>(g: &Grants<B>) {
//!     g.with_ops(|ops| ops.mapped_view(0x1000));
//! }
//! ```
//! ```compile_fail,E0616
//! use xenpv::grant::{GrantOps, Grants};
//! fn reach<B: GrantOps>(g: &Grants<B>) {
//!     let _ = &g.inner;
//! }
//! ```
//! A backend makes promises the grant code relies on, so implementing one
//! takes `unsafe`:
//! ```compile_fail,E0200
//! use xenpv::grant::{GrantOps, GrantError, SharePage, TableSize};
//! struct Mine;
//! impl GrantOps for Mine {}
//! ```
//! and so does a page type (its frame is what Xen writes):
//! ```compile_fail,E0200
//! use xenpv::grant::SharePage;
//! use xenpv::shared_mem::SharedMem;
//! #[derive(Debug)]
//! struct Fake;
//! impl SharePage for Fake {
//!     fn mfn(&self) -> xenpv::Mfn { xenpv::Mfn(1) }
//!     fn mem(&self) -> SharedMem<'_> { SharedMem::empty() }
//! }
//! ```
//!
//! # Raw frames and addresses take `unsafe`
//!
//! A copy's local end is a borrowed page, not a frame number: Xen would
//! write peer bytes over whatever the frame holds.
//! ```compile_fail,E0133
//! use xenpv::grant::LocalFrame;
//! let _ = LocalFrame::from_mfn(xenpv::Mfn(1234));
//! ```
//! ```compile_fail,E0560
//! use xenpv::grant::CopyPtr;
//! let _ = CopyPtr::Frame { mfn: xenpv::Mfn(1234), offset: 0 };
//! ```
//! A frame borrowed from a page cannot outlive it:
//! ```compile_fail,E0505
//! use xenpv::grant::{fake::FakeWorld, Grants, LocalFrame};
//! use xenpv::DomId;
//! let w = FakeWorld::new();
//! let g = Grants::new(w.add_domain(DomId(1), 1, 4), 1).unwrap();
//! let page = g.alloc_page().unwrap();
//! let frame = LocalFrame::of(&page);
//! drop(page);
//! let _ = frame.mfn();
//! ```
//! An unmap notification names a held port, not a number that may be
//! closed and handed out again before it fires:
//! ```compile_fail,E0308
//! use xenpv::grant::UnmapNotify;
//! let _ = UnmapNotify { clear_byte: None, send_event: Some(xenpv::EvtchnPort(3)) };
//! ```
//! A view of arbitrary memory is `unsafe` to make:
//! ```compile_fail,E0133
//! use xenpv::shared_mem::SharedMem;
//! let _ = SharedMem::new(core::ptr::NonNull::<u8>::dangling(), 4096);
//! ```
//!
//! # Controls: the same code, used correctly, compiles
//!
//! ```
//! use xenpv::grant::{fake::FakeWorld, Access, Grants, LocalFrame, SharePage};
//! use xenpv::DomId;
//! let w = FakeWorld::new();
//! let a = Grants::new(w.add_domain(DomId(1), 1, 4), 1).unwrap();
//! let b = Grants::new(w.add_domain(DomId(2), 1, 4), 1).unwrap();
//! let shared = a.share(DomId(2), 1, Access::ReadWrite).unwrap();
//! shared.page(0).unwrap().store_u8(0, 7).unwrap();
//! let mapped = b.map(DomId(1), &[shared.gref(0).unwrap()], Access::ReadWrite).unwrap();
//! assert_eq!(mapped.page(0).unwrap().load_u8(0).unwrap(), 7);
//! drop(mapped);
//! let page = a.alloc_page().unwrap();
//! let part = page.mem().slice(16, 16).unwrap();
//! assert_eq!(part.load_u8(0, core::sync::atomic::Ordering::Relaxed).unwrap(), 0);
//! let _ = LocalFrame::of(&page).mfn();
//! // A batch moves to another thread whole, and is used there.
//! let refs = a.reserve_refs(2).unwrap();
//! std::thread::scope(|s| {
//!     s.spawn(move || {
//!         let granted = refs.grant(DomId(2), page, Access::ReadWrite).unwrap();
//!         assert!(granted.end_access().is_ok());
//!     });
//! });
//! ```
