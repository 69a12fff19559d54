//! Following a base backup's tar while it streams into the pipeline: `backup_label` and
//! `backup_manifest` (small files) are kept, everything else only passes through.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::pgfiles::{BackupLabel, BackupManifest};
use super::tar::{TarError, TarEvent, TarReader};
use crate::dump::{DumpError, DumpErrorKind, DumpSource, DumpStream, PreparedDump};

/// The largest `backup_label` kept.
const MAX_LABEL: usize = 64 * 1024;
/// The largest `backup_manifest` kept (about 200 bytes per file of the cluster: over a
/// million files).
pub(crate) const MAX_BACKUP_MANIFEST: usize = 256 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    Label,
    Manifest,
}

/// What the follower saw (shared between the stream in the pipeline and the backup).
#[derive(Debug, Default)]
pub(crate) struct Capture {
    reader: TarReader,
    keeping: Option<Keep>,
    label: Option<Vec<u8>>,
    manifest: Option<Vec<u8>>,
    buf: Vec<u8>,
    ended_at: Option<OffsetDateTime>,
    /// The stream stopped while the server waited for the WAL archive.
    pub(crate) stalled: bool,
}

/// What a complete base backup stream held.
#[derive(Debug, Clone)]
pub(crate) struct Captured {
    pub(crate) label: BackupLabel,
    pub(crate) manifest: BackupManifest,
    pub(crate) manifest_sha256: String,
    pub(crate) ended_at: OffsetDateTime,
}

impl Capture {
    fn feed(&mut self, chunk: &[u8]) -> Result<(), TarError> {
        let Self {
            reader,
            keeping,
            label,
            manifest,
            buf,
            ..
        } = self;
        reader.feed(chunk, &mut |e| {
            match e {
                TarEvent::Entry(h) => {
                    *keeping = match h.path.as_slice() {
                        b"backup_label" => Some(Keep::Label),
                        b"backup_manifest" => Some(Keep::Manifest),
                        _ => None,
                    };
                    let limit = match keeping {
                        Some(Keep::Label) => MAX_LABEL,
                        Some(Keep::Manifest) => MAX_BACKUP_MANIFEST,
                        None => 0,
                    };
                    if keeping.is_some() && h.size > limit as u64 {
                        return Err(TarError(format!(
                            "{} is {} bytes, over pgb's limit of {limit}",
                            h.shown(),
                            h.size
                        )));
                    }
                    buf.clear();
                }
                TarEvent::Data(d) => {
                    if keeping.is_some() {
                        buf.extend_from_slice(d);
                    }
                }
                TarEvent::EntryEnd => match keeping.take() {
                    Some(Keep::Label) => *label = Some(std::mem::take(buf)),
                    Some(Keep::Manifest) => *manifest = Some(std::mem::take(buf)),
                    None => {}
                },
            }
            Ok(())
        })
    }

    /// The backup's `backup_label`, once it passed (it is the stream's first file).
    pub(crate) fn label(&self) -> Option<BackupLabel> {
        self.label
            .as_deref()
            .and_then(|l| BackupLabel::parse(l).ok())
    }

    /// The label and manifest, once the stream ended.
    pub(crate) fn captured(&self) -> Result<Captured, String> {
        let ended_at = self
            .ended_at
            .ok_or_else(|| "the base backup stream did not end".to_owned())?;
        let label = self
            .label
            .as_deref()
            .ok_or_else(|| "the base backup holds no backup_label".to_owned())?;
        let manifest = self.manifest.as_deref().ok_or_else(|| {
            "the base backup holds no backup_manifest (is the base backup tool too old, or run with --no-manifest?)".to_owned()
        })?;
        Ok(Captured {
            label: BackupLabel::parse(label).map_err(|e| e.0)?,
            manifest: BackupManifest::parse(manifest).map_err(|e| e.0)?,
            manifest_sha256: crate::codec::hex(&Sha256::digest(manifest)),
            ended_at,
        })
    }
}

fn lock(c: &Mutex<Capture>) -> std::sync::MutexGuard<'_, Capture> {
    c.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A prepared base backup whose stream is followed into a [`Capture`].
#[derive(Debug)]
pub(crate) struct FollowedDump {
    inner: Box<dyn PreparedDump>,
    capture: Arc<Mutex<Capture>>,
    stall: Option<Duration>,
}

impl FollowedDump {
    /// Follows `inner`. With `stall`, a stream that passes nothing for that long once data
    /// flowed fails, marked [`Capture::stalled`]: with the WAL left to the archive, the one
    /// long pause after the start is the server's wait for its archiver at the end (which
    /// PostgreSQL would otherwise prolong forever while `archive_command` fails). The last
    /// file of the data directory may still sit in the tool's buffers then, so the stall
    /// cannot be told by what passed.
    pub(crate) fn new(
        inner: Box<dyn PreparedDump>,
        stall: Option<Duration>,
    ) -> (Self, Arc<Mutex<Capture>>) {
        let capture = Arc::new(Mutex::new(Capture::default()));
        (
            Self {
                inner,
                capture: Arc::clone(&capture),
                stall,
            },
            capture,
        )
    }
}

#[async_trait]
impl PreparedDump for FollowedDump {
    fn source(&self) -> &DumpSource {
        self.inner.source()
    }

    async fn start(self: Box<Self>) -> Result<Box<dyn DumpStream>, DumpError> {
        let inner = self.inner.start().await?;
        Ok(Box::new(FollowedStream {
            inner,
            capture: self.capture,
            stall: self.stall,
            flowing: false,
        }))
    }
}

#[derive(Debug)]
struct FollowedStream {
    inner: Box<dyn DumpStream>,
    capture: Arc<Mutex<Capture>>,
    stall: Option<Duration>,
    /// Data passed already (the server's checkpoint at the start may take long).
    flowing: bool,
}

#[async_trait]
impl DumpStream for FollowedStream {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, DumpError> {
        let armed = self.stall.filter(|_| self.flowing);
        let next = match armed {
            Some(wait) => match tokio::time::timeout(wait, self.inner.next_chunk()).await {
                Ok(r) => r,
                Err(_) => {
                    lock(&self.capture).stalled = true;
                    return Err(DumpError::new(
                        DumpErrorKind::Failed,
                        format!(
                            "the server still waits for its WAL to be archived after {}s",
                            wait.as_secs()
                        ),
                    ));
                }
            },
            None => self.inner.next_chunk().await,
        };
        let not_tar = |e: TarError| {
            DumpError::new(
                DumpErrorKind::Failed,
                format!("the base backup stream is not a readable tar archive: {e}"),
            )
        };
        match next? {
            Some(chunk) => {
                self.flowing = true;
                lock(&self.capture).feed(&chunk).map_err(not_tar)?;
                Ok(Some(chunk))
            }
            None => {
                let mut c = lock(&self.capture);
                c.reader.finish().map_err(not_tar)?;
                c.ended_at = Some(OffsetDateTime::now_utc());
                Ok(None)
            }
        }
    }

    async fn abort(self: Box<Self>) {
        self.inner.abort().await;
    }
}
