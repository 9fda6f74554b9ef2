//! Byte buffers for the data path and the per-worker pool that recycles them.
//!
//! A [`Buf`] is a fixed-capacity window `start..end` over a boxed slice. Reads append at `end`,
//! writes consume from `start`. A buffer that becomes empty rewinds to [`HEADROOM`], so a request
//! head can later be rewritten in place (the rewritten head may be longer than the original; the
//! room in front of it absorbs the difference without moving the body).
//!
//! Sessions (`session.rs`) hold a buffer only while bytes are in flight and give it back to the
//! worker's [`BufPool`] as soon as it is empty: an idle keep-alive connection holds no buffer.

/// Bytes kept free in front of freshly read data, for head rewriting.
pub const HEADROOM: usize = 1024;

pub struct Buf {
    data: Box<[u8]>,
    // u32 offsets keep an idle session small; buffers are far below 4 GiB (config caps them)
    start: u32,
    end: u32,
}

impl Buf {
    fn with_capacity(cap: usize) -> Buf {
        Buf {
            data: vec![0u8; cap + HEADROOM].into_boxed_slice(),
            start: HEADROOM as u32,
            end: HEADROOM as u32,
        }
    }

    #[inline]
    fn start(&self) -> usize {
        self.start as usize
    }

    #[inline]
    fn end(&self) -> usize {
        self.end as usize
    }

    #[inline]
    fn set(&mut self, start: usize, end: usize) {
        debug_assert!(start <= end && end <= self.data.len());
        self.start = start as u32;
        self.end = end as u32;
    }

    /// Bytes held.
    #[inline]
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The held bytes.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        &self.data[self.start()..self.end()]
    }

    #[inline]
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        let (s, e) = (self.start(), self.end());
        &mut self.data[s..e]
    }

    /// Largest number of bytes this buffer can hold (the headroom excluded).
    #[inline]
    pub fn capacity(&self) -> usize {
        self.data.len() - HEADROOM
    }

    /// True when no more bytes fit even after compaction.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len() >= self.capacity()
    }

    /// Free space at the tail, compacting first when the tail is short. Fill it, then call
    /// [`Buf::filled`].
    pub fn space(&mut self) -> &mut [u8] {
        let tail = self.data.len() - self.end();
        if tail < self.capacity() / 4 && self.start() > HEADROOM {
            self.compact();
        }
        let e = self.end();
        &mut self.data[e..]
    }

    #[inline]
    pub fn filled(&mut self, n: usize) {
        debug_assert!(self.end() + n <= self.data.len());
        self.end += n as u32;
    }

    /// Drops `n` bytes from the front.
    #[inline]
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.start += n as u32;
        if self.start == self.end {
            self.set(HEADROOM, HEADROOM);
        }
    }

    /// Drops `n` bytes from the back.
    pub fn truncate_back(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.end -= n as u32;
    }

    /// Moves the held bytes to just after the headroom.
    fn compact(&mut self) {
        let len = self.len();
        self.data.copy_within(self.start()..self.end(), HEADROOM);
        self.set(HEADROOM, HEADROOM + len);
    }

    /// Replaces the first `old_len` held bytes with `new`, keeping what follows. Returns false (and
    /// changes nothing) when the result does not fit.
    pub fn replace_front(&mut self, old_len: usize, new: &[u8]) -> bool {
        debug_assert!(old_len <= self.len());
        let rest = self.start() + old_len;
        if new.len() <= rest {
            // Fits in front of the rest: the common case, no byte of the body moves.
            let at = rest - new.len();
            self.data[at..rest].copy_from_slice(new);
            self.start = at as u32;
            return true;
        }
        let rest_len = self.end() - rest;
        if new.len() + rest_len > self.data.len() {
            return false;
        }
        self.data.copy_within(rest..self.end(), new.len());
        self.data[..new.len()].copy_from_slice(new);
        self.set(0, new.len() + rest_len);
        true
    }

    /// Replaces `old_len` held bytes at offset `at` with `new`. Returns false (and changes nothing)
    /// when the result does not fit.
    pub fn replace_at(&mut self, at: usize, old_len: usize, new: &[u8]) -> bool {
        if at == 0 {
            return self.replace_front(old_len, new);
        }
        debug_assert!(at + old_len <= self.len());
        let total = self.len() - old_len + new.len();
        if total > self.data.len() {
            return false;
        }
        if self.start() + total > self.data.len() {
            let len = self.len();
            self.data.copy_within(self.start()..self.end(), 0);
            self.set(0, len);
        }
        let from = self.start() + at;
        self.data
            .copy_within(from + old_len..self.end(), from + new.len());
        self.data[from..from + new.len()].copy_from_slice(new);
        let s = self.start();
        self.set(s, s + total);
        true
    }

    /// Removes `len` bytes at offset `at` (relative to the held bytes), closing the gap.
    pub fn remove(&mut self, at: usize, len: usize) {
        let from = self.start() + at;
        debug_assert!(from + len <= self.end());
        self.data.copy_within(from + len..self.end(), from);
        self.end -= len as u32;
    }

    /// Appends as much of `src` as fits; returns how much did.
    pub fn push(&mut self, src: &[u8]) -> usize {
        let space = self.space();
        let n = space.len().min(src.len());
        space[..n].copy_from_slice(&src[..n]);
        self.filled(n);
        n
    }

    /// Empties the buffer.
    fn clear(&mut self) {
        self.set(HEADROOM, HEADROOM);
    }
}

/// Free buffers of one worker. `get` and `put` are a pop and a push, so a worker under steady load
/// never allocates. Once a second [`BufPool::trim`] looks at how many buffers were in use: when
/// the load has dropped well below its recent peak, it frees what exceeds `keep` and hands the
/// memory back to the system, so a burst of busy connections does not leave the process fat once
/// they go idle. Under steady load nothing is freed (and nothing re-allocated).
pub struct BufPool {
    free: Vec<Buf>,
    cap: usize,
    keep: usize,
    /// Buffers handed out and not yet returned.
    in_use: usize,
    /// Most buffers in use at once since the last trim.
    peak: usize,
}

impl BufPool {
    pub fn new(cap: usize, keep: usize) -> BufPool {
        BufPool {
            free: Vec::with_capacity(keep),
            cap,
            keep,
            in_use: 0,
            peak: 0,
        }
    }

    pub fn get(&mut self) -> Buf {
        self.in_use += 1;
        self.peak = self.peak.max(self.in_use);
        self.free
            .pop()
            .unwrap_or_else(|| Buf::with_capacity(self.cap))
    }

    pub fn put(&mut self, mut buf: Buf) {
        self.in_use = self.in_use.saturating_sub(1);
        buf.clear();
        self.free.push(buf);
    }

    /// Buffer capacity of this pool.
    pub fn buf_capacity(&self) -> usize {
        self.cap
    }

    /// Free buffers currently retained.
    pub fn retained(&self) -> usize {
        self.free.len()
    }

    /// Buffers handed out and not returned.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// Once a second: when fewer than a quarter of the recent peak are in use, frees the free
    /// buffers beyond `keep` and returns the memory to the system. Never called per request.
    pub fn trim(&mut self) {
        let peak = std::mem::replace(&mut self.peak, self.in_use);
        if self.free.len() <= self.keep || self.in_use * 4 > peak {
            return;
        }
        self.free.truncate(self.keep);
        self.free.shrink_to(self.keep.max(64));
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only inspects and releases the allocator's own free memory.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf_with(cap: usize, bytes: &[u8]) -> Buf {
        let mut b = Buf::with_capacity(cap);
        assert_eq!(b.push(bytes), bytes.len());
        b
    }

    #[test]
    fn replace_front_shorter_and_longer() {
        let mut b = buf_with(64, b"HEADbody");
        assert!(b.replace_front(4, b"H"));
        assert_eq!(b.bytes(), b"Hbody");
        assert!(b.replace_front(1, b"A LONGER HEAD "));
        assert_eq!(b.bytes(), b"A LONGER HEAD body");
    }

    #[test]
    fn replace_front_beyond_headroom_moves_the_rest() {
        let mut b = buf_with(4096, b"Hxyz");
        let long = vec![b'a'; HEADROOM + 100];
        assert!(b.replace_front(1, &long));
        assert_eq!(&b.bytes()[..HEADROOM + 100], &long[..]);
        assert_eq!(&b.bytes()[HEADROOM + 100..], b"xyz");
        // too large for the whole buffer: refused, unchanged
        let huge = vec![b'b'; 4096 + HEADROOM];
        let before = b.bytes().to_vec();
        assert!(!b.replace_front(1, &huge));
        assert_eq!(b.bytes(), &before[..]);
    }

    #[test]
    fn consume_rewinds_and_space_compacts() {
        let mut b = buf_with(16, b"0123456789abcdef");
        assert!(b.is_full());
        assert_eq!(b.space().len(), 0);
        b.consume(14);
        assert_eq!(b.bytes(), b"ef");
        // tail is empty and start is past the headroom: space() compacts
        assert_eq!(b.space().len(), 14);
        assert_eq!(b.bytes(), b"ef");
        b.consume(2);
        assert!(b.is_empty());
        assert_eq!(b.space().len(), 16);
    }

    #[test]
    fn replace_at_inside() {
        let mut b = buf_with(64, b"AAheadBODY");
        assert!(b.replace_at(2, 4, b"longer-head"));
        assert_eq!(b.bytes(), b"AAlonger-headBODY");
        assert!(b.replace_at(2, 11, b"h"));
        assert_eq!(b.bytes(), b"AAhBODY");
        let mut full = buf_with(16, b"0123456789abcdef");
        assert!(!full.replace_at(1, 1, &[b'x'; HEADROOM + 2]));
        assert!(full.replace_at(1, 1, &[b'x'; HEADROOM + 1]));
        assert_eq!(full.len(), 16 + HEADROOM);
    }

    #[test]
    fn remove_closes_gap() {
        let mut b = buf_with(32, b"abcXXXdef");
        b.remove(3, 3);
        assert_eq!(b.bytes(), b"abcdef");
        b.truncate_back(2);
        assert_eq!(b.bytes(), b"abcd");
    }

    #[test]
    fn pool_recycles_and_trims_only_when_load_drops() {
        let mut p = BufPool::new(32, 1);
        let bufs: Vec<Buf> = (0..8).map(|_| p.get()).collect();
        assert_eq!(p.in_use(), 8);
        let mut bufs = bufs.into_iter();
        for b in bufs.by_ref().take(4) {
            p.put(b);
        }
        // half the peak still in use: steady load, keep everything
        p.trim();
        assert_eq!(p.retained(), 4);
        for b in bufs {
            p.put(b);
        }
        let mut b = p.get();
        b.push(b"x");
        p.put(b);
        assert!(p.get().is_empty() && p.in_use() == 1);
        // peak since the last trim was 4, one in use: the load dropped, trim to `keep`
        p.trim();
        assert_eq!(p.retained(), 1);
    }
}
