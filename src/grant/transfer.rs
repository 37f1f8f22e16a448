//! Page transfers: accept-transfer entries (`GTF_accept_transfer`, then
//! `GTF_transfer_committed` and `GTF_transfer_completed` from Xen) and
//! giving a page away with `GNTTABOP_transfer`.
//!
//! A received frame arrives as a bare machine frame: in PV the receiver
//! must still enter it in its p2m and M2P before using it as memory,
//! which is the caller's business.

use super::entry::TransferState;
use super::ops::{GrantOps, SharePage};
use super::table::Grants;
use super::{GntStatus, GrantError};
use crate::abi::grant_table::gnttab_transfer;
use crate::types::{DomId, GrantRef, Mfn};

/// Polls before a dropped slot gives up waiting for a committed transfer.
const DROP_SPINS: u32 = 1 << 20;

/// An accept-transfer entry waiting for a frame.
#[derive(Debug)]
pub struct TransferSlot<'g, B: GrantOps> {
    grants: &'g Grants<B>,
    gref: GrantRef,
    done: bool,
}

/// The result of polling a [`TransferSlot`].
#[derive(Debug)]
pub enum TransferPoll<'g, B: GrantOps> {
    /// A frame arrived; the reference is free again.
    Received(Mfn),
    /// Nothing arrived yet, or Xen is committed and still writing.
    Waiting(TransferSlot<'g, B>),
}

/// `GNTTABOP_transfer` failed.
#[derive(Debug)]
pub enum TransferError<P> {
    /// The page is still ours, and here it is: `GNTST_bad_page`, a
    /// refused argument, or a hypercall that processed nothing.
    Kept(P, GrantError),
    /// Any other failure: per the header, the page no longer belongs to
    /// us, so it was forgotten (not freed).
    Lost(GrantError),
}

impl<'g, B: GrantOps> TransferSlot<'g, B> {
    pub(crate) fn new(grants: &'g Grants<B>, gref: GrantRef) -> Self {
        TransferSlot { grants, gref, done: false }
    }

    /// The reference to pass to the sender.
    pub fn gref(&self) -> GrantRef {
        self.gref
    }

    fn state(&self) -> Result<TransferState, GrantError> {
        self.grants.inner.lock().table.entries.end_transfer(self.gref)
    }

    fn free(&mut self) {
        self.done = true;
        let _ = self.grants.inner.lock().table.refs.free(self.gref);
    }

    /// Takes the frame if it has arrived. Never cancels.
    pub fn poll(mut self) -> Result<TransferPoll<'g, B>, GrantError> {
        let g = self.grants.inner.lock();
        let flags = g.table.entries.flags(self.gref)?;
        drop(g);
        use crate::abi::grant_table::{GTF_transfer_committed, GTF_transfer_completed};
        let both = GTF_transfer_committed | GTF_transfer_completed;
        if flags & both != both {
            return Ok(TransferPoll::Waiting(self));
        }
        match self.state()? {
            TransferState::Completed(mfn) => {
                self.free();
                Ok(TransferPoll::Received(mfn))
            }
            // Flags seen completed: the other states cannot follow.
            _ => Ok(TransferPoll::Waiting(self)),
        }
    }

    /// Withdraws the offer. If Xen has committed to a transfer, the
    /// entry must be left alone until it completes: the slot comes back.
    pub fn cancel(mut self) -> Result<Option<Mfn>, (Self, GrantError)> {
        match self.state() {
            Ok(TransferState::Cancelled) => {
                self.free();
                Ok(None)
            }
            Ok(TransferState::Completed(mfn)) => {
                self.free();
                Ok(Some(mfn))
            }
            Ok(TransferState::Committed) => {
                let r = self.gref;
                Err((self, GrantError::InUse(r)))
            }
            Err(e) => Err((self, e)),
        }
    }
}

impl<B: GrantOps> Drop for TransferSlot<'_, B> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // "It is safe for the guest to spin waiting" for a committed
        // transfer to complete. Should Xen never complete it, the
        // reference is leaked rather than reused under Xen's feet.
        for _ in 0..DROP_SPINS {
            match self.state() {
                Ok(TransferState::Cancelled) => {
                    self.free();
                    return;
                }
                Ok(TransferState::Completed(mfn)) => {
                    self.free();
                    // Nobody can take the frame any more: back to the
                    // allocator rather than lost. A drop cannot report a
                    // refusal; the frame then stays lost, as before.
                    let _ = self.grants.inner.lock().table.ops.free_frame(mfn);
                    return;
                }
                Ok(TransferState::Committed) => core::hint::spin_loop(),
                Err(_) => return,
            }
        }
    }
}

impl<B: GrantOps> Grants<B> {
    /// Gives `page` to `domid`, filling its accept-transfer entry `gref`
    /// (`GNTTABOP_transfer`). A PV guest can only give away a page no
    /// mapping of it refers to; xenpv's pages are in the direct map, so
    /// under Xen this fails with `GNTST_bad_page` and the page comes back
    /// ([`TransferError::Kept`]).
    pub fn transfer(&self, page: B::Page, domid: DomId, gref: GrantRef) -> Result<(), TransferError<B::Page>> {
        if !domid.is_real() {
            return Err(TransferError::Kept(page, GrantError::BadDomain(domid)));
        }
        let mut g = self.inner.lock();
        let mut op = [gnttab_transfer { mfn: page.mfn().0, domid: domid.0, ref_: gref.0, status: 1 }];
        let res = g.table.ops.transfer(&mut op);
        match (res, GntStatus::check(op[0].status)) {
            (Ok(()), Ok(())) => {
                g.table.ops.forget_page(page);
                Ok(())
            }
            (Ok(()), Err(GntStatus::BadPage)) => Err(TransferError::Kept(page, GntStatus::BadPage.into())),
            // The hypercall failed before processing the op: still ours.
            (Err(e), _) if op[0].status == 1 => Err(TransferError::Kept(page, e.into())),
            (Err(e), _) => {
                g.table.ops.forget_page(page);
                Err(TransferError::Lost(GrantError::Hypercall(e)))
            }
            (Ok(()), Err(s)) => {
                g.table.ops.forget_page(page);
                Err(TransferError::Lost(GrantError::Status(s)))
            }
        }
    }
}
