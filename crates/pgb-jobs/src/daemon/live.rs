//! The live progress of the daemon's runs: what the status page shows under "Running now".
//!
//! The [`Runner`](super::Runner) starts an entry when a run starts and feeds it the run's
//! progress events (the same [`Event`]s the embedder's display gets: it sees every event
//! first, then passes it on), and removes it when the run ends, however it ends.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use pgb_core::{Event, Progress, Repository};
use pgb_ops::report::RunProgressSnapshot;
use time::OffsetDateTime;

/// The runs in progress and how far each got, by the scheduler's name (`shop`,
/// `shop/drill`); cloning shares it. The [`Runner`](super::Runner) writes it
/// ([`Runner::live_runs`](super::Runner::live_runs)) and the status page reads it
/// ([`DaemonMetrics::with_live_runs`](super::DaemonMetrics::with_live_runs)).
#[derive(Clone, Default)]
pub struct LiveRuns {
    runs: Arc<Mutex<BTreeMap<String, Arc<LiveRun>>>>,
}

impl std::fmt::Debug for LiveRuns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveRuns")
            .field("running", &self.lock().keys().collect::<Vec<_>>())
            .finish()
    }
}

impl LiveRuns {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<LiveRun>>> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How far each run in progress got, now.
    pub fn snapshot(&self) -> BTreeMap<String, RunProgressSnapshot> {
        self.lock()
            .iter()
            .map(|(k, r)| (k.clone(), r.snapshot()))
            .collect()
    }

    /// How far the run of `name` got, when one is in progress.
    pub fn get(&self, name: &str) -> Option<RunProgressSnapshot> {
        self.lock().get(name).map(|r| r.snapshot())
    }

    /// Starts the entry of a run of `name` in `phase`; it goes when the returned guard drops.
    pub(super) fn start(&self, name: &str, phase: &'static str) -> Tracked {
        let run = Arc::new(LiveRun {
            started: Instant::now(),
            started_at: OffsetDateTime::now_utc(),
            state: Mutex::new(State {
                phase,
                ..State::default()
            }),
        });
        self.lock().insert(name.to_owned(), Arc::clone(&run));
        Tracked {
            runs: self.clone(),
            name: name.to_owned(),
            run,
        }
    }
}

#[derive(Default)]
struct State {
    phase: &'static str,
    read: u64,
    stored: u64,
    total: Option<u64>,
    committed: bool,
}

struct LiveRun {
    started: Instant,
    started_at: OffsetDateTime,
    state: Mutex<State>,
}

impl LiveRun {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn snapshot(&self) -> RunProgressSnapshot {
        let elapsed = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let s = self.state();
        let mut p = RunProgressSnapshot::new(self.started_at, elapsed);
        p.phase = Some(s.phase.to_owned());
        p.read_bytes = s.read;
        p.stored_bytes = s.stored;
        p.total_bytes = s.total;
        p
    }
}

/// One run's entry in [`LiveRuns`]: records its events; removed when dropped.
pub(super) struct Tracked {
    runs: LiveRuns,
    name: String,
    run: Arc<LiveRun>,
}

impl Tracked {
    /// Takes one progress event of the run.
    pub(super) fn record(&self, e: &Event) {
        let mut s = self.run.state();
        match e {
            Event::BackupStarted { .. } | Event::DataStreaming if !s.committed => {
                s.phase = "backing up";
            }
            Event::Progress {
                plain_bytes,
                stored_bytes,
            } => {
                if s.committed {
                    // After the commit, only a verification reads the backup again.
                    s.phase = "verifying";
                }
                s.read = *plain_bytes;
                s.stored = *stored_bytes;
            }
            Event::DataFinished { stored_bytes } => {
                s.phase = "finishing";
                s.stored = *stored_bytes;
            }
            Event::ManifestWriting => s.phase = "committing",
            Event::Committed { .. } => {
                s.phase = "committed";
                s.committed = true;
                // A verification counts from zero, its size is not known here.
                s.total = None;
            }
            _ => {}
        }
    }

    /// Expects about `plain_bytes` (the previous backup's size), unless the backup is over.
    fn expect(&self, plain_bytes: u64) {
        let mut s = self.run.state();
        if !s.committed && plain_bytes > 0 {
            s.total = Some(plain_bytes);
        }
    }

    /// Looks up the plain size of the newest backup of `database` in `repo` as the size to
    /// expect; returns when found or not (the run goes on meanwhile: see `Runner::run_job`).
    pub(super) async fn look_up_total(&self, repo: &Repository, database: &str) -> Option<u64> {
        let listing = repo.list().await.ok()?;
        let size = listing.latest(Some(database))?.plain_size();
        self.expect(size);
        Some(size)
    }

    /// This run's events recorded, then passed on to `host`.
    pub(super) fn tee<'a>(&'a self, host: &'a dyn Progress) -> Tee<'a> {
        Tee {
            tracked: self,
            host,
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let mut runs = self.runs.lock();
        if runs
            .get(&self.name)
            .is_some_and(|r| Arc::ptr_eq(r, &self.run))
        {
            runs.remove(&self.name);
        }
    }
}

/// A run's progress: recorded in [`LiveRuns`], then shown by the host's display.
pub(super) struct Tee<'a> {
    tracked: &'a Tracked,
    host: &'a dyn Progress,
}

impl Progress for Tee<'_> {
    fn event(&self, e: &Event) {
        self.tracked.record(e);
        self.host.event(e);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use pgb_core::BackupId;

    use super::*;

    /// A host display that keeps, for each event, what the live entry said when it got it.
    struct Seen<'a>(&'a LiveRuns, Mutex<Vec<RunProgressSnapshot>>);

    impl Progress for Seen<'_> {
        fn event(&self, _: &Event) {
            self.1.lock().unwrap().push(self.0.get("shop").unwrap());
        }
    }

    #[test]
    fn a_runs_events_are_recorded_before_the_host_sees_them_and_go_when_it_ends() {
        let live = LiveRuns::default();
        let id: BackupId = "20260610T120000Z-abcdef".parse().unwrap();
        let host = Seen(&live, Mutex::new(Vec::new()));
        {
            let run = live.start("shop", "starting");
            let other = live.start("shop/drill", "drilling");
            assert_eq!(live.get("shop").unwrap().phase.as_deref(), Some("starting"));
            let tee = run.tee(&host);
            tee.event(&Event::BackupStarted {
                id: id.clone(),
                database: "shop".into(),
            });
            run.expect(64 << 20);
            tee.event(&Event::DataStreaming);
            tee.event(&Event::Progress {
                plain_bytes: 8 << 20,
                stored_bytes: 3 << 20,
            });
            tee.event(&Event::DataFinished {
                stored_bytes: 5 << 20,
            });
            tee.event(&Event::ManifestWriting);
            tee.event(&Event::Committed { id });
            run.expect(1);
            tee.event(&Event::Progress {
                plain_bytes: 4 << 20,
                stored_bytes: 2 << 20,
            });
            let seen = host.1.lock().unwrap().clone();
            let phases: Vec<_> = seen.iter().map(|s| s.phase.clone().unwrap()).collect();
            assert_eq!(
                phases,
                [
                    "backing up",
                    "backing up",
                    "backing up",
                    "finishing",
                    "committing",
                    "committed",
                    "verifying"
                ]
            );
            let streaming = &seen[2];
            assert_eq!(
                (
                    streaming.read_bytes,
                    streaming.stored_bytes,
                    streaming.total_bytes
                ),
                (8 << 20, 3 << 20, Some(64 << 20))
            );
            assert_eq!(seen[3].stored_bytes, 5 << 20, "the data object's size");
            let verifying = &seen[6];
            assert_eq!(
                (verifying.read_bytes, verifying.total_bytes),
                (4 << 20, None),
                "a verification counts from zero, its size not expected from the backup's"
            );
            assert!(verifying.started_at <= OffsetDateTime::now_utc());
            assert_eq!(
                live.snapshot().keys().collect::<Vec<_>>(),
                ["shop", "shop/drill"]
            );
            drop(other);
            assert_eq!(live.snapshot().keys().collect::<Vec<_>>(), ["shop"]);
        }
        assert!(live.snapshot().is_empty(), "cleared when the run ended");
    }
}
