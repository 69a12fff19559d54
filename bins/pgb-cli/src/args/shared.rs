//! Argument groups several commands share.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

#[derive(Debug, Args, Default)]
pub(crate) struct RepoArgs {
    /// Repository URL: file:///path (or a path), s3://bucket/prefix, gs://bucket/prefix,
    /// az://container/prefix. Else PGB_REPO, else ./pgb-backups.
    #[arg(long, value_name = "URL")]
    pub(crate) repo: Option<String>,
    /// Object stores: retries of one request after its first attempt (0: none) [default:
    /// PGB_STORAGE_RETRIES, else 4].
    #[arg(long, value_name = "N", help_heading = "Object storage")]
    pub(crate) retries: Option<u32>,
    /// Object stores: the longest one storage call may take, retries and back-off included
    /// (90s, 5m, 1h) [default: PGB_STORAGE_RETRY_BUDGET_SECS, else 5m].
    #[arg(long, value_name = "DURATION", help_heading = "Object storage")]
    pub(crate) retry_budget: Option<String>,
    /// Object stores: time limit of one attempt of a request without a body [default:
    /// PGB_STORAGE_TIMEOUT_SECS, else 60s].
    #[arg(long, value_name = "DURATION", help_heading = "Object storage")]
    pub(crate) request_timeout: Option<String>,
    /// Object stores: time limit of one I/O step (one part upload, one chunk of a download)
    /// [default: PGB_STORAGE_IO_TIMEOUT_SECS, else 2m].
    #[arg(long, value_name = "DURATION", help_heading = "Object storage")]
    pub(crate) io_timeout: Option<String>,
    /// The storage limits of `--job` (its flags layered in), typed.
    #[arg(skip)]
    pub(crate) from_job: Option<pgb_config::StorageNetwork>,
}

/// `--job NAME`: take what a command needs (repository, database, keys, policy, drill,
/// check and notify settings) from a job of the config file; flags given as well still win.
#[derive(Debug, Args, Default)]
pub(crate) struct JobArgs {
    /// Read the repository, database, keys and settings from the job [jobs.NAME] of the
    /// config file (flags still win).
    #[arg(long, value_name = "NAME")]
    pub(crate) job: Option<String>,
    /// The config file of --job [default: $PGB_CONFIG, else ./pgb.toml, else
    /// /etc/pgb/pgb.toml].
    #[arg(long, value_name = "FILE", requires = "job")]
    pub(crate) config: Option<PathBuf>,
}

#[derive(Debug, Args, Default)]
pub(crate) struct ToolArgs {
    /// Directory holding pg_dump/pg_restore/psql, searched before /usr/lib/postgresql/*/bin
    /// and PATH (repeatable; else PGB_PG_BIN_DIR, `:`-separated).
    #[arg(long = "pg-bin-dir", value_name = "DIR", value_delimiter = ':')]
    pub(crate) pg_bin_dirs: Vec<PathBuf>,
}

/// Client-side encryption for `backup` (age, after compression).
#[derive(Debug, Args, Default)]
pub(crate) struct EncryptArgs {
    /// Encrypt to this age X25519 recipient (public key, `age1...`); repeatable, e.g. an
    /// operations key and an offline escrow key.
    #[arg(long, value_name = "AGE1...")]
    pub(crate) recipient: Vec<String>,
    /// Encrypt to the recipients listed in this file (one per line, `#` comments).
    #[arg(long, value_name = "FILE")]
    pub(crate) recipients_file: Option<PathBuf>,
    /// Encrypt with the passphrase in this file (or set PGB_PASSPHRASE).
    #[arg(long, value_name = "FILE")]
    pub(crate) passphrase_file: Option<PathBuf>,
    /// Authenticate manifests with the key in this file (64 hex chars; `pgb key generate`),
    /// or PGB_AUTH_KEY. Recommended with recipients.
    #[arg(long, value_name = "FILE")]
    pub(crate) auth_key_file: Option<PathBuf>,
    /// Refused: a passphrase on the command line is visible in the process list.
    #[arg(long, hide = true)]
    pub(crate) passphrase: Option<String>,
}

/// Keys for reading encrypted backups (`verify`, `restore`).
#[derive(Debug, Args, Default)]
pub(crate) struct KeyArgs {
    /// An age identity file (`AGE-SECRET-KEY-1...`); repeatable. Else PGB_IDENTITY_FILE
    /// (`:`-separated).
    #[arg(long, value_name = "FILE", value_delimiter = ':')]
    pub(crate) identity_file: Vec<PathBuf>,
    /// The passphrase of passphrase-encrypted backups, from this file (or PGB_PASSPHRASE).
    #[arg(long, value_name = "FILE")]
    pub(crate) passphrase_file: Option<PathBuf>,
    /// The manifest authentication key, from this file (or PGB_AUTH_KEY).
    #[arg(long, value_name = "FILE")]
    pub(crate) auth_key_file: Option<PathBuf>,
    /// Accept backups whose manifest is not authenticated although keys were given.
    #[arg(long)]
    pub(crate) allow_unauthenticated: bool,
    /// Refused: a passphrase on the command line is visible in the process list.
    #[arg(long, hide = true)]
    pub(crate) passphrase: Option<String>,
}

impl EncryptArgs {
    /// The key sources the flags name ([`pgb_jobs::keys`] resolves them).
    pub(crate) fn sources(&self) -> pgb_jobs::keys::KeySources {
        let mut s =
            pgb_jobs::keys::KeySources::new().with_auth_key_file(self.auth_key_file.as_deref());
        s.recipients.clone_from(&self.recipient);
        s.recipients_file.clone_from(&self.recipients_file);
        s.passphrase_file.clone_from(&self.passphrase_file);
        s
    }
}

impl KeyArgs {
    /// The key sources the flags name ([`pgb_jobs::keys`] resolves them).
    pub(crate) fn sources(&self) -> pgb_jobs::keys::KeySources {
        let mut s = pgb_jobs::keys::KeySources::new()
            .with_auth_key_file(self.auth_key_file.as_deref())
            .with_identity_files(&self.identity_file);
        s.passphrase_file.clone_from(&self.passphrase_file);
        s
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// pg_dump -Fc: restored with pg_restore.
    Custom,
    /// pg_dump -Fp: SQL text, restored with psql.
    Plain,
    /// pg_dump -Fd -j N: one object per file, dumped and restored in parallel (--jobs).
    Directory,
}

/// Retention policy flags, shared by `prune`, `backup --prune` and `retention plan`.
#[derive(Debug, Args, Default, Clone)]
pub(crate) struct PolicyArgs {
    /// Keep the N newest backups (N or unlimited).
    #[arg(long, value_name = "N")]
    pub(crate) keep_last: Option<String>,
    /// Keep the newest backup of each of the N newest hours with backups (N or unlimited).
    #[arg(long, value_name = "N")]
    pub(crate) keep_hourly: Option<String>,
    /// Keep the newest backup of each of the N newest days (N or unlimited).
    #[arg(long, value_name = "N")]
    pub(crate) keep_daily: Option<String>,
    /// Keep the newest backup of each of the N newest ISO weeks (N or unlimited).
    #[arg(long, value_name = "N")]
    pub(crate) keep_weekly: Option<String>,
    /// Keep the newest backup of each of the N newest months (N or unlimited).
    #[arg(long, value_name = "N")]
    pub(crate) keep_monthly: Option<String>,
    /// Keep the newest backup of each of the N newest years (N or unlimited).
    #[arg(long, value_name = "N")]
    pub(crate) keep_yearly: Option<String>,
    /// Keep every backup within DURATION of the newest one (h, d, w, mo, y: 36h, 14d, 6mo).
    #[arg(long, value_name = "DURATION")]
    pub(crate) keep_within: Option<String>,
    /// Keep one backup per hour within DURATION of the newest.
    #[arg(long, value_name = "DURATION")]
    pub(crate) keep_within_hourly: Option<String>,
    /// Keep one backup per day within DURATION of the newest.
    #[arg(long, value_name = "DURATION")]
    pub(crate) keep_within_daily: Option<String>,
    /// Keep one backup per ISO week within DURATION of the newest.
    #[arg(long, value_name = "DURATION")]
    pub(crate) keep_within_weekly: Option<String>,
    /// Keep one backup per month within DURATION of the newest.
    #[arg(long, value_name = "DURATION")]
    pub(crate) keep_within_monthly: Option<String>,
    /// Keep one backup per year within DURATION of the newest.
    #[arg(long, value_name = "DURATION")]
    pub(crate) keep_within_yearly: Option<String>,
    /// Always keep backups carrying this label (repeatable).
    #[arg(long, value_name = "NAME")]
    pub(crate) keep_label: Vec<String>,
    /// Time zone for calendar buckets (IANA name) [default: UTC].
    #[arg(long, value_name = "ZONE")]
    pub(crate) retention_tz: Option<String>,
    /// The policy of `--job`, used when no rule flag is given.
    #[arg(skip)]
    pub(crate) from_job: Option<pgb::retention::Policy>,
}

impl PolicyArgs {
    /// The flags as a job's retention keys, for the config crate's one policy builder
    /// ([`pgb_config::retention_policy`]); a count that is not one is a usage error.
    pub(crate) fn settings(&self) -> Result<pgb_config::JobSettings, crate::exit::Failure> {
        let count = |v: &Option<String>| {
            v.as_deref()
                .map(str::parse::<pgb_config::Keep>)
                .transpose()
                .map_err(|e| crate::exit::Failure::usage(e.to_string()))
        };
        Ok(pgb_config::JobSettings {
            keep_last: count(&self.keep_last)?,
            keep_hourly: count(&self.keep_hourly)?,
            keep_daily: count(&self.keep_daily)?,
            keep_weekly: count(&self.keep_weekly)?,
            keep_monthly: count(&self.keep_monthly)?,
            keep_yearly: count(&self.keep_yearly)?,
            keep_within: self.keep_within.clone(),
            keep_within_hourly: self.keep_within_hourly.clone(),
            keep_within_daily: self.keep_within_daily.clone(),
            keep_within_weekly: self.keep_within_weekly.clone(),
            keep_within_monthly: self.keep_within_monthly.clone(),
            keep_within_yearly: self.keep_within_yearly.clone(),
            keep_label: Some(self.keep_label.clone()),
            timezone: self.retention_tz.clone(),
            ..pgb_config::JobSettings::default()
        })
    }

    /// The policy flags as given (`--keep-daily 7 --keep-weekly 4`); `None` when none is.
    pub(crate) fn as_given(&self) -> Option<String> {
        let flags = [
            ("--keep-last", &self.keep_last),
            ("--keep-hourly", &self.keep_hourly),
            ("--keep-daily", &self.keep_daily),
            ("--keep-weekly", &self.keep_weekly),
            ("--keep-monthly", &self.keep_monthly),
            ("--keep-yearly", &self.keep_yearly),
            ("--keep-within", &self.keep_within),
            ("--keep-within-hourly", &self.keep_within_hourly),
            ("--keep-within-daily", &self.keep_within_daily),
            ("--keep-within-weekly", &self.keep_within_weekly),
            ("--keep-within-monthly", &self.keep_within_monthly),
            ("--keep-within-yearly", &self.keep_within_yearly),
        ];
        let mut parts: Vec<String> = flags
            .iter()
            .filter_map(|(f, v)| v.as_ref().map(|v| format!("{f} {v}")))
            .collect();
        parts.extend(self.keep_label.iter().map(|l| format!("--keep-label {l}")));
        if let Some(z) = &self.retention_tz {
            parts.push(format!("--retention-tz {z}"));
        }
        (!parts.is_empty()).then(|| parts.join(" "))
    }
}

/// Where to send notifications (`backup`, `drill`, `check`).
#[derive(Debug, Args, Default)]
pub(crate) struct NotifyArgs {
    /// POST a JSON notification to this URL (repeatable; `slack+https://...` for Slack's
    /// format). Prefer PGB_NOTIFY_URL (space-separated): argv is visible in `ps`.
    #[arg(long, value_name = "URL")]
    pub(crate) notify: Vec<String>,
    /// Ping this healthchecks.io-style URL (`/start`, then success or `/fail`); repeatable.
    /// Else PGB_NOTIFY_PING.
    #[arg(long, value_name = "URL")]
    pub(crate) notify_ping: Vec<String>,
}

impl NotifyArgs {
    /// The URLs given, named by flag ([`pgb_jobs::notifier_for`] puts them over the job's and
    /// the environment's).
    pub(crate) fn targets(&self) -> pgb_jobs::NotifyTargets {
        pgb_jobs::NotifyTargets::default()
            .with_webhooks("--notify", &self.notify)
            .with_pings("--notify-ping", &self.notify_ping)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_reads_as_given() {
        let p = PolicyArgs {
            keep_daily: Some("7".into()),
            keep_label: vec!["release".into()],
            ..PolicyArgs::default()
        };
        assert_eq!(
            p.as_given().as_deref(),
            Some("--keep-daily 7 --keep-label release")
        );
        assert_eq!(PolicyArgs::default().as_given(), None);
    }
}
