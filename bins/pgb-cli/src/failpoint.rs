//! Test scaffolding, compiled only with the `test-support` feature: `PGB_TEST_FAILPOINT=
//! mid-data|after-data|before-manifest` makes a backup stop at that point (announcing it on
//! stderr) so that a crash test can SIGKILL it there; `progress` stops any operation at its
//! first progress event (after 4 MiB of plaintext: a restore midway).

use std::sync::OnceLock;

use pgb::Event;

static ARMED: OnceLock<String> = OnceLock::new();

/// Arms the failpoint `name` (from `PGB_TEST_FAILPOINT`, read by `main`).
pub(crate) fn arm(name: Option<String>) {
    if let Some(name) = name {
        let _ = ARMED.set(name);
    }
}

/// Called with every progress event: waits forever at the armed point.
pub(crate) fn reached(e: &Event) {
    let Some(name) = ARMED.get() else {
        return;
    };
    let here = match e {
        Event::DataStreaming => "mid-data",
        Event::DataFinished { .. } => "after-data",
        Event::ManifestWriting => "before-manifest",
        Event::Progress { .. } => "progress",
        _ => return,
    };
    if name == here {
        eprintln!("pgb: FAILPOINT {here} reached; waiting to be killed");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}
