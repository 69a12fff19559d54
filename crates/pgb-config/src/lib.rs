//! # pgb-config
//!
//! pgb's configuration file: named jobs in TOML that an operator writes once.
//!
//! ```toml
//! [defaults]
//! repository = "s3://backups/pgb"
//! timezone = "Europe/Berlin"
//!
//! [jobs.shop]
//! database = "postgres://backup@db/shop"
//! schedule = "30 2 * * *"
//! keep_daily = 7
//! post_restore = ["npx", "prisma", "migrate", "deploy"]
//! ```
//!
//! - [`LoadedConfig::parse`] reads the text the caller read from a file: unknown keys, wrong
//!   types and secrets written inline are errors naming the file, line, job and key.
//! - [`LoadedConfig::resolve`] layers built-in defaults < `[defaults]` < `[jobs.NAME]` <
//!   `PGB_*` environment < flags for every key, remembers where each value came from
//!   ([`Source`]), and validates the result into a [`ResolvedJob`] (cron, zone, repository
//!   scheme, durations, hooks' programs).
//! - [`discover`] picks the file: `--config`, `PGB_CONFIG`, `./pgb.toml`, `/etc/pgb/pgb.toml`;
//!   [`load`] picks and parses it, reading it through the caller's [`Files`].
//! - [`defaults`] holds the built-in defaults, also for commands run without a config file.
//! - [`EXAMPLE`] is a commented example covering dev, staging and production.
//!
//! Like every pgb library it never reads the environment or files on its own: the caller
//! passes the text, an [`Environment`] with a variable lookup and an executable check.
//!
//! ```
//! use std::path::Path;
//! use pgb_config::{Environment, JobSettings, LoadedConfig};
//!
//! let cfg = LoadedConfig::parse(
//!     "[jobs.shop]\nrepository = \"/var/backups/pgb\"\nkeep_daily = 7\n",
//!     Path::new("pgb.toml"),
//! )?;
//! let vars = |k: &str| (k == "PGB_KEEP_DAILY").then(|| "14".to_owned());
//! let env = Environment { var: &vars, is_executable: &|_| false };
//! let job = cfg.resolve("shop", &env, &JobSettings::default())?;
//! assert_eq!(job.settings.keep_daily.unwrap().to_string(), "14");
//! assert_eq!(job.provenance["keep_daily"].to_string(), "env PGB_KEEP_DAILY");
//! assert_eq!(job.provenance["repository"].to_string(), "pgb.toml:2");
//! # Ok::<(), pgb_config::ConfigError>(())
//! ```

pub mod defaults;
mod discover;
mod error;
mod load;
mod resolve;
mod settings;
mod values;

pub use discover::{Files, Found, NO_CONFIG, SYSTEM_CONFIG, discover, load};
pub use error::{ConfigError, Origin};
pub use load::LoadedConfig;
pub use resolve::{
    CheckConfig, DrillConfig, DumpSelection, Effective, EncryptionSettings, Environment, Hook,
    Hooks, InvalidSetting, JobReport, MIN_HOOK_TIMEOUT, MigrationSettings, NotifyConfig,
    REPOSITORY_SCHEMES, ResolvedJob, SCHEDULE_HORIZON_YEARS, Source, StorageNetwork, WholeServer,
    builtin_defaults, check_schedule_fires, env_layer, is_executable, parse_cron, retention_policy,
};
pub use settings::{
    CheckSettings, ConfigFile, DrillSettings, JobSettings, KEYS, Keep, MIGRATION_FRAMEWORKS,
    NOTIFY_EVENTS, NotifySettings, env_var_for,
};
pub use values::{check_compression, format_duration, parse_duration, parse_size, redact_url};

/// The commented example config (`pgb config example`): the runbooks' three environments.
pub const EXAMPLE: &str = include_str!("../../../pgb.example.toml");

pub use chrono_tz::Tz;
pub use croner::Cron;
