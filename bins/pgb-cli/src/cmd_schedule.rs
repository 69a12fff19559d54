//! `pgb schedule explain JOB [--count N]`: the next runs in the job's zone and in UTC.

use std::io::Write;
use std::path::PathBuf;

use pgb_config::{ConfigError, Environment, JobSettings, Origin};

/// `pgb schedule ...`
#[derive(Debug, clap::Args)]
pub(crate) struct ScheduleArgs {
    #[command(subcommand)]
    pub(crate) action: ScheduleAction,
}

/// Schedule subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ScheduleAction {
    /// The next run times of a job, in its zone and in UTC, across daylight-saving changes.
    Explain {
        /// The job.
        job: String,
        /// How many runs.
        #[arg(long, default_value_t = 10)]
        count: usize,
        /// The config file (else $PGB_CONFIG, ./pgb.toml, /etc/pgb/pgb.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs `pgb schedule explain`. Errors are usage errors (exit 2).
pub(crate) fn run(args: &ScheduleArgs, out: &mut dyn Write) -> Result<(), ConfigError> {
    let io = |e: std::io::Error| ConfigError::new(Origin::None, format!("cannot write: {e}"));
    let ScheduleAction::Explain {
        job,
        count,
        config,
        json,
    } = &args.action;
    let Some(cfg) = crate::cmd_config::load(config.as_deref())? else {
        return Err(ConfigError::new(
            Origin::None,
            "no config file: pass --config FILE, set PGB_CONFIG, or create ./pgb.toml",
        ));
    };
    let env = Environment {
        var: &crate::cmd_config::environment_var,
        is_executable: &pgb_config::is_executable,
    };
    let resolved = cfg.resolve(job, &env, &JobSettings::default())?;
    let Some(cron) = &resolved.schedule else {
        return Err(ConfigError::new(Origin::None, "the job has no schedule")
            .job(Some(job))
            .key("schedule"));
    };
    let runs = pgb_scheduler::next_runs(cron, resolved.timezone, chrono::Utc::now(), *count)
        .map_err(|e| {
            ConfigError::new(Origin::None, e.to_string())
                .job(Some(job))
                .key("schedule")
        })?;
    let zone = resolved.timezone.name();
    let source = &resolved.provenance["timezone"];
    if *json {
        let doc = serde_json::json!({
            "job": job,
            "schedule": resolved.schedule_expr,
            "timezone": zone,
            "timezone_source": source,
            "jitter_seconds": pgb_scheduler::jitter_for(job, resolved.jitter).as_secs(),
            "runs": runs,
        });
        return writeln!(out, "{}", serde_json::to_string_pretty(&doc).unwrap_or_default())
            .map_err(io);
    }
    writeln!(
        out,
        "job {job}: {:?} in {zone} (timezone from {source})",
        resolved.schedule_expr.as_deref().unwrap_or_default()
    )
    .map_err(io)?;
    for r in &runs {
        writeln!(
            out,
            "  {}  {:<5} ({})   {} UTC",
            r.local.format("%Y-%m-%d %a %H:%M"),
            r.abbreviation,
            r.local.format("%:z"),
            r.utc.format("%Y-%m-%d %H:%M"),
        )
        .map_err(io)?;
    }
    Ok(())
}
