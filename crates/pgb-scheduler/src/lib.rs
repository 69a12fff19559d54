//! # pgb-scheduler
//!
//! Running pgb's jobs unattended, as a library the binary drives:
//!
//! - [`next_runs`], [`missed_slot`], [`jitter_for`], [`default_max_age`]: 5-field cron in an
//!   IANA zone (croner + chrono-tz), correct across daylight-saving changes.
//! - [`Scheduler`]: runs each job at its times through a [`JobRunner`] the caller supplies,
//!   one run at a time per job, a catch-up run at start when a slot was missed, `run_once`
//!   for Kubernetes CronJobs and systemd timers; stops when a `CancellationToken` fires.
//! - [`HealthState`]: per job last run, last success and next run, for `/healthz`.
//! - [`serve`], [`serve_with`]: the `/healthz` and `/metrics` endpoints and the status page at
//!   `/` (hyper), loopback by
//!   default, with a header timeout, a connection lifetime and a connection limit
//!   ([`ServeOptions`]) and paced retries when `accept` fails.
//!
//! It installs no signal handlers and creates no runtime: the binary turns SIGTERM into a
//! cancelled token.

mod health;
mod schedule;
mod scheduler;
mod server;

pub use health::{HealthHandle, HealthState, JobHealth, RunRecord, TICK_STALE_AFTER};
pub use schedule::{
    NoRunTime, RunTime, default_max_age, jitter_for, missed_slot, next_run, next_runs,
    previous_slot, utc_from_unix,
};
pub use scheduler::{Clock, JobRunner, RunOutcome, ScheduledJob, Scheduler, Trigger};
pub use server::{
    DEFAULT_HEADER_TIMEOUT, DEFAULT_LISTEN, DEFAULT_MAX_CONNECTIONS, DEFAULT_REQUEST_TIMEOUT,
    Endpoints, MetricsFn, PageFn, ServeOptions, bind, listen_warning, serve, serve_with,
};

pub use tokio_util::sync::CancellationToken;
