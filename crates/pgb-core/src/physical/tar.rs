//! A streaming tar reader over chunks as they pass: headers are parsed, file contents handed
//! on in the pieces they arrived in, never buffered. Used while a base backup streams (to
//! capture `backup_label` and `backup_manifest`), while it is verified (each file hashed) and
//! while it is extracted.
//!
//! Reads what `pg_basebackup -Ft` writes (ustar) and, to be safe with other writers, GNU long
//! names (`L`/`K`) and pax headers (`x`: `path`, `linkpath`, `size`). Each header's checksum
//! is checked, so a damaged header is an error rather than a misread.

use std::fmt;

/// One tar block.
pub(crate) const BLOCK: usize = 512;
/// The largest GNU long name or pax header read (a longer one is an error).
const MAX_META: usize = 64 * 1024;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind {
    /// A regular file (`0`, NUL, `7`).
    File,
    /// A directory (`5`).
    Directory,
    /// A symbolic link (`2`).
    Symlink,
    /// A hard link (`1`).
    HardLink,
    /// Anything else (devices, FIFOs): its type flag.
    Other(u8),
}

/// An entry's header, with long names and pax values applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryHeader {
    /// The path as stored, less a leading `./` (raw bytes: names need not be UTF-8).
    pub(crate) path: Vec<u8>,
    /// What it is.
    pub(crate) kind: EntryKind,
    /// Bytes of content that follow.
    pub(crate) size: u64,
    /// Permission bits.
    pub(crate) mode: u32,
    /// A link's target.
    pub(crate) link: Option<Vec<u8>>,
}

impl EntryHeader {
    /// The path for messages.
    pub(crate) fn shown(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
}

/// What the reader found, in order.
#[derive(Debug)]
pub(crate) enum TarEvent<'a> {
    /// An entry starts.
    Entry(&'a EntryHeader),
    /// A piece of the current entry's content.
    Data(&'a [u8]),
    /// The current entry's content is complete.
    EntryEnd,
}

/// The stream is not a tar archive, or is damaged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct TarError(pub(crate) String);

fn bad(what: impl fmt::Display) -> TarError {
    TarError(what.to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a header block.
    Header,
    /// Reading `remaining` bytes of the current entry's content, then `padding`.
    Data,
    /// Reading a GNU long name / long link / pax header's content.
    Meta(u8),
    /// Skipping the padding after content.
    Padding,
    /// The end-of-archive marker was seen; only zeros may follow.
    End,
}

/// Values a long-name or pax entry gives the next entry.
#[derive(Debug, Default)]
struct Pending {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    size: Option<u64>,
}

/// The reader (see the [module docs](self)).
#[derive(Debug)]
pub(crate) struct TarReader {
    state: State,
    block: Vec<u8>,
    current: Option<EntryHeader>,
    remaining: u64,
    padding: u64,
    meta: Vec<u8>,
    pending: Pending,
    /// Bytes consumed so far (for messages).
    offset: u64,
}

impl Default for TarReader {
    fn default() -> Self {
        Self::new()
    }
}

impl TarReader {
    pub(crate) fn new() -> Self {
        Self {
            state: State::Header,
            block: Vec::with_capacity(BLOCK),
            current: None,
            remaining: 0,
            padding: 0,
            meta: Vec::new(),
            pending: Pending::default(),
            offset: 0,
        }
    }

    /// Feeds the next bytes of the archive; `on` receives the events they complete.
    ///
    /// # Errors
    /// A damaged or non-tar stream, or the first error `on` returns.
    pub(crate) fn feed<E: From<TarError>>(
        &mut self,
        mut data: &[u8],
        on: &mut impl FnMut(TarEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        while !data.is_empty() {
            match self.state {
                State::Header | State::End => {
                    let take = (BLOCK - self.block.len()).min(data.len());
                    self.block.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    self.offset += take as u64;
                    if self.block.len() == BLOCK {
                        let block = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
                        self.header(&block, on)?;
                    }
                }
                State::Data => {
                    let take = usize::try_from(self.remaining)
                        .unwrap_or(usize::MAX)
                        .min(data.len());
                    if take > 0 {
                        on(TarEvent::Data(&data[..take]))?;
                    }
                    data = &data[take..];
                    self.offset += take as u64;
                    self.remaining -= take as u64;
                    if self.remaining == 0 {
                        self.current = None;
                        on(TarEvent::EntryEnd)?;
                        self.state = State::Padding;
                    }
                }
                State::Meta(kind) => {
                    let take = usize::try_from(self.remaining)
                        .unwrap_or(usize::MAX)
                        .min(data.len());
                    self.meta.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    self.offset += take as u64;
                    self.remaining -= take as u64;
                    if self.remaining == 0 {
                        self.apply_meta(kind)?;
                        self.state = State::Padding;
                    }
                }
                State::Padding => {
                    let take = usize::try_from(self.padding)
                        .unwrap_or(usize::MAX)
                        .min(data.len());
                    data = &data[take..];
                    self.offset += take as u64;
                    self.padding -= take as u64;
                    if self.padding == 0 {
                        self.state = State::Header;
                    }
                }
            }
            if self.state == State::Padding && self.padding == 0 {
                self.state = State::Header;
            }
        }
        Ok(())
    }

    /// Checks that the archive ended properly (its end marker seen, no entry cut short).
    ///
    /// # Errors
    /// A truncated archive.
    pub(crate) fn finish(&self) -> Result<(), TarError> {
        match self.state {
            State::End if self.block.is_empty() || self.block.iter().all(|b| *b == 0) => Ok(()),
            State::End => Err(bad("the archive ends in the middle of a block")),
            _ => Err(bad(format_args!(
                "the archive is truncated at byte {}: no end-of-archive marker{}",
                self.offset,
                self.current
                    .as_ref()
                    .map(|h| format!(" (inside {})", h.shown()))
                    .unwrap_or_default()
            ))),
        }
    }

    fn header<E: From<TarError>>(
        &mut self,
        block: &[u8],
        on: &mut impl FnMut(TarEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let at = self.offset - BLOCK as u64;
        if block.iter().all(|b| *b == 0) {
            if self.state == State::Header
                && (self.pending.path.is_some() || self.pending.size.is_some())
            {
                return Err(bad("the archive ends after a long-name or pax header").into());
            }
            self.state = State::End;
            return Ok(());
        }
        if self.state == State::End {
            return Err(bad(format_args!(
                "data after the end-of-archive marker at byte {at}"
            ))
            .into());
        }
        if !checksum_ok(block) {
            return Err(bad(format_args!(
                "damaged tar header at byte {at} (checksum mismatch)"
            ))
            .into());
        }
        let flag = block[156];
        let mut size = octal(&block[124..136]).ok_or_else(|| {
            bad(format_args!(
                "unreadable size in the tar header at byte {at}"
            ))
        })?;
        let mode = octal(&block[100..108]).unwrap_or(0o600) as u32;
        let padded = |n: u64| (BLOCK as u64 - n % BLOCK as u64) % BLOCK as u64;
        if matches!(flag, b'L' | b'K' | b'x') {
            if size > MAX_META as u64 {
                return Err(bad(format_args!(
                    "a tar extended header of {size} bytes at byte {at}"
                ))
                .into());
            }
            self.meta.clear();
            self.remaining = size;
            self.padding = padded(size);
            self.state = if size == 0 {
                State::Padding
            } else {
                State::Meta(flag)
            };
            if size == 0 {
                self.apply_meta(flag)?;
            }
            return Ok(());
        }
        if flag == b'g' {
            // A pax global header: nothing pgb needs; skip its content.
            self.remaining = 0;
            self.padding = size + padded(size);
            self.state = State::Padding;
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        if let Some(s) = pending.size {
            size = s;
        }
        let kind = match flag {
            b'0' | 0 | b'7' => EntryKind::File,
            b'5' => EntryKind::Directory,
            b'2' => EntryKind::Symlink,
            b'1' => EntryKind::HardLink,
            other => EntryKind::Other(other),
        };
        if matches!(
            kind,
            EntryKind::Directory | EntryKind::Symlink | EntryKind::HardLink
        ) {
            size = 0;
        }
        let path = match pending.path {
            Some(p) => p,
            None => {
                let name = cstr(&block[0..100]);
                let prefix = if &block[257..262] == b"ustar" && block[262] == 0 {
                    cstr(&block[345..500])
                } else {
                    &[][..]
                };
                if prefix.is_empty() {
                    name.to_vec()
                } else {
                    [prefix, b"/", name].concat()
                }
            }
        };
        let link = match kind {
            EntryKind::Symlink | EntryKind::HardLink => Some(
                pending
                    .link
                    .unwrap_or_else(|| cstr(&block[157..257]).to_vec()),
            ),
            _ => None,
        };
        let header = EntryHeader {
            path: normalize(&path),
            kind,
            size,
            mode,
            link,
        };
        on(TarEvent::Entry(&header))?;
        self.remaining = size;
        self.padding = padded(size);
        if size == 0 {
            on(TarEvent::EntryEnd)?;
            self.state = State::Padding;
        } else {
            self.current = Some(header);
            self.state = State::Data;
        }
        Ok(())
    }

    fn apply_meta(&mut self, kind: u8) -> Result<(), TarError> {
        let meta = std::mem::take(&mut self.meta);
        match kind {
            b'L' => self.pending.path = Some(cstr(&meta).to_vec()),
            b'K' => self.pending.link = Some(cstr(&meta).to_vec()),
            _ => {
                for (key, value) in pax_records(&meta)? {
                    match key {
                        b"path" => self.pending.path = Some(value.to_vec()),
                        b"linkpath" => self.pending.link = Some(value.to_vec()),
                        b"size" => {
                            let s = std::str::from_utf8(value)
                                .ok()
                                .and_then(|s| s.parse().ok())
                                .ok_or_else(|| bad("an unreadable size in a pax header"))?;
                            self.pending.size = Some(s);
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }
}

/// A pax header's `key=value`.
type PaxRecord<'a> = (&'a [u8], &'a [u8]);

/// `len key=value\n` records of a pax header.
fn pax_records(mut data: &[u8]) -> Result<Vec<PaxRecord<'_>>, TarError> {
    let mut out = Vec::new();
    while !data.is_empty() && data[0] != 0 {
        let sp = data
            .iter()
            .position(|b| *b == b' ')
            .ok_or_else(|| bad("a malformed pax header"))?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|l| *l > sp + 1 && *l <= data.len())
            .ok_or_else(|| bad("a malformed pax header"))?;
        let record = &data[sp + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        let eq = record
            .iter()
            .position(|b| *b == b'=')
            .ok_or_else(|| bad("a malformed pax header"))?;
        out.push((&record[..eq], &record[eq + 1..]));
        data = &data[len..];
    }
    Ok(out)
}

/// Bytes up to the first NUL.
fn cstr(b: &[u8]) -> &[u8] {
    b.iter().position(|c| *c == 0).map_or(b, |n| &b[..n])
}

/// A path less its leading `./` (and `/` at the end of a directory).
fn normalize(path: &[u8]) -> Vec<u8> {
    let mut p = path;
    while let Some(rest) = p.strip_prefix(b"./") {
        p = rest;
    }
    let p = p.strip_suffix(b"/").unwrap_or(p);
    if p == b"." {
        return Vec::new();
    }
    p.to_vec()
}

/// An octal field (or GNU base-256 for large numbers).
fn octal(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut n: u64 = u64::from(field[0] & 0x7f);
        for b in &field[1..] {
            n = n.checked_mul(256)?.checked_add(u64::from(*b))?;
        }
        return Some(n);
    }
    let s = std::str::from_utf8(cstr(field))
        .ok()?
        .trim_matches(|c| c == ' ' || c == '\0');
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

/// Whether a header's checksum (its bytes summed with the checksum field as spaces) matches.
fn checksum_ok(block: &[u8]) -> bool {
    let Some(stored) = octal(&block[148..156]) else {
        return false;
    };
    let sum: u64 = block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(*b)
            }
        })
        .sum();
    sum == stored
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn read_all(bytes: &[u8], piece: usize) -> Result<Vec<(String, Vec<u8>)>, TarError> {
        let mut r = TarReader::new();
        let mut out: Vec<(String, Vec<u8>)> = Vec::new();
        for chunk in bytes.chunks(piece) {
            r.feed(chunk, &mut |e| {
                match e {
                    TarEvent::Entry(h) => out.push((h.shown(), Vec::new())),
                    TarEvent::Data(d) => out.last_mut().unwrap().1.extend_from_slice(d),
                    TarEvent::EntryEnd => {}
                }
                Ok::<_, TarError>(())
            })?;
        }
        r.finish()?;
        Ok(out)
    }

    #[test]
    fn reads_entries_in_any_chunking() {
        let long = "d/".repeat(80) + "file";
        let data = archive(&[
            ("./backup_label", b"START WAL LOCATION: 0/2000028\n"),
            ("empty", b""),
            (&long, &[7u8; 1500]),
        ]);
        for piece in [1, 7, 511, 512, 513, 4096, data.len()] {
            let got = read_all(&data, piece).unwrap();
            assert_eq!(got.len(), 3);
            assert_eq!(got[0].0, "backup_label");
            assert_eq!(got[0].1, b"START WAL LOCATION: 0/2000028\n");
            assert_eq!(got[1], ("empty".to_owned(), Vec::new()));
            assert_eq!(got[2].0, long);
            assert_eq!(got[2].1, vec![7u8; 1500]);
        }
    }

    #[test]
    fn truncation_and_damage_are_errors() {
        let data = archive(&[("a", &[1u8; 2000])]);
        let cut = &data[..1024];
        assert!(read_all(cut, 100).unwrap_err().0.contains("truncated"));
        let mut damaged = data.clone();
        damaged[10] ^= 1;
        assert!(read_all(&damaged, 100).unwrap_err().0.contains("checksum"));
        assert!(read_all(b"not a tar archive at all", 5).is_err());
        let mut appended = data.clone();
        appended.extend_from_slice(&data[..512]);
        assert!(
            read_all(&appended, 512)
                .unwrap_err()
                .0
                .contains("after the end")
        );
    }
}
