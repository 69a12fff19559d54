//! `pgb wal stream`'s uploader: the files a WAL receiver (`pg_receivewal`) writes into a
//! spool directory, into the archive.
//!
//! - A **completed** segment (`000000010000000A000000FF`) or timeline history file
//!   (`00000002.history`) goes through [`WalArchive::push_file`], exactly as `pgb wal push`
//!   stores it (create-only, identical content already archived succeeds). Only after that
//!   commit is it removed from the spool, so a crash, a SIGKILL or a store that is down
//!   leaves it there for the next pass (or the next run: [`SpoolUploader::upload_completed`]
//!   runs before the receiver starts). The newest completed segment stays in the spool
//!   (uploaded, remembered) so that the receiver, restarted, continues after it and not from
//!   the server's current position.
//! - The **current partial** segment (`000000010000000A000000FF.partial`, the one the
//!   receiver writes into) is stored every few seconds under its own name,
//!   `wal/<system id>/<TLI>/<name>.partial`, **replaced** each time (the same object format
//!   as every archived file). It never has a segment's name: `wal fetch` of the segment does
//!   not find it, so a restore to the end of the archive stops at the last completed segment
//!   unless the partial is fetched and renamed by hand. Once the segment is complete and
//!   archived, the partial object is deleted.
//! - A partial that is **not** the newest file of the spool is final: the last segment of a
//!   timeline a promotion ended (the receiver keeps it as `.partial` and follows the new
//!   timeline). It is stored the same way, under its old timeline, and removed from the spool.
//!
//! Files the receiver is still writing (`*.tmp`) and names that are not WAL are left alone.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use pgb_wal::{WalFileKind, WalFileName};

use super::push::stored_object;
use super::{WalArchive, WalError, WalPushOptions, WalPushReport, object};
use crate::storage::{StorageErrorKind, StorageExt, WriteOptions};

/// One upload of a partial segment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct PartialUpload {
    /// The partial segment's file name (`...FF.partial`).
    pub file: String,
    /// Where it is stored (replaced by the next upload).
    pub key: String,
    /// Bytes of the file.
    pub plain_size: u64,
    /// Whether it is the final partial of an ended timeline (removed from the spool).
    pub final_of_timeline: bool,
}

/// What one pass over the spool did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct SpoolPass {
    /// Completed segments and history files archived (or found archived) in this pass.
    pub archived: Vec<WalPushReport>,
    /// Partial segments stored in this pass.
    pub partials: Vec<PartialUpload>,
}

/// Uploads what a WAL receiver writes into a spool directory (see the module's documentation).
#[derive(Debug)]
pub struct SpoolUploader {
    archive: WalArchive,
    spool: PathBuf,
    opts: WalPushOptions,
    /// Completed segments of the spool already archived (kept there as the restart point).
    archived: BTreeSet<String>,
    /// The sha256 of the partial last stored, by file name.
    last_partial: Option<(String, String)>,
}

/// A file of the spool, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SpoolFile {
    name: WalFileName,
    path: PathBuf,
}

impl SpoolUploader {
    /// An uploader from `spool` into `archive`. `opts` must name the cluster
    /// ([`WalPushOptions::with_system_identifier`]): history files carry no header.
    pub fn new(archive: WalArchive, spool: impl Into<PathBuf>, opts: WalPushOptions) -> Self {
        Self {
            archive,
            spool: spool.into(),
            opts,
            archived: BTreeSet::new(),
            last_partial: None,
        }
    }

    /// The spool directory.
    pub fn spool(&self) -> &Path {
        &self.spool
    }

    /// The WAL files in the spool, by (segment position, timeline), history files first.
    async fn files(&self) -> Result<Vec<SpoolFile>, WalError> {
        let io = |source| WalError::Io {
            path: self.spool.clone(),
            source,
        };
        let mut entries = tokio::fs::read_dir(&self.spool).await.map_err(io)?;
        let mut out = Vec::new();
        while let Some(e) = entries.next_entry().await.map_err(io)? {
            let Some(n) = e.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if let Ok(name) = n.parse::<WalFileName>()
                && matches!(
                    name.kind(),
                    WalFileKind::Segment | WalFileKind::Partial | WalFileKind::TimelineHistory
                )
            {
                out.push(SpoolFile {
                    path: e.path(),
                    name,
                });
            }
        }
        out.sort_by_key(|a| order(&a.name));
        Ok(out)
    }

    /// Archives every completed segment and history file of the spool, oldest first, and
    /// removes each from the spool once archived (but the newest segment, see the module's
    /// documentation); stores the final partial of an ended timeline. Stops at the first
    /// failure: what is left stays in the spool for the next pass.
    ///
    /// # Errors
    /// As [`WalArchive::push_file`]; [`WalError::Io`] for the spool.
    pub async fn upload_completed(&mut self) -> Result<SpoolPass, WalError> {
        let files = self.files().await?;
        let newest_segment = files
            .iter()
            .filter(|f| f.name.kind() == WalFileKind::Segment)
            .map(|f| order(&f.name))
            .max();
        let newest_any = files.iter().map(|f| order(&f.name)).max();
        let mut pass = SpoolPass::default();
        for f in &files {
            match f.name.kind() {
                WalFileKind::Segment | WalFileKind::TimelineHistory => {
                    if !self.archived.contains(f.name.as_str()) {
                        let report = self.archive.push_file(&f.path, &self.opts).await?;
                        self.drop_partial_of(&f.name).await?;
                        self.archived.insert(f.name.to_string());
                        pass.archived.push(report);
                    }
                    // The newest completed segment is the receiver's restart point.
                    if Some(order(&f.name)) != newest_segment {
                        remove(&f.path).await?;
                        self.archived.remove(f.name.as_str());
                    }
                }
                WalFileKind::Partial if Some(order(&f.name)) != newest_any => {
                    // Final: a timeline ended inside this segment.
                    let upload = self.store_partial(f, true).await?;
                    remove(&f.path).await?;
                    pass.partials.extend(upload);
                }
                _ => {}
            }
        }
        Ok(pass)
    }

    /// Stores the current partial segment (the newest file of the spool, when it is a
    /// partial) if it changed since it was last stored.
    ///
    /// # Errors
    /// As [`WalArchive::push`]; [`WalError::Io`] for the spool.
    pub async fn upload_partial(&mut self) -> Result<Option<PartialUpload>, WalError> {
        let files = self.files().await?;
        match files.last() {
            Some(f) if f.name.kind() == WalFileKind::Partial => self.store_partial(f, false).await,
            _ => Ok(None),
        }
    }

    /// Stores partial segment `f`, replacing an earlier upload; `None` when unchanged.
    async fn store_partial(
        &mut self,
        f: &SpoolFile,
        final_of_timeline: bool,
    ) -> Result<Option<PartialUpload>, WalError> {
        let contents = match tokio::fs::read(&f.path).await {
            Ok(c) => Bytes::from(c),
            // Renamed to the completed segment meanwhile: the next pass archives it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(WalError::Io {
                    path: f.path.clone(),
                    source,
                });
            }
        };
        // The receiver creates the file zero-filled and writes the first page when the
        // segment's first record arrives: nothing to store yet.
        if contents.iter().take(40).all(|b| *b == 0) {
            return Ok(None);
        }
        let sha = object::sha256_hex(&contents);
        let name = f.name.as_str();
        if self
            .last_partial
            .as_ref()
            .is_some_and(|(n, s)| n == name && *s == sha)
        {
            return Ok(None);
        }
        let (key, system_identifier) = WalArchive::checked_key(name, &contents, &self.opts)?;
        let stored = stored_object(name, system_identifier, &contents, &sha, &self.opts).await?;
        self.archive
            .storage
            .put(&key, Bytes::from(stored), WriteOptions::default())
            .await?;
        tracing::debug!(file = name, key = %key, "partial WAL segment stored");
        self.last_partial = Some((name.to_owned(), sha));
        Ok(Some(PartialUpload {
            file: name.to_owned(),
            key: key.to_string(),
            plain_size: contents.len() as u64,
            final_of_timeline,
        }))
    }

    /// Deletes the stored partial of `segment` (superseded once the segment is archived).
    async fn drop_partial_of(&mut self, segment: &WalFileName) -> Result<(), WalError> {
        if segment.kind() != WalFileKind::Segment {
            return Ok(());
        }
        let Ok(partial) = format!("{}.partial", segment.as_str()).parse::<WalFileName>() else {
            return Ok(());
        };
        let Some(system_identifier) = self.opts.system_identifier else {
            return Ok(());
        };
        let key = crate::layout::wal_key(system_identifier, &partial);
        match self.archive.storage.delete(&key).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == StorageErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// The order of the spool's files: by segment position, then timeline; a timeline's history
/// file before its first segment (at the position of the newest segment before it).
fn order(name: &WalFileName) -> (u64, u32, u8, String) {
    // Segment numbers need the segment size; the raw name's last 16 digits order the same
    // way for any size.
    let s = name.as_str();
    let pos = match name.kind() {
        WalFileKind::TimelineHistory => 0,
        _ => u64::from_str_radix(&s[8..24], 16).unwrap_or(0),
    };
    let rank = match name.kind() {
        WalFileKind::TimelineHistory => 0,
        WalFileKind::Segment => 1,
        _ => 2,
    };
    (pos, name.timeline(), rank, s.to_owned())
}

async fn remove(path: &Path) -> Result<(), WalError> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(WalError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(names: &[&str]) -> Vec<String> {
        let mut files: Vec<WalFileName> = names.iter().map(|n| n.parse().unwrap()).collect();
        files.sort_by_key(order);
        files.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_spool_is_walked_by_position_then_timeline_history_files_first() {
        // After a promotion inside segment 5: timeline 1's last segment stays a partial,
        // timeline 2 continues in segment 5 (complete) and 6 (being received).
        assert_eq!(
            sorted(&[
                "000000020000000000000006.partial",
                "000000020000000000000005",
                "000000010000000000000005.partial",
                "00000002.history",
                "000000010000000000000004",
            ]),
            [
                "00000002.history",
                "000000010000000000000004",
                "000000010000000000000005.partial",
                "000000020000000000000005",
                "000000020000000000000006.partial",
            ]
        );
        // The segment being received is the newest; a completed one of the same position on
        // the same timeline cannot exist beside it (pg_receivewal renames the partial).
        assert_eq!(
            sorted(&[
                "000000010000000A00000001.partial",
                "0000000100000009000000FF"
            ]),
            [
                "0000000100000009000000FF",
                "000000010000000A00000001.partial"
            ]
        );
    }
}
