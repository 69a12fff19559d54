//! `pgb config check [--json]` and `pgb config example`.

use crate::args::ConfigCommand;
use crate::exit::Failure;
use crate::render::jobs::{ConfigCheckOut, config_check};
use crate::render::{self, Output};
use crate::resolve::{Env, config};

pub(super) fn run(command: ConfigCommand, env: Env<'_>) -> Result<(), Failure> {
    match command {
        ConfigCommand::Example => render::stdout(|w| w.write_all(pgb_config::EXAMPLE.as_bytes())),
        ConfigCommand::Check { file, job, json } => {
            let cfg = config::require(file.config.as_deref(), env)?;
            let jobs = config::jobs(&cfg, job.as_deref(), env)?;
            let reports: Vec<_> = jobs.iter().map(pgb_config::ResolvedJob::report).collect();
            // Valid as written; what would still fail here is a warning, not an error: the
            // file may be checked on another host than the one that runs it.
            let warnings: Vec<String> = jobs
                .iter()
                .flat_map(|j| pgb_jobs::job_warnings(j, env))
                .collect();
            let out = ConfigCheckOut {
                file: cfg.path().display().to_string(),
                jobs: &reports,
                warnings: &warnings,
            };
            Output::json(json).emit(&out, |w| config_check(w, &out))
        }
    }
}
