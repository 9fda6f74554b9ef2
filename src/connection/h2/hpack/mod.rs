//! HPACK (RFC 7541): ferrule's own decoder and encoder, with bounds on what a peer can make us
//! hold or do.
//!
//! Why not a crate: `loona-hpack` (what Sozu used; Sozu has since replaced it with its own)
//! builds a `HashMap`-based Huffman table for every Huffman-coded string it decodes (28 µs for
//! one short string, measured), copies every field into two fresh `Vec`s, accepts a table size
//! update anywhere in a block, and is not fuzzed upstream (a one-byte block panicked it until
//! 0.4.3). `httlib-hpack` panics on truncated input (`[0x3f]`, `[0x40, 0x01, 0x61]`: index out of
//! bounds), consumes its input with `Vec::drain` per field, and has had no release since 2021.
//! Neither bounds the decoded size. This one is written from the RFC and checked against its
//! Appendix C examples (`tests.rs`), and fuzzed (`fuzz/fuzz_targets/h2_request.rs`).
//!
//! - [`Decoder::decode`] decodes a whole field block (§3) into a [`HeaderList`]: every field
//!   into one byte buffer, nothing allocated per field once the buffers have grown. A block
//!   that breaks §4.2, §5 or §6 is a connection error COMPRESSION_ERROR (RFC 9113 §4.3).
//! - The decoded size (RFC 9113 §6.5.2: name + value + 32 per field) is bounded by the list's
//!   `limit` (`max_request_head`): past it the fields are no longer kept, the block is still
//!   decoded to keep the dynamic table in step, and [`HeaderList::too_large`] tells the stream
//!   to answer 431. Past `HARD_FACTOR` times the limit (an HPACK bomb: a few bytes of indexes to
//!   a large table entry), decoding stops with ENHANCE_YOUR_CALM and the connection ends, so the
//!   work per block is bounded too.
//! - The dynamic table is bounded by the `SETTINGS_HEADER_TABLE_SIZE` we announce (4096 by
//!   default): a size update above it is a COMPRESSION_ERROR (§6.3).
//! - [`Encoder`] writes response fields without indexing (it keeps no dynamic table, announced
//!   as size 0 at the start of the first block), names lowercased, names from the static table,
//!   values Huffman-coded when that is shorter.
//!
//! Memory: decoder table at most `2 * table size` bytes plus 16 bytes per entry (at most
//! `table size / 32` entries); a header list at most `limit` bytes plus one field being decoded
//! (bounded by the block: `8/5` of its length, or a table entry), and 12 bytes per kept field.

mod huffman;
mod table;

#[cfg(test)]
mod tests;

use super::error::{ErrorCode, H2Error};
pub use huffman::HuffmanError;
use table::{Dynamic, ENTRY_OVERHEAD, STATIC};

/// Decoding stops with a connection error once the decoded size passes this many times the
/// list's limit (or `HARD_FLOOR`, if more).
pub const HARD_FACTOR: usize = 4;
/// The least hard bound on a block's decoded size.
pub const HARD_FLOOR: usize = 64 * 1024;
/// The longest integer accepted: 5 octets past the prefix reach 2^35; sizes, lengths and indexes
/// here are far smaller, so a longer one is an error (§5.1 allows a limit).
const MAX_INT_OCTETS: usize = 5;

const fn compression(why: &'static str) -> H2Error {
    H2Error::conn(ErrorCode::CompressionError, why)
}

#[derive(Debug, Clone, Copy)]
struct Field {
    start: u32,
    name_end: u32,
    value_end: u32,
}

/// A decoded header list (the fields of one block, in order), bounded by `limit`.
#[derive(Debug)]
pub struct HeaderList {
    bytes: Vec<u8>,
    fields: Vec<Field>,
    /// RFC 9113 §6.5.2 size of every field decoded, kept or not.
    size: usize,
    limit: usize,
    over: bool,
}

impl HeaderList {
    /// An empty list that keeps fields up to `limit` bytes of §6.5.2 size.
    pub fn new(limit: usize) -> HeaderList {
        HeaderList {
            bytes: Vec::new(),
            fields: Vec::new(),
            size: 0,
            limit,
            over: false,
        }
    }

    /// Empties the list (keeping its memory) for the next block.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.fields.clear();
        self.size = 0;
        self.over = false;
    }

    /// Gives back the memory (an idle connection holds none).
    pub fn release(&mut self) {
        *self = HeaderList::new(self.limit);
    }

    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// The fields went past the limit: the list holds only those before; answer 431.
    pub fn too_large(&self) -> bool {
        self.over
    }

    /// The §6.5.2 size of the block's fields, all of them.
    pub fn size(&self) -> usize {
        self.size
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The fields kept, in order, as (name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.fields.iter().map(|f| {
            let (s, n, v) = (f.start as usize, f.name_end as usize, f.value_end as usize);
            (
                self.bytes.get(s..n).unwrap_or_default(),
                self.bytes.get(n..v).unwrap_or_default(),
            )
        })
    }

    /// Adds a field directly (tests, and conversions that build a list).
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(name);
        self.bytes.extend_from_slice(value);
        self.commit(start, name.len());
    }

    /// Counts the field whose bytes (name, then value) start at `start`, and keeps it while the
    /// list is within its limit.
    fn commit(&mut self, start: usize, name_len: usize) {
        let len = self.bytes.len() - start;
        self.size = self.size.saturating_add(len + ENTRY_OVERHEAD);
        if self.over || self.size > self.limit {
            self.over = true;
            self.bytes.truncate(start);
            return;
        }
        self.fields.push(Field {
            start: start as u32,
            name_end: (start + name_len) as u32,
            value_end: self.bytes.len() as u32,
        });
    }

    /// Counts a field without copying it when it would not be kept anyway.
    fn count_only(&mut self, len: usize) -> bool {
        if self.over {
            self.size = self.size.saturating_add(len + ENTRY_OVERHEAD);
            return true;
        }
        false
    }

    fn hard_limit(&self) -> usize {
        self.limit.saturating_mul(HARD_FACTOR).max(HARD_FLOOR)
    }
}

/// Reads an integer with an `n`-bit prefix (§5.1) from the front of `b`: (value, bytes).
fn integer(b: &[u8], n: u8) -> Result<(usize, usize), H2Error> {
    let Some((&first, rest)) = b.split_first() else {
        return Err(compression("block ends inside an integer"));
    };
    let max = (1u64 << n) - 1;
    let mut value = u64::from(first) & max;
    if value < max {
        return Ok((value as usize, 1));
    }
    // bounded: at most MAX_INT_OCTETS continuation octets (35 bits: no overflow)
    for (i, &b) in rest.iter().enumerate().take(MAX_INT_OCTETS) {
        value += u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let value = usize::try_from(value).map_err(|_| compression("integer too large"))?;
            return Ok((value, i + 2));
        }
    }
    if rest.len() >= MAX_INT_OCTETS {
        return Err(compression("integer too long"));
    }
    Err(compression("block ends inside an integer"))
}

/// Appends an integer with an `n`-bit prefix, `flags` in the bits above it.
fn put_integer(out: &mut Vec<u8>, value: usize, n: u8, flags: u8) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    let mut rest = value - max;
    // bounded: 7 bits per round
    while rest >= 0x80 {
        out.push((rest & 0x7f) as u8 | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// Reads a string literal (§5.2) from the front of `b` and appends its octets to `out`; returns
/// the bytes it took.
fn string(b: &[u8], out: &mut Vec<u8>) -> Result<usize, H2Error> {
    let huffman = b.first().is_some_and(|&h| h & 0x80 != 0);
    let (len, n) = integer(b, 7)?;
    let end = n.checked_add(len).filter(|&e| e <= b.len());
    let Some(raw) = end.and_then(|e| b.get(n..e)) else {
        return Err(compression("block ends inside a string"));
    };
    if huffman {
        huffman::decode(raw, out).map_err(|e| match e {
            HuffmanError::Eos => compression("EOS in a Huffman string"),
            HuffmanError::Padding => compression("bad Huffman padding"),
        })?;
    } else {
        out.extend_from_slice(raw);
    }
    Ok(n + len)
}

/// The HPACK decoding context of one connection (the client's requests).
#[derive(Debug)]
pub struct Decoder {
    table: Dynamic,
    /// The `SETTINGS_HEADER_TABLE_SIZE` we announced: the most a size update may ask for.
    max_table_size: usize,
}

impl Decoder {
    /// A decoder for a connection where we announced `SETTINGS_HEADER_TABLE_SIZE` =
    /// `max_table_size` (4096 if we announce nothing).
    pub fn new(max_table_size: usize) -> Decoder {
        Decoder {
            table: Dynamic::new(max_table_size),
            max_table_size,
        }
    }

    /// The dynamic table's §4.1 size (for tests and metrics).
    pub fn table_size(&self) -> usize {
        self.table.size()
    }

    /// Field `index` (§2.3.3) of the static and dynamic tables.
    fn get(&self, index: usize) -> Result<(&[u8], &[u8]), H2Error> {
        match index {
            0 => Err(compression("index 0")),
            1..=61 => STATIC
                .get(index - 1)
                .map(|&(n, v)| (n, v))
                .ok_or(compression("index out of the tables")),
            _ => self
                .table
                .get(index - 62)
                .ok_or(compression("index out of the tables")),
        }
    }

    /// Decodes a whole field block into `list` (cleared first). `Err` is a connection error:
    /// COMPRESSION_ERROR for a malformed block, ENHANCE_YOUR_CALM past the hard size bound.
    pub fn decode(&mut self, block: &[u8], list: &mut HeaderList) -> Result<(), H2Error> {
        list.clear();
        let hard = list.hard_limit();
        let mut at = 0;
        let mut fields = false;
        let mut updates = 0;
        // bounded: every representation takes at least one byte of the block
        while let Some(rest) = block.get(at..).filter(|r| !r.is_empty()) {
            let first = rest.first().copied().unwrap_or(0);
            if first & 0xe0 == 0x20 {
                // §6.3: only at the start of a block (§4.2), at most two there
                updates += 1;
                if fields || updates > 2 {
                    return Err(compression("table size update after a field"));
                }
                let (size, n) = integer(rest, 5)?;
                if size > self.max_table_size {
                    return Err(compression("table size update over the setting"));
                }
                self.table.set_max_size(size);
                at += n;
                continue;
            }
            fields = true;
            at += if first & 0x80 != 0 {
                self.indexed(rest, list)?
            } else {
                self.literal(rest, list)?
            };
            if list.size > hard {
                return Err(H2Error::conn(
                    ErrorCode::EnhanceYourCalm,
                    "decoded header list far too large",
                ));
            }
        }
        Ok(())
    }

    /// §6.1: a field from the tables.
    fn indexed(&self, b: &[u8], list: &mut HeaderList) -> Result<usize, H2Error> {
        let (index, n) = integer(b, 7)?;
        let (name, value) = self.get(index)?;
        if !list.count_only(name.len() + value.len()) {
            let start = list.bytes.len();
            list.bytes.extend_from_slice(name);
            list.bytes.extend_from_slice(value);
            list.commit(start, name.len());
        }
        Ok(n)
    }

    /// §6.2: a literal field, its name from the tables or literal, added to the dynamic table
    /// when it says so (§6.2.1).
    fn literal(&mut self, b: &[u8], list: &mut HeaderList) -> Result<usize, H2Error> {
        let first = b.first().copied().unwrap_or(0);
        let index_it = first & 0x40 != 0;
        let (index, mut n) = integer(b, if index_it { 6 } else { 4 })?;
        let start = list.bytes.len();
        if index == 0 {
            n += string(b.get(n..).unwrap_or_default(), &mut list.bytes)?;
        } else {
            let (name, _) = self.get(index)?;
            list.bytes.extend_from_slice(name);
        }
        let name_len = list.bytes.len() - start;
        n += string(b.get(n..).unwrap_or_default(), &mut list.bytes)?;
        if index_it {
            let field = list.bytes.get(start..).unwrap_or_default();
            if let Some((name, value)) = field.split_at_checked(name_len) {
                self.table.insert(name, value);
            }
        }
        list.commit(start, name_len);
        Ok(n)
    }
}

/// Encodes response field blocks. It keeps no dynamic table: every field is a literal "without
/// indexing" (§6.2.2; "never indexed", §6.2.3, for `set-cookie`), so the peer's table settings
/// never constrain it beyond one size update to 0 at the start of the first block.
#[derive(Debug)]
pub struct Encoder {
    size_update: bool,
    /// The last value encoded under each static-table name, and its encoded string: the same
    /// `content-type` or `date` (a second long) again is a copy, not a Huffman coding.
    memo: Vec<Memo>,
}

/// A value (at most [`MEMO_MAX`] bytes) and its string literal (§5.2) as [`put_string`] wrote it.
#[derive(Debug, Default, Clone)]
struct Memo {
    value: Vec<u8>,
    coded: Vec<u8>,
}

/// Longer values are not kept (the memo stays a few hundred bytes a connection).
const MEMO_MAX: usize = 64;

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new()
    }
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder {
            size_update: true,
            memo: Vec::new(),
        }
    }

    /// The peer's `SETTINGS_HEADER_TABLE_SIZE` changed: say again, in the next block, that our
    /// table is empty (§4.2).
    pub fn peer_table_size(&mut self) {
        self.size_update = true;
    }

    /// Starts a block: the size update when one is due. Call once per block, before its fields.
    pub fn begin(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.size_update) {
            out.push(0x20);
        }
    }

    /// `:status` (an index for the codes in the static table).
    pub fn status(&mut self, code: u16, out: &mut Vec<u8>) {
        let index = match code {
            200 => 8,
            204 => 9,
            206 => 10,
            304 => 11,
            400 => 12,
            404 => 13,
            500 => 14,
            _ => 0,
        };
        if index != 0 {
            out.push(0x80 | index);
            return;
        }
        let code = code.min(999);
        let digits = [
            b'0' + (code / 100) as u8,
            b'0' + (code / 10 % 10) as u8,
            b'0' + (code % 10) as u8,
        ];
        // literal without indexing, name :status (8)
        out.push(0x08);
        put_string(out, &digits, false);
    }

    /// A field; its name is written lowercased (RFC 9113 §8.2.1).
    pub fn field(&mut self, name: &[u8], value: &[u8], out: &mut Vec<u8>) {
        let flags = if name.eq_ignore_ascii_case(b"set-cookie") {
            0x10
        } else {
            0x00
        };
        let Some(i) = table::static_name(name) else {
            out.push(flags);
            put_string(out, name, true);
            put_string(out, value, false);
            return;
        };
        put_integer(out, i, 4, flags);
        if value.len() > MEMO_MAX {
            put_string(out, value, false);
            return;
        }
        if self.memo.len() <= i {
            self.memo.resize_with(i + 1, Memo::default);
        }
        let Some(memo) = self.memo.get_mut(i) else {
            put_string(out, value, false);
            return;
        };
        // a string literal is never empty (its length comes first): empty `coded` is no memo
        if memo.coded.is_empty() || memo.value != value {
            memo.value.clear();
            memo.value.extend_from_slice(value);
            memo.coded.clear();
            put_string(&mut memo.coded, value, false);
        }
        out.extend_from_slice(&memo.coded);
    }
}

/// Appends a string literal (§5.2), Huffman-coded when shorter.
fn put_string(out: &mut Vec<u8>, s: &[u8], lowercase: bool) {
    let coded = huffman::encoded_len(s, lowercase);
    if coded < s.len() {
        put_integer(out, coded, 7, 0x80);
        huffman::encode(s, lowercase, out);
    } else {
        put_integer(out, s.len(), 7, 0);
        if lowercase {
            out.extend(s.iter().map(u8::to_ascii_lowercase));
        } else {
            out.extend_from_slice(s);
        }
    }
}
