//! `GNTTABOP_copy` (hypervisor-side copies between frames and grants,
//! with a status per op) and `GNTTABOP_dump_table`.

use super::error::{GntStatus, GrantError};
use super::ops::GrantOps;
use super::ops::LocalFrame;
use super::table::Grants;
use crate::abi::grant_table::{
    gnttab_copy, gnttab_copy_ptr, GNTCOPY_dest_gref, GNTCOPY_source_gref,
};
use crate::abi::PAGE_SIZE;
use crate::types::{DomId, GrantRef};

/// Ops per hypercall: the batch lives on the stack, so copying makes no
/// heap allocation.
const BATCH: usize = 16;

/// One end of a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyPtr<'a> {
    /// A grant of `domid` (which must grant us access), at `offset`.
    Gref {
        /// The granting domain.
        domid: DomId,
        /// Its reference.
        gref: GrantRef,
        /// Byte offset in the page.
        offset: u16,
    },
    /// One of our own pages, borrowed for the copy, at `offset`. Only a
    /// page we own can be named: Xen writes it when it is a destination.
    Frame {
        /// The frame, borrowed from its page.
        frame: LocalFrame<'a>,
        /// Byte offset in the page.
        offset: u16,
    },
}

/// One copy of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyOp<'a> {
    /// Where from.
    pub source: CopyPtr<'a>,
    /// Where to.
    pub dest: CopyPtr<'a>,
    /// How many bytes.
    pub len: u16,
}

impl CopyPtr<'_> {
    fn raw(self) -> (gnttab_copy_ptr, bool) {
        match self {
            CopyPtr::Gref {
                domid,
                gref,
                offset,
            } => (
                gnttab_copy_ptr {
                    u: gref.0 as u64,
                    domid: domid.0,
                    offset,
                },
                true,
            ),
            CopyPtr::Frame { frame, offset } => (
                gnttab_copy_ptr {
                    u: frame.mfn().0,
                    domid: DomId::SELF.0,
                    offset,
                },
                false,
            ),
        }
    }

    fn offset(self) -> u16 {
        match self {
            CopyPtr::Gref { offset, .. } | CopyPtr::Frame { offset, .. } => offset,
        }
    }
}

impl CopyOp<'_> {
    fn raw(&self) -> gnttab_copy {
        let (source, sg) = self.source.raw();
        let (dest, dg) = self.dest.raw();
        let flags =
            if sg { GNTCOPY_source_gref } else { 0 } | if dg { GNTCOPY_dest_gref } else { 0 };
        gnttab_copy {
            source,
            dest,
            len: self.len,
            flags,
            status: 0,
        }
    }

    fn crosses_page(&self) -> bool {
        let end = |p: CopyPtr| p.offset() as usize + self.len as usize;
        end(self.source) > PAGE_SIZE || end(self.dest) > PAGE_SIZE
    }
}

impl<B: GrantOps> Grants<B> {
    /// Runs `ops` through `GNTTABOP_copy`, in batches; `status[i]` gets
    /// op `i`'s outcome. A hypercall failure stops the run (ops from the
    /// failed batch on keep `Err(GeneralError)`).
    pub fn copy(
        &self,
        ops: &[CopyOp],
        status: &mut [Result<(), GntStatus>],
    ) -> Result<(), GrantError> {
        if status.len() < ops.len() {
            return Err(GrantError::InvalidArgument);
        }
        status
            .iter_mut()
            .for_each(|s| *s = Err(GntStatus::GeneralError));
        let mut g = self.inner.lock();
        for (chunk_i, chunk) in ops.chunks(BATCH).enumerate() {
            let mut raw = [gnttab_copy::default(); BATCH];
            let mut idx = [0usize; BATCH];
            let mut n = 0;
            for (j, op) in chunk.iter().enumerate() {
                let i = chunk_i * BATCH + j;
                // Xen checks this too; catching it here saves a hypercall
                // and gives the same status.
                if op.crosses_page() {
                    status[i] = Err(GntStatus::BadCopyArg);
                    continue;
                }
                raw[n] = op.raw();
                idx[n] = i;
                n += 1;
            }
            if n == 0 {
                continue;
            }
            g.table.ops.copy(&mut raw[..n])?;
            for k in 0..n {
                status[idx[k]] = GntStatus::check(raw[k].status);
            }
        }
        Ok(())
    }

    /// Asks Xen to print our table on its console (`GNTTABOP_dump_table`;
    /// debugging only). Debian's Xen 4.17 answers `-ENOSYS` (measured).
    pub fn dump_table(&self) -> Result<(), GrantError> {
        let st = self.inner.lock().table.ops.dump_table()?;
        GntStatus::check(st)?;
        Ok(())
    }
}
