//! The HPACK tables (RFC 7541 §2.3): the static table of Appendix A, and the decoder's dynamic
//! table.
//!
//! The dynamic table keeps its entries' bytes in one `Vec<u8>`, oldest first, and their lengths
//! in a ring (`VecDeque`), so an insertion copies the field once and allocates nothing once the
//! table has reached its high-water mark. Eviction (§4.4) only moves a start offset; the bytes
//! of evicted entries are dropped in one move when the free room at the end runs out, which
//! happens at most once per `max_size` bytes inserted. The byte buffer holds at most
//! `2 * max_size` bytes and the ring at most `max_size / 32` entries (§4.1: every entry counts
//! 32 bytes beyond its name and value).

use std::collections::VecDeque;

/// The static table (Appendix A), index 1 first.
pub const STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// What an entry costs beyond its name and value (§4.1).
pub const ENTRY_OVERHEAD: usize = 32;

/// The static table index (1-based) of the first entry named `name` (ASCII case ignored).
pub fn static_name(name: &[u8]) -> Option<usize> {
    // the entries whose name has this length (built once): a few compared, not all 61
    static BY_LENGTH: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    let by_length = BY_LENGTH.get_or_init(|| {
        let longest = STATIC.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        let mut v = vec![Vec::new(); longest + 1];
        for (i, (n, _)) in STATIC.iter().enumerate() {
            // in index order: a name with several entries (`:method`) is found at its first
            if let Some(slot) = v.get_mut(n.len()) {
                slot.push(i as u8);
            }
        }
        v
    });
    // bounded: the entries of one length (at most a handful)
    by_length
        .get(name.len())?
        .iter()
        .map(|&i| usize::from(i))
        .find(|&i| {
            STATIC
                .get(i)
                .is_some_and(|(n, _)| n.eq_ignore_ascii_case(name))
        })
        .map(|i| i + 1)
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Where its bytes start, counted from the first byte ever inserted.
    at: usize,
    name: u32,
    value: u32,
}

impl Entry {
    #[inline]
    fn bytes(&self) -> usize {
        self.name as usize + self.value as usize
    }
}

/// A decoder's dynamic table (§2.3.2, §4).
#[derive(Debug)]
pub struct Dynamic {
    /// Live entries' bytes start at `start`, oldest first; each is its name then its value.
    bytes: Vec<u8>,
    start: usize,
    /// How many bytes were dropped from the front of `bytes` so far (`Entry::at - base` is an
    /// entry's offset in `bytes`).
    base: usize,
    /// Oldest at the front.
    entries: VecDeque<Entry>,
    /// §4.1 size of the entries.
    size: usize,
    max_size: usize,
}

impl Dynamic {
    pub fn new(max_size: usize) -> Dynamic {
        Dynamic {
            bytes: Vec::new(),
            start: 0,
            base: 0,
            entries: VecDeque::new(),
            size: 0,
            max_size,
        }
    }

    /// The §4.1 size of the table.
    pub fn size(&self) -> usize {
        self.size
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entry `i` of the dynamic table, 0 the newest (index 62 of the whole table).
    pub fn get(&self, i: usize) -> Option<(&[u8], &[u8])> {
        let pos = self.entries.len().checked_sub(i.checked_add(1)?)?;
        let e = self.entries.get(pos)?;
        let at = e.at.checked_sub(self.base)?;
        let name_end = at + e.name as usize;
        let value_end = name_end + e.value as usize;
        Some((
            self.bytes.get(at..name_end)?,
            self.bytes.get(name_end..value_end)?,
        ))
    }

    /// A size update (§6.3) or our new `SETTINGS_HEADER_TABLE_SIZE`: evicts until it fits.
    pub fn set_max_size(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict_to(max_size);
    }

    fn evict_to(&mut self, target: usize) {
        // bounded: one entry per round
        while self.size > target {
            let Some(e) = self.entries.pop_front() else {
                self.size = 0;
                break;
            };
            self.size -= e.bytes() + ENTRY_OVERHEAD;
            self.start += e.bytes();
        }
        if self.entries.is_empty() {
            self.base += self.bytes.len();
            self.bytes.clear();
            self.start = 0;
        }
    }

    /// Adds a field (§4.4): the oldest entries go until it fits; one larger than the whole table
    /// empties it and is not added.
    pub fn insert(&mut self, name: &[u8], value: &[u8]) {
        let need = name.len() + value.len() + ENTRY_OVERHEAD;
        if need > self.max_size {
            self.evict_to(0);
            return;
        }
        self.evict_to(self.max_size - need);
        let len = name.len() + value.len();
        if self.bytes.len() + len > 2 * self.max_size && self.start > 0 {
            // drop the evicted bytes in one move; at most once per max_size bytes inserted
            self.bytes.drain(..self.start);
            self.base += self.start;
            self.start = 0;
        }
        let at = self.base + self.bytes.len();
        self.bytes.extend_from_slice(name);
        self.bytes.extend_from_slice(value);
        self.entries.push_back(Entry {
            at,
            name: name.len() as u32,
            value: value.len() as u32,
        });
        self.size += need;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_lookup() {
        assert_eq!(STATIC[0].0, b":authority");
        assert_eq!(STATIC[60].0, b"www-authenticate");
        assert_eq!(static_name(b"Content-Type"), Some(31));
        assert_eq!(static_name(b":status"), Some(8));
        assert_eq!(static_name(b"x-nope"), None);
    }

    #[test]
    fn insert_evict_and_index() {
        let mut t = Dynamic::new(100);
        t.insert(b"a", b"1"); // 34
        t.insert(b"bb", b"22"); // 36
        assert_eq!(t.size(), 70);
        assert_eq!(t.get(0), Some((&b"bb"[..], &b"22"[..])));
        assert_eq!(t.get(1), Some((&b"a"[..], &b"1"[..])));
        assert_eq!(t.get(2), None);
        t.insert(b"ccc", b"333"); // 38: "a" goes
        assert_eq!(t.len(), 2);
        assert_eq!(t.size(), 74);
        assert_eq!(t.get(1), Some((&b"bb"[..], &b"22"[..])));
        // larger than the table: empties it
        t.insert(&[b'x'; 60], &[b'y'; 9]);
        assert!(t.is_empty());
        assert_eq!(t.size(), 0);
        // shrinking evicts
        t.insert(b"a", b"1");
        t.insert(b"b", b"2");
        t.set_max_size(40);
        assert_eq!(t.len(), 1);
        assert_eq!(t.get(0), Some((&b"b"[..], &b"2"[..])));
        t.set_max_size(0);
        assert!(t.is_empty());
    }

    #[test]
    fn bytes_stay_within_twice_the_size() {
        let mut t = Dynamic::new(4096);
        for i in 0..10_000u32 {
            let v = i.to_string();
            t.insert(b"x-some-header", v.as_bytes());
            assert!(t.bytes.len() <= 2 * 4096);
            assert!(t.size() <= 4096);
            assert_eq!(t.get(0).unwrap().1, v.as_bytes());
        }
        assert!(t.entries.len() <= 4096 / 32);
        let oldest = t.len() - 1;
        let (n, v) = t.get(oldest).unwrap();
        assert_eq!(n, b"x-some-header");
        assert_eq!(v, (10_000 - t.len()).to_string().as_bytes());
    }
}
