//! The v1 grant entry protocol (grant_table.h, "GRANT TABLE
//! REPRESENTATION"): introducing an entry, ending access with one
//! compare-and-swap, read-only/writable transitions and accept-transfer
//! entries, over the table's [`SharedMem`].
//!
//! Xen writes `flags` concurrently (`GTF_reading`, `GTF_writing`, the
//! transfer bits), so an entry is never behind a Rust reference: each
//! field is one atomic access at its C offset.

use super::error::GrantError;
use crate::abi::grant_table::{
    GTF_accept_transfer, GTF_permit_access, GTF_reading, GTF_readonly, GTF_transfer_committed,
    GTF_transfer_completed, GTF_writing, GNTENT_DOMID, GNTENT_FLAGS, GNTENT_FRAME, GNTENT_SIZE,
};
use crate::shared_mem::{rmb, wmb, SharedMem};
use crate::types::{DomId, GrantRef, Mfn};
use core::sync::atomic::Ordering;

/// One step of ending access, given the flags last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndStep {
    /// The entry is now invalid; the reference may be reused.
    Done,
    /// Xen holds a mapping (`GTF_reading`/`GTF_writing`) in `flags`.
    InUse(u16),
    /// Xen changed the flags between our load and our CAS; try again
    /// from these.
    Retry(u16),
}

/// Where a transfer into an accept-transfer entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferState {
    /// Nothing was committed; the entry is now invalid.
    Cancelled,
    /// Xen committed to a transfer but has not completed it: the entry
    /// must not be touched until it has ("It is safe for the guest to
    /// spin waiting for this to occur").
    Committed,
    /// The frame arrived; the entry is now invalid.
    Completed(Mfn),
}

/// One entry of the table, found once: its life from introduction to
/// the end of access, each step on the entry's own 8 bytes.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    mem: SharedMem<'static>,
    r: GrantRef,
}

impl Entry {
    #[inline]
    fn introduce(&self, domid: DomId, frame: u32, flags: u16) -> Result<(), GrantError> {
        let (e, r) = (self.mem, self.r);
        let bad = |_| GrantError::BadRef(r);
        // "Introducing a valid entry into the grant table":
        // 1. Write ent->domid.
        e.store_u16(GNTENT_DOMID, domid.0, Ordering::Relaxed)
            .map_err(bad)?;
        // 2. Write ent->frame.
        e.store_u32(GNTENT_FRAME, frame, Ordering::Relaxed)
            .map_err(bad)?;
        // 3. Write memory barrier (WMB): Xen must not see the new flags
        //    with the old domid or frame.
        wmb();
        // 4. Write ent->flags, inc. valid type. The entry is invalid
        //    (flags 0) while it is free, and Xen never changes an invalid
        //    entry, so a plain store is enough here.
        e.store_u16(GNTENT_FLAGS, flags, Ordering::Release)
            .map_err(bad)
    }

    /// Grants `domid` access to `frame` (`GTF_permit_access`, plus
    /// `GTF_readonly` if `readonly`). The entry must be invalid (free).
    #[inline]
    pub fn grant_access(&self, domid: DomId, frame: Mfn, readonly: bool) -> Result<(), GrantError> {
        let frame32 = u32::try_from(frame.0).map_err(|_| GrantError::FrameTooLarge(frame))?;
        let ro = if readonly { GTF_readonly } else { 0 };
        self.introduce(domid, frame32, GTF_permit_access | ro)
    }

    /// One attempt at "Invalidating an unused GTF_permit_access entry",
    /// from the flags `seen`: if Xen holds no mapping, one SMP-safe
    /// CMPXCHG(flags, seen, 0).
    ///
    /// The check and the clear are one atomic step: Xen sets
    /// `GTF_reading`/`GTF_writing` with its own CMPXCHG, so either our
    /// CAS sees the bits (and fails) or Xen's sees flags 0 (and refuses
    /// the map). The 2011 driver's "query in use, then end access" as two
    /// steps left a window between them: CVE-2022-23039 (XSA-396).
    #[inline(always)]
    pub fn try_end_access_from(&self, seen: u16) -> Result<EndStep, GrantError> {
        if seen & (GTF_reading | GTF_writing) != 0 {
            return Ok(EndStep::InUse(seen));
        }
        // No WMB needed after success: "reuse of entry is
        // control-dependent on success of step 3".
        match self
            .mem
            .cas_u16(GNTENT_FLAGS, seen, 0)
            .map_err(|_| GrantError::BadRef(self.r))?
        {
            Ok(_) => Ok(EndStep::Done),
            Err(now) => Ok(EndStep::Retry(now)),
        }
    }

    /// Ends access to a `GTF_permit_access` entry, or fails with
    /// [`GrantError::InUse`] while the peer has it mapped. The loop only
    /// repeats when Xen changed the flags without leaving them in use.
    #[must_use = "the page may be reused only if access ended"]
    #[inline(always)]
    pub fn end_access(&self) -> Result<(), GrantError> {
        let r = self.r;
        let mut seen = self
            .mem
            .load_u16(GNTENT_FLAGS, Ordering::Acquire)
            .map_err(|_| GrantError::BadRef(r))?;
        loop {
            match self.try_end_access_from(seen)? {
                EndStep::Done => return Ok(()),
                EndStep::InUse(_) => return Err(GrantError::InUse(r)),
                EndStep::Retry(now) => seen = now,
            }
        }
    }
}

/// A view of a grant table as an array of v1 entries.
#[derive(Debug, Clone, Copy)]
pub struct EntryTable {
    mem: SharedMem<'static>,
}

impl EntryTable {
    /// Wraps the table's memory (a whole number of frames).
    pub fn new(mem: SharedMem<'static>) -> Self {
        EntryTable { mem }
    }

    /// Number of entries the view covers.
    pub fn capacity(&self) -> u32 {
        (self.mem.len() / GNTENT_SIZE) as u32
    }

    /// Entry `r`: one bounds and alignment check, then each field at its
    /// constant offset.
    #[inline(always)]
    pub fn at(&self, r: GrantRef) -> Result<Entry, GrantError> {
        let mem = self
            .mem
            .record(r.0 as usize * GNTENT_SIZE, GNTENT_SIZE)
            .map_err(|_| GrantError::BadRef(r))?;
        Ok(Entry { mem, r })
    }

    #[inline(always)]
    fn entry(&self, r: GrantRef) -> Result<SharedMem<'static>, GrantError> {
        Ok(self.at(r)?.mem)
    }

    /// The entry's current `flags`.
    #[inline]
    pub fn flags(&self, r: GrantRef) -> Result<u16, GrantError> {
        self.entry(r)?
            .load_u16(GNTENT_FLAGS, Ordering::Acquire)
            .map_err(|_| GrantError::BadRef(r))
    }

    /// The entry's `domid` and `frame` (diagnostics and tests).
    pub fn read(&self, r: GrantRef) -> Result<(u16, DomId, u32), GrantError> {
        let flags = self.flags(r)?;
        let e = self.entry(r)?;
        let d = e
            .load_u16(GNTENT_DOMID, Ordering::Relaxed)
            .map_err(|_| GrantError::BadRef(r))?;
        let f = e
            .load_u32(GNTENT_FRAME, Ordering::Relaxed)
            .map_err(|_| GrantError::BadRef(r))?;
        Ok((flags, DomId(d), f))
    }

    /// Grants `domid` access to `frame` in entry `r`: [`Entry::grant_access`].
    #[inline]
    pub fn grant_access(
        &self,
        r: GrantRef,
        domid: DomId,
        frame: Mfn,
        readonly: bool,
    ) -> Result<(), GrantError> {
        self.at(r)?.grant_access(domid, frame, readonly)
    }

    /// Ends access to entry `r`: [`Entry::end_access`].
    #[must_use = "the page may be reused only if access ended"]
    #[inline(always)]
    pub fn end_access(&self, r: GrantRef) -> Result<(), GrantError> {
        self.at(r)?.end_access()
    }

    /// "Changing a GTF_permit_access from writable to read-only: use
    /// SMP-safe CMPXCHG to set GTF_readonly, while checking !GTF_writing."
    pub fn make_readonly(&self, r: GrantRef) -> Result<(), GrantError> {
        let e = self.entry(r)?;
        let mut seen = self.flags(r)?;
        loop {
            if seen & GTF_writing != 0 {
                return Err(GrantError::InUse(r));
            }
            if seen & GTF_permit_access == 0 {
                return Err(GrantError::InvalidArgument);
            }
            match e
                .cas_u16(GNTENT_FLAGS, seen, seen | GTF_readonly)
                .map_err(|_| GrantError::BadRef(r))?
            {
                Ok(_) => return Ok(()),
                Err(now) => seen = now,
            }
        }
    }

    /// "Changing a GTF_permit_access from read-only to writable: use
    /// SMP-safe bit-setting instruction" (here clearing `GTF_readonly`
    /// with an atomic read-modify-write; the other bits are Xen's).
    pub fn make_writable(&self, r: GrantRef) -> Result<(), GrantError> {
        let e = self.entry(r)?;
        let mut seen = self.flags(r)?;
        loop {
            if seen & GTF_permit_access == 0 {
                return Err(GrantError::InvalidArgument);
            }
            match e
                .cas_u16(GNTENT_FLAGS, seen, seen & !GTF_readonly)
                .map_err(|_| GrantError::BadRef(r))?
            {
                Ok(_) => return Ok(()),
                Err(now) => seen = now,
            }
        }
    }

    /// Lets `domid` transfer one frame to us (`GTF_accept_transfer`).
    /// `pfn` is where the frame will go: a PV receiver's Xen enters the
    /// new frame in the M2P at the entry's `frame` before overwriting it
    /// with the mfn.
    pub fn accept_transfer(&self, r: GrantRef, domid: DomId, pfn: u64) -> Result<(), GrantError> {
        let pfn32 = u32::try_from(pfn).map_err(|_| GrantError::FrameTooLarge(Mfn(pfn)))?;
        self.at(r)?.introduce(domid, pfn32, GTF_accept_transfer)
    }

    /// One poll of an accept-transfer entry: invalidates it if nothing
    /// was committed ("Invalidating an unused GTF_accept_transfer entry",
    /// a single CMPXCHG checking !GTF_transfer_committed), reports a
    /// commitment in progress, or takes the frame once completed.
    pub fn end_transfer(&self, r: GrantRef) -> Result<TransferState, GrantError> {
        let e = self.entry(r)?;
        let mut seen = self.flags(r)?;
        loop {
            if seen & GTF_transfer_committed == 0 {
                match e
                    .cas_u16(GNTENT_FLAGS, seen, 0)
                    .map_err(|_| GrantError::BadRef(r))?
                {
                    Ok(_) => return Ok(TransferState::Cancelled),
                    Err(now) => {
                        seen = now;
                        continue;
                    }
                }
            }
            if seen & GTF_transfer_completed == 0 {
                return Ok(TransferState::Committed);
            }
            // "Xen will always write the frame address, followed by ORing
            // this flag": read the frame only after seeing the flag.
            rmb();
            let frame = e
                .load_u32(GNTENT_FRAME, Ordering::Relaxed)
                .map_err(|_| GrantError::BadRef(r))?;
            // Xen is done with a completed entry; clearing it makes the
            // free entry look like every other free entry.
            e.store_u16(GNTENT_FLAGS, 0, Ordering::Release)
                .map_err(|_| GrantError::BadRef(r))?;
            return Ok(TransferState::Completed(Mfn(frame as u64)));
        }
    }
}
