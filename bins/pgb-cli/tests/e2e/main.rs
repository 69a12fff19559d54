//! The `pgb` binary's end-to-end tests, one module per area, built as one test binary: 30
//! binaries each linking the whole dependency tree made linking the slowest part of a 2-core
//! build and a fresh build folder larger than a CI runner's disk. A new area is a new module
//! here (`scripts/check-test-modules.sh`, run by CI,
//! fails for a file left out).

// Public, so the helpers a given module does not use do not trip the `dead_code` lint.
pub mod common;
pub mod sample;

mod archiver;
mod catalog;
mod child_env;
mod cli;
mod cloud;
mod cluster;
mod daemon_abuse;
mod directory;
mod docs;
mod encryption;
mod faults;
mod files;
mod grammar;
mod incremental;
mod job_flag;
mod jobs;
mod listing;
mod migrations;
mod monitoring;
mod network;
mod ops;
mod physical;
mod pitr;
mod pitr_drill;
mod progress;
mod prune_gc_safety;
mod report;
mod report_browser;
mod repository_access;
mod secrets;
mod selection;
mod status_progress;
mod storage_faults;
mod table_restore;
mod wal;
mod wal_notify;
mod wal_retention;
mod wal_stream;
mod wal_stream_daemon;
mod wal_stream_job;
mod wal_window;
mod webhook_payload;
