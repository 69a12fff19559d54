//! Data offsets for a custom-format archive that pg_dump wrote to a pipe.
//!
//! pg_dump writes each table's data position into the table of contents only when its output
//! is seekable: it rewrites the TOC at the end. pgb reads pg_dump from a pipe, so the TOC of
//! its archives says "position not set" for every table, and each `pg_restore -j` worker has to
//! scan the file block by block (one small seek per row chunk) to find its table: 0.6-0.8 s
//! more than the same restore from a seekable dump of a 690 MB archive (docs/benchmarks.md).
//!
//! [`DataOffsets`] follows the archive as it is spooled, without holding it: it parses the
//! header and the TOC (noting where each entry's offset field lies) and walks the data blocks
//! (noting where each starts), then [`patch`] writes the offsets in place, as pg_dump itself
//! would have. Only an archive that parsed cleanly to its end is patched; anything unexpected
//! (an archive version not known here, a malformed block) leaves the file as it was, which
//! pg_restore reads as before. A wrong offset could not restore wrong data either: pg_restore
//! checks the block id it finds there and stops.

use std::collections::HashMap;
use std::path::Path;

/// The oldest and newest custom-format versions whose layout this module knows
/// (pg_dump 9.5 wrote 1.12; PostgreSQL 17 and 18 write 1.16).
const MIN_VERSION: (u8, u8) = (1, 12);
const MAX_VERSION: (u8, u8) = (1, 16);
/// `archCustom` in the header's format byte.
const FORMAT_CUSTOM: u8 = 1;
/// Data block types.
const BLK_DATA: u8 = 1;
const BLK_BLOBS: u8 = 3;
/// Offset flags of a TOC entry.
const OFFSET_NOT_SET: u8 = 1;
const OFFSET_SET: u8 = 2;

/// One field of a TOC entry, in the archive's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Int,
    Str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Magic,
    Version,
    Sizes,
    /// 1.15 and later: one byte (the algorithm); before: an int (the level).
    Compression,
    /// The creation time: seven ints.
    Time(u8),
    /// Database name, server version, pg_dump version.
    HeaderStr(u8),
    TocCount,
    /// Field `n` of the current entry's fixed fields.
    Entry(usize),
    /// The entry's dependency list: strings up to a null one.
    Deps,
    /// The entry's data offset: a flag byte and `offSize` bytes.
    Offset,
    /// Between data blocks (the only place the archive may end).
    Block,
    BlockId {
        blobs: bool,
        at: u64,
    },
    /// A data chunk's length (0 ends the table's data, or the large object's).
    Chunk {
        blobs: bool,
    },
    /// A large object's OID (0 ends the BLOBS block).
    BlobOid,
    Failed,
}

/// Follows a custom-format archive byte by byte (in any chunking) and collects where its data
/// offsets belong.
#[derive(Debug)]
pub struct DataOffsets {
    state: State,
    /// Bytes of the current field read so far, until `want` of them are here.
    acc: Vec<u8>,
    want: usize,
    /// Bytes to pass over (a string's or a chunk's body) before the next field.
    skip: u64,
    /// Bytes consumed so far: the archive position of the next byte.
    pos: u64,
    minor: u8,
    int_size: usize,
    off_size: usize,
    fields: Vec<Field>,
    entries_left: i64,
    entry_id: i64,
    /// The entries whose offset field says "not set": (dump id, position of the flag byte).
    slots: Vec<(i64, u64)>,
    /// Where each dump id's data block starts.
    blocks: HashMap<i64, u64>,
}

impl Default for DataOffsets {
    fn default() -> Self {
        Self::new()
    }
}

impl DataOffsets {
    /// A follower at the start of an archive.
    pub fn new() -> Self {
        Self {
            state: State::Magic,
            acc: Vec::new(),
            want: 5,
            skip: 0,
            pos: 0,
            minor: 0,
            int_size: 0,
            off_size: 0,
            fields: Vec::new(),
            entries_left: 0,
            entry_id: 0,
            slots: Vec::new(),
            blocks: HashMap::new(),
        }
    }

    /// Follows the next bytes of the archive.
    pub fn feed(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() && self.state != State::Failed {
            if self.skip > 0 {
                let n = self.skip.min(buf.len() as u64);
                self.skip -= n;
                self.pos += n;
                buf = &buf[n as usize..];
                continue;
            }
            // A whole field in `buf`: read it there, without copying (the common case for
            // the many small chunk headers).
            if self.acc.is_empty() && buf.len() >= self.want {
                let (field, rest) = buf.split_at(self.want);
                self.pos += self.want as u64;
                buf = rest;
                self.on_field(field);
                continue;
            }
            let n = (self.want - self.acc.len()).min(buf.len());
            self.acc.extend_from_slice(&buf[..n]);
            self.pos += n as u64;
            buf = &buf[n..];
            if self.acc.len() == self.want {
                let field = std::mem::take(&mut self.acc);
                self.on_field(&field);
                self.acc = field;
                self.acc.clear();
            }
        }
    }

    /// The writes that set every data offset: none unless the archive parsed cleanly to its
    /// end.
    pub fn finish(self) -> OffsetPatches {
        if self.state != State::Block || !self.acc.is_empty() || self.skip > 0 {
            return OffsetPatches(Vec::new());
        }
        let patches = self
            .slots
            .iter()
            .filter_map(|(id, slot)| {
                let at = *self.blocks.get(id)?;
                let le = at.to_le_bytes();
                // An offset too large for the archive's offset size stays unset.
                if le[self.off_size.min(8)..].iter().any(|b| *b != 0) {
                    return None;
                }
                let mut bytes = Vec::with_capacity(1 + self.off_size);
                bytes.push(OFFSET_SET);
                bytes.extend((0..self.off_size).map(|i| le.get(i).copied().unwrap_or(0)));
                Some((*slot, bytes))
            })
            .collect();
        OffsetPatches(patches)
    }

    fn fail(&mut self) {
        self.state = State::Failed;
    }

    /// Reads an archive int: a sign byte, then `int_size` bytes, least significant first.
    fn int(&self, b: &[u8]) -> i64 {
        let mut v: i64 = 0;
        for (i, byte) in b[1..].iter().enumerate() {
            v |= i64::from(*byte) << (8 * i);
        }
        if b[0] != 0 { -v } else { v }
    }

    fn expect(&mut self, state: State, want: usize) {
        self.state = state;
        self.want = want;
    }

    fn expect_int(&mut self, state: State) {
        let n = 1 + self.int_size;
        self.expect(state, n);
    }

    /// After a string's length: its body is passed over.
    fn skip_str(&mut self, len: i64) {
        if len > 0 {
            self.skip = len as u64;
        }
    }

    fn next_entry_field(&mut self, n: usize) {
        match self.fields.get(n) {
            Some(_) => self.expect_int(State::Entry(n)),
            None => self.expect_int(State::Deps),
        }
    }

    fn on_field(&mut self, b: &[u8]) {
        match self.state {
            State::Magic => {
                if b == b"PGDMP" {
                    self.expect(State::Version, 3);
                } else {
                    self.fail();
                }
            }
            State::Version => {
                let v = (b[0], b[1]);
                if v < MIN_VERSION || v > MAX_VERSION {
                    return self.fail();
                }
                self.minor = b[1];
                self.expect(State::Sizes, 3);
            }
            State::Sizes => {
                let (int_size, off_size) = (usize::from(b[0]), usize::from(b[1]));
                if !(1..=8).contains(&int_size) || !(1..=8).contains(&off_size) {
                    return self.fail();
                }
                if b[2] != FORMAT_CUSTOM {
                    return self.fail();
                }
                self.int_size = int_size;
                self.off_size = off_size;
                self.fields = entry_fields(self.minor);
                if self.minor >= 15 {
                    self.expect(State::Compression, 1);
                } else {
                    self.expect_int(State::Compression);
                }
            }
            State::Compression => self.expect_int(State::Time(0)),
            State::Time(k) => {
                if k < 6 {
                    self.expect_int(State::Time(k + 1));
                } else {
                    self.expect_int(State::HeaderStr(0));
                }
            }
            State::HeaderStr(k) => {
                self.skip_str(self.int(b));
                if k < 2 {
                    self.expect_int(State::HeaderStr(k + 1));
                } else {
                    self.expect_int(State::TocCount);
                }
            }
            State::TocCount => {
                self.entries_left = self.int(b);
                if self.entries_left < 0 {
                    return self.fail();
                }
                if self.entries_left == 0 {
                    self.expect(State::Block, 1);
                } else {
                    self.expect_int(State::Entry(0));
                }
            }
            State::Entry(n) => {
                let v = self.int(b);
                if n == 0 {
                    if v <= 0 {
                        return self.fail();
                    }
                    self.entry_id = v;
                }
                if self.fields[n] == Field::Str {
                    self.skip_str(v);
                }
                self.next_entry_field(n + 1);
            }
            State::Deps => {
                let len = self.int(b);
                if len < 0 {
                    let n = 1 + self.off_size;
                    self.expect(State::Offset, n);
                } else {
                    self.skip_str(len);
                    self.expect_int(State::Deps);
                }
            }
            State::Offset => {
                if b[0] == OFFSET_NOT_SET {
                    let at = self.pos - b.len() as u64;
                    self.slots.push((self.entry_id, at));
                }
                self.entries_left -= 1;
                if self.entries_left > 0 {
                    self.expect_int(State::Entry(0));
                } else {
                    self.expect(State::Block, 1);
                }
            }
            State::Block => {
                let at = self.pos - 1;
                match b[0] {
                    BLK_DATA => self.expect_int(State::BlockId { blobs: false, at }),
                    BLK_BLOBS => self.expect_int(State::BlockId { blobs: true, at }),
                    _ => self.fail(),
                }
            }
            State::BlockId { blobs, at } => {
                self.blocks.insert(self.int(b), at);
                if blobs {
                    self.expect_int(State::BlobOid);
                } else {
                    self.expect_int(State::Chunk { blobs: false });
                }
            }
            State::Chunk { blobs } => match self.int(b) {
                0 if blobs => self.expect_int(State::BlobOid),
                0 => self.expect(State::Block, 1),
                len if len > 0 => self.skip = len as u64,
                _ => self.fail(),
            },
            State::BlobOid => {
                if self.int(b) == 0 {
                    self.expect(State::Block, 1);
                } else {
                    self.expect_int(State::Chunk { blobs: true });
                }
            }
            State::Failed => {}
        }
    }
}

/// The fixed fields of a TOC entry for archive version 1.`minor` (1.12 or later), before its
/// dependency list: dump id, had-dumper flag, table OID, OID, tag, description, section,
/// definition, drop statement, COPY statement, schema, tablespace, [table AM (1.14)],
/// [relkind (1.16)], owner, "with OIDs".
fn entry_fields(minor: u8) -> Vec<Field> {
    use Field::{Int, Str};
    let mut f = vec![Int, Int, Str, Str, Str, Str, Int, Str, Str, Str, Str, Str];
    if minor >= 14 {
        f.push(Str);
    }
    if minor >= 16 {
        f.push(Int);
    }
    f.extend([Str, Str]);
    f
}

/// The data offsets of one archive, from [`DataOffsets::finish`]: each a flag byte and the
/// offset, to write over an entry's "not set" offset field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetPatches(Vec<(u64, Vec<u8>)>);

impl OffsetPatches {
    /// How many TOC entries get their data offset.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing is to be written (the archive was not followed to its end).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Writes the offsets into the archive file at `path` (the bytes that were followed), in
    /// place. Blocking.
    pub fn apply(&self, path: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new().write(true).open(path)?;
        for (at, bytes) in &self.0 {
            file.write_all_at(bytes, *at)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An archive int as pg_dump writes it (4-byte ints).
    fn int(v: i64) -> Vec<u8> {
        let mut b = vec![u8::from(v < 0)];
        b.extend_from_slice(&(v.unsigned_abs() as u32).to_le_bytes());
        b
    }

    fn str(s: Option<&str>) -> Vec<u8> {
        match s {
            None => int(-1),
            Some(s) => [int(s.len() as i64), s.as_bytes().to_vec()].concat(),
        }
    }

    /// A small archive of version 1.`minor`, as pg_dump writes it to a pipe: three TOC
    /// entries (a schema without data, a table with data, a BLOBS entry), the table's data
    /// block in two chunks, and a BLOBS block with one large object. Returns the archive, the
    /// position of the table entry's offset flag, and where its data block starts.
    fn archive_v(minor: u8) -> (Vec<u8>, u64, u64) {
        let mut a = b"PGDMP".to_vec();
        a.extend([1, minor, 0, 4, 8, FORMAT_CUSTOM]);
        if minor >= 15 {
            a.push(0); // compression algorithm: none
        } else {
            a.extend(int(0)); // compression level
        }
        for t in [1, 2, 3, 4, 5, 125, 0] {
            a.extend(int(t));
        }
        for s in ["db", "15.1", "15.1"] {
            a.extend(str(Some(s)));
        }
        a.extend(int(3));
        let mut table_slot = 0;
        for (id, desc, had, flag) in [
            (7, "SCHEMA", 0, 3u8),
            (9, "TABLE DATA", 1, OFFSET_NOT_SET),
            (10, "BLOBS", 1, OFFSET_NOT_SET),
        ] {
            a.extend(int(id));
            a.extend(int(had));
            for s in [Some("1259"), Some("16386"), Some("t"), Some(desc)] {
                a.extend(str(s));
            }
            a.extend(int(2));
            for s in [
                Some("CREATE ..."),
                None,
                Some("COPY t FROM stdin;\n"),
                Some("public"),
            ] {
                a.extend(str(s));
            }
            a.extend(str(Some(""))); // tablespace
            if minor >= 14 {
                a.extend(str(Some("heap")));
            }
            if minor >= 16 {
                a.extend(int(i64::from(b'r'))); // relkind
            }
            a.extend(str(Some("alice")));
            a.extend(str(Some("false")));
            a.extend(str(Some("3")));
            a.extend(str(None));
            if id == 9 {
                table_slot = a.len() as u64;
            }
            a.push(flag);
            a.extend([0u8; 8]);
        }
        let table_block = a.len() as u64;
        a.push(BLK_DATA);
        a.extend(int(9));
        for row in ["1\tone\n", "2\ttwo\n"] {
            a.extend(str(Some(row)));
        }
        a.extend(int(0));
        a.push(BLK_BLOBS);
        a.extend(int(10));
        a.extend(int(16400)); // a large object
        a.extend(str(Some("hello")));
        a.extend(int(0));
        a.extend(int(0)); // end of BLOBS
        (a, table_slot, table_block)
    }

    fn archive() -> (Vec<u8>, u64, u64) {
        archive_v(14)
    }

    fn patches_of(a: &[u8], chunk: usize) -> Vec<(u64, Vec<u8>)> {
        let mut o = DataOffsets::new();
        for c in a.chunks(chunk) {
            o.feed(c);
        }
        o.finish().0
    }

    #[test]
    fn every_table_with_data_gets_its_block_offset_in_any_chunking() {
        let (a, slot, block) = archive();
        let whole = patches_of(&a, a.len());
        assert_eq!(
            whole.len(),
            2,
            "the table and the BLOBS entry, not the schema"
        );
        let mut expected = vec![OFFSET_SET];
        expected.extend_from_slice(&block.to_le_bytes());
        assert_eq!(whole[0], (slot, expected));
        for chunk in [1, 2, 3, 7, 64] {
            assert_eq!(patches_of(&a, chunk), whole, "chunks of {chunk} bytes");
        }
    }

    #[test]
    fn each_known_archive_version_is_followed() {
        // 1.12/1.13 (no table AM), 1.14 (PostgreSQL 12-15), 1.15 (16: compression byte),
        // 1.16 (17, 18: relkind).
        for minor in 12..=16 {
            let (a, slot, block) = archive_v(minor);
            let patches = patches_of(&a, 5);
            assert_eq!(patches.len(), 2, "version 1.{minor}");
            assert_eq!(patches[0].0, slot, "version 1.{minor}");
            assert_eq!(patches[0].1[1..], block.to_le_bytes(), "version 1.{minor}");
        }
    }

    #[test]
    fn a_truncated_or_damaged_archive_is_left_as_it_is() {
        let (a, _, block) = archive();
        assert!(patches_of(&a[..a.len() - 3], 64).is_empty(), "truncated");
        let mut bad = a.clone();
        bad[block as usize] = 9; // an unknown block type
        assert!(patches_of(&bad, 64).is_empty(), "unknown block");
        let mut newer = a.clone();
        newer[6] = 17; // archive version 1.17: a layout not known here
        assert!(patches_of(&newer, 64).is_empty(), "unknown version");
        assert!(
            patches_of(b"-- plain SQL\n", 64).is_empty(),
            "not an archive"
        );
    }
}
