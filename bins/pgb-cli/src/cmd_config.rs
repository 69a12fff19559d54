//! `pgb config check [--json]` and `pgb config example`.

use std::io::Write;
use std::path::PathBuf;

use pgb_config::{ConfigError, Environment, JobSettings, LoadedConfig, Origin};

/// `pgb config ...`
#[derive(Debug, clap::Args)]
pub(crate) struct ConfigArgs {
    #[command(subcommand)]
    pub(crate) action: ConfigAction,
}

/// What to do with the config.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ConfigAction {
    /// Validate the config file and print each job's effective settings with the source of
    /// every value (default, file:line, env, flag); secrets redacted.
    Check {
        /// The config file (else $PGB_CONFIG, ./pgb.toml, /etc/pgb/pgb.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Only this job.
        #[arg(long)]
        job: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a commented example config covering dev, staging and production.
    Example,
}

/// The process's environment, for the library's injected lookups.
pub(crate) fn environment_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Finds and parses the config file (`--config`, `PGB_CONFIG`, `./pgb.toml`,
/// `/etc/pgb/pgb.toml`). `Ok(None)`: there is none.
pub(crate) fn load(flag: Option<&std::path::Path>) -> Result<Option<LoadedConfig>, ConfigError> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let Some((path, _found)) =
        pgb_config::discover(flag, &environment_var, &cwd, &|p| p.is_file())
    else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        ConfigError::new(
            Origin::File {
                path: path.display().to_string(),
                line: None,
            },
            format!("cannot read the config file: {e}"),
        )
    })?;
    LoadedConfig::parse(&text, &path).map(Some)
}

/// Runs `pgb config`: arguments -> load + resolve -> render. Errors are usage errors (exit 2).
pub(crate) fn run(args: &ConfigArgs, out: &mut dyn Write) -> Result<(), ConfigError> {
    let io = |e: std::io::Error| ConfigError::new(Origin::None, format!("cannot write: {e}"));
    match &args.action {
        ConfigAction::Example => out.write_all(pgb_config::EXAMPLE.as_bytes()).map_err(io),
        ConfigAction::Check { config, job, json } => {
            let Some(cfg) = load(config.as_deref())? else {
                return Err(ConfigError::new(
                    Origin::None,
                    "no config file: pass --config FILE, set PGB_CONFIG, or create ./pgb.toml \
                     or /etc/pgb/pgb.toml (`pgb config example` prints one)",
                ));
            };
            let env = Environment {
                var: &environment_var,
                is_executable: &pgb_config::is_executable,
            };
            let jobs = match job {
                Some(j) => vec![cfg.resolve(j, &env, &JobSettings::default())?],
                None => cfg.resolve_all(&env, &JobSettings::default())?,
            };
            let reports: Vec<_> = jobs.iter().map(pgb_config::ResolvedJob::report).collect();
            if *json {
                let doc = serde_json::json!({
                    "file": cfg.path().display().to_string(),
                    "jobs": reports,
                });
                writeln!(out, "{}", serde_json::to_string_pretty(&doc).unwrap_or_default())
                    .map_err(io)
            } else {
                writeln!(out, "{}: {} job(s), valid", cfg.path().display(), reports.len())
                    .map_err(io)?;
                for r in &reports {
                    writeln!(out, "\n[jobs.{}]", r.job).map_err(io)?;
                    for (k, e) in &r.settings {
                        let v = match &e.value {
                            serde_json::Value::String(s) => format!("{s:?}"),
                            other => other.to_string(),
                        };
                        writeln!(out, "  {k:<24} = {v:<40} # {}", e.source).map_err(io)?;
                    }
                }
                Ok(())
            }
        }
    }
}
