//! Byte buffers for the data path and the per-worker pool that recycles them.
//!
//! A [`Buf`] is a fixed-capacity window `start..end` over one allocation. Reads append at `end`,
//! writes consume from `start`. Sockets are read straight into the unused tail ([`Buf::fill_from`],
//! one `recv(2)`), which is never zeroed first: a buffer that only ever carried small messages
//! touches a few pages, not its whole capacity, so the process's resident memory follows the bytes
//! actually moved. A buffer that becomes empty rewinds to [`HEADROOM`], so a request
//! head can later be rewritten in place (the rewritten head may be longer than the original; the
//! room in front of it absorbs the difference without moving the body).
//!
//! Connections and their streams (`connection/`, `stream/`) hold a buffer only while bytes are in
//! flight and give it back to the worker's [`BufPool`] as soon as it is empty
//! ([`BufPool::put_if_empty`]): an idle keep-alive connection holds no buffer.

use std::io;
use std::os::fd::RawFd;

/// Bytes kept free in front of freshly read data, for head rewriting.
pub const HEADROOM: usize = 1024;

/// What one [`Buf::fill_from`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// No room: nothing was read.
    Full,
    /// `n` bytes read (0: end of stream) into `room` bytes of room.
    Read { n: usize, room: usize },
}

pub struct Buf {
    /// `data.capacity()` is the buffer's size; `data.len()` how much of it is initialised.
    data: Vec<u8>,
    // u32 offsets keep an idle session small; buffers are far below 4 GiB (config caps them)
    start: u32,
    end: u32,
}

impl Buf {
    fn with_capacity(cap: usize) -> Buf {
        let mut data = Vec::with_capacity(cap + HEADROOM);
        data.resize(HEADROOM, 0);
        Buf {
            data,
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

    /// The buffer's size, headroom included.
    #[inline]
    fn size(&self) -> usize {
        self.data.capacity()
    }

    /// Makes sure the first `upto` bytes are initialised (`upto` within the size).
    #[inline]
    fn init_to(&mut self, upto: usize) {
        if self.data.len() < upto {
            self.data.resize(upto.min(self.size()), 0);
        }
    }

    /// Sets the window. Callers compute `start <= end <= initialised length`; the check stays in
    /// release builds (a comparison, never a panic): a window that would break it is clamped.
    #[inline]
    fn set(&mut self, start: usize, end: usize) {
        let end = end.min(self.data.len());
        let start = start.min(end);
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
        self.size() - HEADROOM
    }

    /// True when no more bytes fit even after compaction.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len() >= self.capacity()
    }

    /// Room left at the tail, after compacting when the tail is short.
    fn make_room(&mut self) -> usize {
        let tail = self.size() - self.end();
        if tail < self.capacity() / 4 && self.start() > HEADROOM {
            self.compact();
        }
        self.size() - self.end()
    }

    /// Reads once (one `recv(2)`) from `fd` into the room at the tail.
    pub fn fill_from(&mut self, fd: RawFd) -> io::Result<Fill> {
        let room = self.make_room();
        if room == 0 {
            return Ok(Fill::Full);
        }
        let end = self.end();
        // SAFETY: `end + room` is the allocation's capacity, so the kernel writes only inside the
        // allocation; the bytes it reports written are initialised from then on, and with
        // `end <= len` they join the initialised prefix without a gap.
        let n = unsafe { libc::recv(fd, self.data.as_mut_ptr().add(end).cast(), room, 0) };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        if end + n > self.data.len() {
            // SAFETY: see above: bytes up to `end + n` are initialised.
            unsafe { self.data.set_len(end + n) };
        }
        self.end += n as u32;
        Ok(Fill::Read { n, room })
    }

    /// Drops `n` bytes from the front (all of them if `n` is more than held).
    #[inline]
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len());
        self.start += n as u32;
        if self.start == self.end {
            self.set(HEADROOM, HEADROOM);
        }
    }

    /// Drops `n` bytes from the back (all of them if `n` is more than held).
    pub fn truncate_back(&mut self, n: usize) {
        let n = n.min(self.len());
        self.end -= n as u32;
    }

    /// Moves the held bytes to just after the headroom.
    fn compact(&mut self) {
        let len = self.len();
        let (s0, e0) = (self.start(), self.end());
        self.data.copy_within(s0..e0, HEADROOM);
        self.set(HEADROOM, HEADROOM + len);
    }

    /// Replaces the first `old_len` held bytes with `new`, keeping what follows. Returns false (and
    /// changes nothing) when the result does not fit.
    pub fn replace_front(&mut self, old_len: usize, new: &[u8]) -> bool {
        if old_len > self.len() {
            return false;
        }
        let rest = self.start() + old_len;
        if new.len() <= rest {
            // Fits in front of the rest: the common case, no byte of the body moves.
            let at = rest - new.len();
            self.data[at..rest].copy_from_slice(new);
            self.start = at as u32;
            return true;
        }
        let rest_len = self.end() - rest;
        if new.len() + rest_len > self.size() {
            return false;
        }
        self.init_to(new.len() + rest_len);
        let e0 = self.end();
        self.data.copy_within(rest..e0, new.len());
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
        if at.saturating_add(old_len) > self.len() {
            return false;
        }
        let total = self.len() - old_len + new.len();
        if total > self.size() {
            return false;
        }
        if self.start() + total > self.size() {
            let len = self.len();
            let (s0, e0) = (self.start(), self.end());
            self.data.copy_within(s0..e0, 0);
            self.set(0, len);
        }
        self.init_to(self.start() + total);
        let from = self.start() + at;
        let e0 = self.end();
        self.data.copy_within(from + old_len..e0, from + new.len());
        self.data[from..from + new.len()].copy_from_slice(new);
        let s = self.start();
        self.set(s, s + total);
        true
    }

    /// Removes `len` bytes at offset `at` (relative to the held bytes), closing the gap; a range
    /// reaching past the held bytes is cut at their end.
    pub fn remove(&mut self, at: usize, len: usize) {
        let at = at.min(self.len());
        let len = len.min(self.len() - at);
        let from = self.start() + at;
        let e0 = self.end();
        self.data.copy_within(from + len..e0, from);
        self.end -= len as u32;
    }

    /// Appends as much of `src` as fits; returns how much did.
    pub fn push(&mut self, src: &[u8]) -> usize {
        let n = self.make_room().min(src.len());
        let end = self.end();
        self.init_to(end + n);
        self.data[end..end + n].copy_from_slice(&src[..n]);
        self.end += n as u32;
        n
    }

    /// Empties the buffer.
    fn clear(&mut self) {
        self.set(HEADROOM, HEADROOM);
    }
}

/// Free buffers of one worker. `get` and `put` are a pop and a push, so a worker under steady load
/// never allocates. Once a second [`BufPool::trim`] moves a high-water mark: up at once to the
/// most buffers in use since the last trim, down by a quarter a second otherwise. Free buffers
/// beyond what the mark says may be needed again (`mark - in use`, at least `keep`) are freed and
/// the memory handed back to the system. A load that drops, at once or gradually, from 10,000 busy
/// connections to 3,000 gives its memory back within seconds; a steady load frees nothing (and
/// re-allocates nothing), since its buffers stay within the mark.
pub struct BufPool {
    free: Vec<Buf>,
    cap: usize,
    keep: usize,
    /// Buffers handed out and not yet returned.
    in_use: usize,
    /// Most buffers in use at once since the last trim.
    peak: usize,
    /// The decaying high-water mark of buffers in use.
    mark: usize,
}

/// Freeing fewer buffers than this does not call `malloc_trim` (its cost is a walk of the heap).
const TRIM_AT_LEAST: usize = 8;

impl BufPool {
    pub fn new(cap: usize, keep: usize) -> BufPool {
        BufPool {
            free: Vec::with_capacity(keep),
            cap,
            keep,
            in_use: 0,
            peak: 0,
            mark: 0,
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

    /// Gives back the buffer held in `slot`, if any, whatever it holds.
    #[inline]
    pub fn put_slot(&mut self, slot: &mut Option<Buf>) {
        if let Some(b) = slot.take() {
            self.put(b);
        }
    }

    /// Gives back the buffer held in `slot` when it holds no bytes: whoever waits for bytes holds
    /// no buffer meanwhile (an idle connection costs no buffer memory).
    #[inline]
    pub fn put_if_empty(&mut self, slot: &mut Option<Buf>) {
        if slot.as_ref().is_some_and(Buf::is_empty) {
            self.put_slot(slot);
        }
    }

    /// Free buffers currently retained.
    pub fn retained(&self) -> usize {
        self.free.len()
    }

    /// Buffers handed out and not returned.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// More is retained than an idle worker keeps: `trim` still has work to do.
    pub fn needs_trim(&self) -> bool {
        self.free.len() > self.keep
    }

    /// Once a second (never per request): moves the high-water mark and frees the free buffers
    /// beyond it. Returns how many were freed.
    pub fn trim(&mut self) -> usize {
        let peak = std::mem::replace(&mut self.peak, self.in_use);
        self.mark = peak.max(self.mark - self.mark / 4);
        let wanted = self.mark.saturating_sub(self.in_use).max(self.keep);
        if self.free.len() <= wanted {
            return 0;
        }
        let freed = self.free.len() - wanted;
        self.free.truncate(wanted);
        if freed >= TRIM_AT_LEAST || self.free.len() <= self.keep {
            self.free.shrink_to(wanted.max(64));
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            // SAFETY: malloc_trim only inspects and releases the allocator's own free memory.
            unsafe {
                libc::malloc_trim(0);
            }
        }
        freed
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
        assert_eq!(b.make_room(), 0);
        b.consume(14);
        assert_eq!(b.bytes(), b"ef");
        // tail is empty and start is past the headroom: make_room() compacts
        assert_eq!(b.make_room(), 14);
        assert_eq!(b.bytes(), b"ef");
        b.consume(2);
        assert!(b.is_empty());
        assert_eq!(b.make_room(), 16);
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
    fn pool_recycles_under_steady_load() {
        let mut p = BufPool::new(32, 1);
        for _ in 0..5 {
            let bufs: Vec<Buf> = (0..8).map(|_| p.get()).collect();
            for b in bufs {
                p.put(b);
            }
            // steady: the same 8 buffers come back every second; nothing is freed
            assert_eq!(p.trim(), 0);
            assert_eq!(p.retained(), 8);
        }
        let mut b = p.get();
        b.push(b"x");
        p.put(b);
        assert!(p.get().is_empty() && p.in_use() == 1);
    }

    /// Drives the load down in steps, as from 10,000 busy connections to 3,000 and then to none:
    /// the retained buffers follow within a few trims, whether the drop is sudden or gradual.
    #[test]
    fn pool_memory_follows_a_declining_load() {
        let mut p = BufPool::new(16, 4);
        let mut held: Vec<Buf> = (0..10_000).map(|_| p.get()).collect();
        p.trim();
        // sudden drop to 3,000 in use
        for b in held.drain(3000..) {
            p.put(b);
        }
        let mut trims = 0;
        while p.retained() > 100 && trims < 20 {
            p.trim();
            trims += 1;
        }
        assert!(trims <= 6, "took {trims} trims");
        assert!(p.retained() <= 100);
        // gradual decline: 100 fewer each second, 3,000 to 1,000
        for _ in 0..20 {
            for b in held.drain(held.len() - 100..) {
                p.put(b);
            }
            p.trim();
            assert!(p.retained() <= 400, "retained {}", p.retained());
        }
        assert_eq!(p.in_use(), 1000);
        for b in held.drain(..) {
            p.put(b);
        }
        for _ in 0..30 {
            p.trim();
        }
        assert_eq!(p.retained(), 4, "down to `keep` once idle");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 1000,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]
        /// Random sequences of reads, writes, consumes and rewrites against a plain `Vec` model:
        /// the held bytes always agree, and nothing panics, in release builds too.
        #[test]
        fn buf_agrees_with_a_model(ops in proptest::collection::vec(op(), 1..200)) {
            use std::io::Write;
            use std::os::fd::AsRawFd;
            let cap = 64;
            let mut b = Buf::with_capacity(cap);
            let mut model: Vec<u8> = Vec::new();
            let mut next = 0u8;
            // bytes written to the socket and not read yet
            let (mut tx, rx) = std::os::unix::net::UnixStream::pair().unwrap();
            rx.set_nonblocking(true).unwrap();
            let mut in_socket: std::collections::VecDeque<u8> = Default::default();
            for o in ops {
                match o {
                    Op::Fill(n) => {
                        let src: Vec<u8> = (0..n).map(|_| { next = next.wrapping_add(1); next }).collect();
                        tx.write_all(&src).unwrap();
                        in_socket.extend(&src);
                        match b.fill_from(rx.as_raw_fd()) {
                            Ok(Fill::Full) => proptest::prop_assert!(b.is_full() || b.len() >= cap),
                            Ok(Fill::Read { n, room }) => {
                                proptest::prop_assert!(n <= room && n > 0);
                                model.extend(in_socket.drain(..n));
                            }
                            Err(e) => {
                                // nothing waiting (n was 0)
                                proptest::prop_assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
                                proptest::prop_assert!(in_socket.is_empty());
                            }
                        }
                    }
                    Op::Push(n) => {
                        let src: Vec<u8> = (0..n).map(|_| { next = next.wrapping_add(1); next }).collect();
                        let pushed = b.push(&src);
                        proptest::prop_assert!(pushed <= n);
                        proptest::prop_assert!(model.len() + pushed <= cap + HEADROOM);
                        model.extend_from_slice(&src[..pushed]);
                    }
                    Op::Consume(n) => {
                        b.consume(n);
                        model.drain(..n.min(model.len()));
                    }
                    Op::Truncate(n) => {
                        b.truncate_back(n);
                        model.truncate(model.len() - n.min(model.len()));
                    }
                    Op::Remove(at, n) => {
                        b.remove(at, n);
                        let at = at.min(model.len());
                        let n = n.min(model.len() - at);
                        model.drain(at..at + n);
                    }
                    Op::ReplaceAt(at, old, n) => {
                        let new = vec![0xEE; n];
                        // refused exactly when the range is not held or the result is too big
                        let fits = at + old <= model.len() && model.len() - old + n <= cap + HEADROOM;
                        let ok = b.replace_at(at, old, &new);
                        proptest::prop_assert_eq!(ok, fits);
                        if ok {
                            model.splice(at..at + old, new);
                        }
                    }
                }
                proptest::prop_assert_eq!(b.bytes(), &model[..]);
                proptest::prop_assert!(b.len() <= cap + HEADROOM);
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Fill(usize),
        Push(usize),
        Consume(usize),
        Truncate(usize),
        Remove(usize, usize),
        ReplaceAt(usize, usize, usize),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0usize..80).prop_map(Op::Fill),
            (0usize..80).prop_map(Op::Push),
            (0usize..80).prop_map(Op::Consume),
            (0usize..80).prop_map(Op::Truncate),
            (0usize..80, 0usize..80).prop_map(|(a, n)| Op::Remove(a, n)),
            (0usize..80, 0usize..20, 0usize..40).prop_map(|(a, o, n)| Op::ReplaceAt(a, o, n)),
        ]
    }
}
