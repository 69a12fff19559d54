//! `pgb schedule explain JOB [--count N] [--after TIME]`: the next runs in the job's zone and
//! in UTC.

use pgb_config::{ConfigError, Origin};

use crate::args::ScheduleCommand;
use crate::exit::Failure;
use crate::render::Output;
use crate::render::jobs::{ScheduleOut, schedule};
use crate::resolve::{Env, config, defaults};

pub(super) fn run(command: ScheduleCommand, env: Env<'_>) -> Result<(), Failure> {
    let ScheduleCommand::Explain {
        job,
        count,
        after,
        file,
        json,
    } = command;
    let after = match after {
        None => chrono::Utc::now(),
        Some(t) => chrono::DateTime::parse_from_rfc3339(&t)
            .map_err(|e| Failure::usage(format!("--after {t:?}: not an RFC 3339 time: {e}")))?
            .to_utc(),
    };
    let resolved = config::job(file.config.as_deref(), &job, env)?;
    let bad = |why: String| {
        ConfigError::new(Origin::None, why)
            .job(Some(&job))
            .key("schedule")
    };
    let cron = (resolved.schedule.as_ref()).ok_or_else(|| bad("the job has no schedule".into()))?;
    let n = count.unwrap_or(defaults::SCHEDULE_COUNT);
    let runs = pgb_scheduler::next_runs(cron, resolved.timezone, after, n)
        .map_err(|e| bad(e.to_string()))?;
    let out = ScheduleOut {
        job: &job,
        schedule: resolved.schedule_expr.as_deref(),
        timezone: resolved.timezone.name(),
        timezone_source: (resolved.provenance.get("timezone"))
            .map_or_else(|| "default".into(), ToString::to_string),
        jitter_seconds: pgb_scheduler::jitter_for(&job, resolved.jitter).as_secs(),
        jitter_max_seconds: resolved.jitter.as_secs(),
        runs: &runs,
    };
    Output::json(json).emit(&out, |w| schedule(w, &out))
}
