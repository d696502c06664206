//! [`Disjoint`]: one output buffer that the items of a parallel phase write in parts of their
//! own (a decoding step's team, the bands of a batch product).

/// A slice that the items of a phase write in disjoint parts.
pub(crate) struct Disjoint<'a> {
    ptr: *mut f32,
    len: usize,
    _slice: std::marker::PhantomData<&'a mut [f32]>,
}

// SAFETY: it hands out parts of a `&mut [f32]`, which may go to another thread; that no two
// overlap is `slice`'s contract.
unsafe impl Sync for Disjoint<'_> {}

impl<'a> Disjoint<'a> {
    pub(crate) fn new(slice: &'a mut [f32]) -> Self {
        Disjoint { ptr: slice.as_mut_ptr(), len: slice.len(), _slice: std::marker::PhantomData }
    }

    /// The first element (for a writer whose parts are strided; the same contract as
    /// [`slice`](Self::slice)'s for every element it writes).
    pub(crate) fn ptr(&self) -> *mut f32 {
        self.ptr
    }

    /// Elements `range`.
    ///
    /// # Safety
    /// No other reference to any of them may be alive while this one is.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice(&self, range: std::ops::Range<usize>) -> &mut [f32] {
        assert!(range.start <= range.end && range.end <= self.len, "{range:?} of {}", self.len);
        // SAFETY: within the slice (just checked); exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len()) }
    }
}
