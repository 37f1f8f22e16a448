//! Helpers shared by the fuzz targets: a cursor over the fuzz input that
//! never fails (an exhausted input reads as zeros, and ends the op loop).

/// Reads little-endian integers off the front of the fuzz input.
#[derive(Debug)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// A cursor over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    /// Whether the input is used up.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte (0 once exhausted).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// The next little-endian `u32`.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// A length-prefixed byte string (one length byte, scaled by `unit`).
    pub fn chunk(&mut self, unit: usize) -> &'a [u8] {
        let n = self.u8() as usize * unit;
        self.bytes(n)
    }
}

/// Zeroed, 8-byte aligned memory standing in for a shared page, freed on
/// drop (`SharedMem::leak_zeroed` would leak on every fuzz run).
#[derive(Debug)]
pub struct Region {
    words: Vec<u64>,
    /// Taken once from `words`, so every view derives from the same
    /// pointer and none goes through a reference to the buffer.
    base: core::ptr::NonNull<u8>,
}

impl Region {
    /// `len` zeroed bytes (rounded up to a multiple of 8).
    pub fn new(len: usize) -> Self {
        let mut words = vec![0u64; len.div_ceil(8).max(1)];
        let base = core::ptr::NonNull::new(words.as_mut_ptr().cast::<u8>())
            .expect("Vec pointer is non-null");
        Region { words, base }
    }

    /// A view of the first `len` bytes, borrowing the region.
    pub fn mem(&self, len: usize) -> xenpv::shared_mem::SharedMem<'_> {
        assert!(len <= self.words.len() * 8);
        // SAFETY: base..base+len lies inside `words` (asserted), which
        // stays allocated, readable and writable while `self` is borrowed
        // (the view's lifetime), and is never touched through a
        // reference after `new`: all access goes through these views.
        unsafe { xenpv::shared_mem::SharedMem::new(self.base, len) }
    }
}
