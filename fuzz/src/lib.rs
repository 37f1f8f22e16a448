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
}

impl Region {
    /// `len` zeroed bytes (rounded up to a multiple of 8).
    pub fn new(len: usize) -> Self {
        Region { words: vec![0; len.div_ceil(8)] }
    }

    /// A view of the first `len` bytes.
    ///
    /// The view must not be used after the region is dropped: the fuzz
    /// targets create regions before the rings over them and drop them
    /// last, so every ring is gone first.
    pub fn mem(&mut self, len: usize) -> xenpv::shared_mem::SharedMem {
        assert!(len <= self.words.len() * 8);
        let base = core::ptr::NonNull::new(self.words.as_mut_ptr().cast::<u8>()).expect("Vec pointer is non-null");
        // SAFETY: base..base+len lies inside `words` (asserted), which
        // is 8-byte aligned (u64) and stays allocated, readable and
        // writable until the region is dropped; callers drop every view
        // before that (see above). All access through the view is
        // volatile or atomic, so the views may alias each other.
        unsafe { xenpv::shared_mem::SharedMem::new(base, len) }
    }
}
