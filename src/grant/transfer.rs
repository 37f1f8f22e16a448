//! Page transfers: accept-transfer entries (`GTF_accept_transfer`, then
//! `GTF_transfer_committed` and `GTF_transfer_completed` from Xen) and
//! giving a page away with `GNTTABOP_transfer`.
//!
//! A PV guest maintains its own pfn→mfn list, so a frame changing hands
//! leaves a hole on both sides. The receiver makes room first: its landing
//! page's frame goes back to Xen, and the frame that arrives fills that
//! pfn (M2P, p2m, direct map). The sender takes its page out of its map
//! (Xen steals only an unmapped frame) and, once the frame is gone, gets
//! a new one from Xen for the pfn, which goes back to its allocator.

use super::entry::TransferState;
use super::error::{GntStatus, GrantError};
use super::ops::{GrantOps, SharePage, Vacant};
use super::table::Grants;
use crate::abi::grant_table::gnttab_transfer;
use crate::types::{DomId, GrantRef, Mfn};

/// Polls before a dropped slot gives up waiting for a committed transfer.
const DROP_SPINS: u32 = 1 << 20;

/// An accept-transfer entry waiting for a frame, with the landing page's
/// place for it.
#[derive(Debug)]
pub struct TransferSlot<'g, B: GrantOps> {
    grants: &'g Grants<B>,
    gref: GrantRef,
    /// The entry is ours to end (not yet ended or leaked).
    live: bool,
    /// Where the frame goes; `None` once refilled.
    landing: Option<B::Vacancy>,
}

/// The result of polling a [`TransferSlot`].
#[derive(Debug)]
pub enum TransferPoll<'g, B: GrantOps> {
    /// A page arrived: the sender's frame, mapped where the landing page
    /// was, with the bytes the sender left in it. The reference is free
    /// again.
    Received(B::Page),
    /// Nothing arrived yet, or Xen is committed and still writing.
    Waiting(TransferSlot<'g, B>),
}

/// How a cancelled [`TransferSlot`] ended.
#[derive(Debug)]
pub enum Cancelled<P> {
    /// Nothing arrived: the landing page back, over a new zeroed frame.
    Withdrawn(P),
    /// A page arrived before the cancel took effect.
    Received(P),
}

/// `GNTTABOP_transfer` failed.
#[derive(Debug)]
pub enum TransferError<P> {
    /// The page is still ours, and here it is: `GNTST_bad_page`, a
    /// refused argument, or a hypercall that processed nothing.
    Kept(P, GrantError),
    /// Any other failure: per the header, the page no longer belongs to
    /// us (Xen took the frame, then freed it). Its pfn got a new frame,
    /// which went back to the allocator.
    Lost(GrantError),
}

impl<'g, B: GrantOps> TransferSlot<'g, B> {
    pub(crate) fn new(grants: &'g Grants<B>, gref: GrantRef, landing: B::Vacancy) -> Self {
        TransferSlot {
            grants,
            gref,
            live: true,
            landing: Some(landing),
        }
    }

    /// The reference to pass to the sender.
    pub fn gref(&self) -> GrantRef {
        self.gref
    }

    fn state(&self) -> Result<TransferState, GrantError> {
        self.grants
            .inner
            .lock()
            .table
            .entries
            .end_transfer(self.gref)
    }

    /// The entry has ended (cancelled or completed): its reference is
    /// free again.
    fn ended(&mut self) {
        self.live = false;
        let _ = self.grants.inner.lock().table.refs.free(self.gref);
    }

    /// Maps what arrived (or, with `None`, a new frame) at the landing
    /// page's place. On failure the slot keeps the vacancy, and dropping
    /// the slot tries again.
    fn land(&mut self, arrived: Option<Mfn>) -> Result<B::Page, GrantError> {
        let v = self.landing.take().ok_or(GrantError::InvalidArgument)?;
        match self.grants.inner.lock().table.ops.refill(v, arrived) {
            Ok(page) => Ok(page),
            Err((v, e)) => {
                // A frame that arrived is ours already: keep it with the
                // vacancy rather than lose it.
                self.landing = Some(v);
                Err(e)
            }
        }
    }

    /// Takes the page if it has arrived. Never cancels.
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
                let page = self.land(Some(mfn))?;
                self.ended();
                Ok(TransferPoll::Received(page))
            }
            // Flags seen completed: the other states cannot follow.
            _ => Ok(TransferPoll::Waiting(self)),
        }
    }

    /// Withdraws the offer. If Xen has committed to a transfer, the
    /// entry must be left alone until it completes: the slot comes back.
    pub fn cancel(mut self) -> Result<Cancelled<B::Page>, (Self, GrantError)> {
        match self.state() {
            // The reference is freed only once the landing place is
            // refilled: a slot handed back by a failed refill keeps it, so
            // it cannot go to another offer while this slot still polls it.
            Ok(TransferState::Cancelled) => match self.land(None) {
                Ok(p) => {
                    self.ended();
                    Ok(Cancelled::Withdrawn(p))
                }
                Err(e) => Err((self, e)),
            },
            Ok(TransferState::Completed(mfn)) => match self.land(Some(mfn)) {
                Ok(p) => {
                    self.ended();
                    Ok(Cancelled::Received(p))
                }
                Err(e) => Err((self, e)),
            },
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
        if self.live {
            // "It is safe for the guest to spin waiting" for a committed
            // transfer to complete. Should Xen never complete it, the
            // reference and the landing place are leaked rather than
            // reused under Xen's feet.
            let mut arrived = None;
            let mut spins = 0;
            loop {
                match self.state() {
                    Ok(TransferState::Cancelled) => break,
                    Ok(TransferState::Completed(mfn)) => {
                        arrived = Some(mfn);
                        break;
                    }
                    Ok(TransferState::Committed) if spins < DROP_SPINS => {
                        spins += 1;
                        core::hint::spin_loop();
                    }
                    _ => {
                        if let Some(v) = self.landing.take() {
                            core::mem::forget(v);
                        }
                        return;
                    }
                }
            }
            self.ended();
            // Nobody takes the page: it goes back to the allocator.
            let _ = self.land(arrived);
        } else if self.landing.is_some() {
            // An earlier refill failed: one more try, then the vacancy's
            // own drop (which refills or leaks it).
            let _ = self.land(None);
        }
    }
}

impl<B: GrantOps> Grants<B> {
    /// Gives `page` to `domid`, filling its accept-transfer entry `gref`
    /// (`GNTTABOP_transfer`). The page leaves our memory map first (Xen
    /// steals only a frame nothing maps); once its frame is gone, its
    /// pfn gets a new frame from Xen and goes back to the allocator.
    pub fn transfer(
        &self,
        page: B::Page,
        domid: DomId,
        gref: GrantRef,
    ) -> Result<(), TransferError<B::Page>> {
        if !domid.is_real() {
            return Err(TransferError::Kept(page, GrantError::BadDomain(domid)));
        }
        let mut g = self.inner.lock();
        let mfn = page.mfn();
        let mut v = match g.table.ops.vacate(page, false) {
            Ok(v) => v,
            Err((page, e)) => return Err(TransferError::Kept(page, e)),
        };
        let mut op = [gnttab_transfer {
            mfn: mfn.0,
            domid: domid.0,
            ref_: gref.0,
            status: 1,
        }];
        let res = g.table.ops.transfer(&mut op);
        let kept = match (res, GntStatus::check(op[0].status)) {
            (Ok(()), Ok(())) => None,
            (Ok(()), Err(GntStatus::BadPage)) => Some(GntStatus::BadPage.into()),
            // The hypercall failed before processing the op: still ours.
            (Err(e), _) if op[0].status == 1 => Some(e.into()),
            (Err(e), _) => {
                v.frame_gone();
                return lost(&mut g.table.ops, v, GrantError::Hypercall(e));
            }
            (Ok(()), Err(s)) => {
                v.frame_gone();
                return lost(&mut g.table.ops, v, GrantError::Status(s));
            }
        };
        match kept {
            None => {
                v.frame_gone();
                // The pfn gets a new frame and goes back to the allocator;
                // should that fail, the vacancy's drop tries again.
                let _ = g.table.ops.refill(v, None);
                Ok(())
            }
            Some(e) => match g.table.ops.refill(v, None) {
                Ok(page) => Err(TransferError::Kept(page, e)),
                Err((_, e2)) => Err(TransferError::Lost(e2)),
            },
        }
    }
}

/// The frame is gone with a failed transfer: refill the pfn for the
/// allocator, and report the failure.
fn lost<B: GrantOps>(
    ops: &mut B,
    v: B::Vacancy,
    e: GrantError,
) -> Result<(), TransferError<B::Page>> {
    let _ = ops.refill(v, None);
    Err(TransferError::Lost(e))
}
