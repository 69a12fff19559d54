//! Rendering reports: text for people, JSON for programs (one document on stdout). Warnings
//! and notes go to stderr, so stdout stays parseable.

mod catalog;
pub(crate) mod cluster;
mod json;
pub(crate) mod migrations;
mod notes;
mod ops;
pub(crate) mod physical;
mod pitr;
mod progress;
mod text;
mod wal;
mod window;

use std::io::{self, Write};

pub(crate) use catalog::{catalog as catalog_text, catalog_json};
pub(crate) use progress::config as progress_config;
pub(crate) use progress::{LOG_TARGET, ProgressConfig, ProgressMode, Reporter, log_progress};
pub(crate) use text::human;
pub(crate) use wal::{LogicalFit, PreviewOut, reach as wal_reach_text, verify as wal_verify_text};
pub(crate) use window::windows as windows_text;

use crate::exit::{FAILURE, Failure};

/// How a command prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    Text,
    Json,
}

impl Output {
    pub(crate) fn json(json: bool) -> Self {
        if json { Self::Json } else { Self::Text }
    }

    /// Prints `report`: as JSON, or through `text`.
    pub(crate) fn emit<T: serde::Serialize + ?Sized>(
        self,
        report: &T,
        text: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), Failure> {
        stdout(|w| match self {
            Self::Json => json::write(w, report),
            Self::Text => text(w),
        })
    }
}

/// Runs `f` on a locked stdout. A closed pipe (`pgb list | head`) is not an error.
pub(crate) fn stdout(f: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    match f(&mut out).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Failure::new(
            FAILURE,
            format!("cannot write to stdout: {e}"),
        )),
        _ => Ok(()),
    }
}

/// A warning or note on stderr, prefixed `pgb: `.
pub(crate) fn note(text: impl std::fmt::Display) {
    eprintln!("pgb: {text}");
}

pub(crate) mod jobs;

pub(crate) use json::{BackupOut, GcOut, ListEntry, RestoreOut};
pub(crate) use notes::{listing_notes, prune_notes, verify_failures};
pub(crate) use ops::{
    check as check_text, drill as drill_text, drill_history as drill_history_text,
};
pub(crate) use text::{
    backup as backup_text, gc as gc_text, plan as plan_text, prune as prune_text,
    restore as restore_text, verify as verify_text,
};
