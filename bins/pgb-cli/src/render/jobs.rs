//! Text for the config-file commands: `config check`, `schedule explain`.

use std::io::{self, Write};

use pgb_config::JobReport;
use pgb_scheduler::RunTime;
use serde::Serialize;

/// `pgb config check --json`.
#[derive(Debug, Serialize)]
pub(crate) struct ConfigCheckOut<'a> {
    pub(crate) file: String,
    pub(crate) jobs: &'a [JobReport],
    /// What would fail if a job ran on this host now (a missing key file, an unset variable).
    pub(crate) warnings: &'a [String],
}

/// `pgb config check`: each job's effective settings and their sources.
pub(crate) fn config_check(w: &mut dyn Write, out: &ConfigCheckOut<'_>) -> io::Result<()> {
    writeln!(w, "{}: {} job(s), valid", out.file, out.jobs.len())?;
    for warning in out.warnings {
        writeln!(w, "warning (on this host): {warning}")?;
    }
    for r in out.jobs {
        writeln!(w, "\n[jobs.{}]", r.job)?;
        for (k, e) in &r.settings {
            let v = match &e.value {
                serde_json::Value::String(s) => format!("{s:?}"),
                other => other.to_string(),
            };
            writeln!(w, "  {k:<24} = {v:<40} # {}", e.source)?;
        }
    }
    Ok(())
}

/// `pgb schedule explain --json`.
#[derive(Debug, Serialize)]
pub(crate) struct ScheduleOut<'a> {
    pub(crate) job: &'a str,
    pub(crate) schedule: Option<&'a str>,
    pub(crate) timezone: &'a str,
    pub(crate) timezone_source: String,
    /// This job's delay after each slot (fixed per job, derived from its name).
    pub(crate) jitter_seconds: u64,
    /// The configured maximum (`jitter`).
    pub(crate) jitter_max_seconds: u64,
    pub(crate) runs: &'a [RunTime],
}

/// `pgb schedule explain`: one line per run, local time with its offset, then UTC.
pub(crate) fn schedule(w: &mut dyn Write, s: &ScheduleOut<'_>) -> io::Result<()> {
    let jitter = if s.jitter_max_seconds == 0 {
        "no jitter".to_owned()
    } else {
        format!(
            "each run {} after its slot (jitter = {}, fixed per job)",
            pgb_config::format_duration(std::time::Duration::from_secs(s.jitter_seconds)),
            pgb_config::format_duration(std::time::Duration::from_secs(s.jitter_max_seconds))
        )
    };
    writeln!(
        w,
        "job {}: {:?} in {} (timezone from {}), {jitter}",
        s.job,
        s.schedule.unwrap_or_default(),
        s.timezone,
        s.timezone_source,
    )?;
    for r in s.runs {
        writeln!(
            w,
            "  {}  {:<5} ({})   {} UTC",
            r.local.format("%Y-%m-%d %a %H:%M"),
            r.abbreviation,
            r.local.format("%:z"),
            r.utc.format("%Y-%m-%d %H:%M"),
        )?;
    }
    Ok(())
}

/// `pgb run --dry-run`: the job's effective settings; nothing ran.
pub(crate) fn dry_run(w: &mut dyn Write, r: &JobReport) -> io::Result<()> {
    writeln!(w, "job {} (dry run: nothing ran)", r.job)?;
    for (k, e) in &r.settings {
        writeln!(w, "  {k:<24} = {:<40} # {}", e.value.to_string(), e.source)?;
    }
    Ok(())
}

/// A failed hook's output on stderr (passwords are already masked by the hook runner).
pub(crate) fn hook_output(h: &pgb_jobs::hooks::HookReport) {
    for l in &h.output {
        super::note(format_args!("{} hook: {}", h.event.as_str(), l.line));
    }
}

/// `pgb run`: the backup, verification, prune and hooks of one run.
pub(crate) fn run(w: &mut dyn Write, r: &pgb_jobs::RunReport) -> io::Result<()> {
    if let Some(m) = &r.backup {
        writeln!(w, "job {}: backup {} committed", r.job, m.id)?;
    }
    if let Some(s) = &r.storage {
        super::text::storage(w, s)?;
    }
    if r.verify.is_some() {
        writeln!(w, "job {}: verified", r.job)?;
    }
    if let Some(p) = &r.prune {
        writeln!(w, "job {}: pruned ({} deleted)", r.job, p.deleted())?;
    }
    for h in &r.hooks {
        writeln!(w, "job {}: hook {}", r.job, h.summary())?;
    }
    Ok(())
}
