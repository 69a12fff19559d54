//! A configured job turned into everything one run needs, in the library: the repository,
//! the keys, the backup request (one database, a whole server or the directory format: decided
//! here, once), the archive checker, the notifier, the hook environment and the lock holder.
//! `pgb run`, the daemon and an embedding service all go through [`JobPlan::resolve`] and
//! [`JobPlan::run`]; no command-line type is involved.
//!
//! ```no_run
//! # async fn f(text: &str) -> Result<(), Box<dyn std::error::Error>> {
//! let env = |name: &str| std::env::var(name).ok();
//! let plan = pgb_jobs::JobPlan::from_config(text, "pgb.toml".as_ref(), "nightly", &env)?;
//! let report = plan.run(&pgb_core::NoProgress, std::future::pending()).await?;
//! # let _ = report; Ok(()) }
//! ```
//!
//! The environment comes from the caller ([`pgb_open::EnvLookup`]): credentials of the object store,
//! `PGB_PASSPHRASE` / `PGB_AUTH_KEY` and the variables the job names (`passphrase_env`,
//! `auth_key_env`, `[notify]`), `DATABASE_URL`, `PGB_PG_BIN_DIR`, `PGB_SPOOL_DIR`, `TMPDIR`,
//! `PATH`. Files are read only where the job's configuration names them (recipients,
//! passphrase, authentication key, webhook URL); errors never carry their contents.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;

use pgb_config::ResolvedJob;
use pgb_core::physical::WalMode;
use pgb_core::{
    ArchiveFormat, AuthKey, BackupOptions, Compression, FilesDump, Holder, Progress, Repository,
};
use pgb_notify::Notifier;
use pgb_open::EnvLookup;
use pgb_postgres::{
    DumpOptions, PgArchiveCheck, PgBaseBackup, PgCluster, PgDump, PgDumpDirectory, ToolLocator,
};

use crate::keys::{KeySourceError, KeySources};
use crate::notify::notifier;
use crate::{JobBackup, JobRun, RunFailure, RunReport, run_job};

/// Why a job cannot be planned. `Display` is one line naming the job and the key at fault,
/// never a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// A value of the job cannot be used (a database URL, a compression, a `--files`
    /// directory, a notification URL).
    #[error("job {job}: {key}: {message}")]
    Invalid {
        /// The job.
        job: String,
        /// The key (or variable) at fault.
        key: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A key the job names is missing or unusable (an unset variable, an unreadable file, an
    /// invalid recipient or authentication key).
    #[error("job {job}: {message}")]
    Key {
        /// The job.
        job: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// The repository cannot be opened.
    #[error(transparent)]
    Open(#[from] pgb_open::OpenError),
    /// The config file is malformed, has no such job, or a value of the job is invalid
    /// (naming the file and line, or the variable, it came from).
    #[error(transparent)]
    Config(#[from] pgb_config::ConfigError),
}

/// What a job backs up, built from its settings: the only place the kind of backup is chosen.
#[derive(Debug)]
#[non_exhaustive]
pub enum JobDumper {
    /// One database (custom or plain format).
    Database(PgDump),
    /// Every database of a server plus its globals.
    Server(PgCluster),
    /// One database in the directory format, `jobs` at a time.
    Directory {
        /// `pg_dump -Fd -j N` into a spool.
        dumper: PgDumpDirectory,
        /// Parallel dump jobs and uploads.
        jobs: usize,
    },
    /// A physical base backup of the whole cluster.
    Physical {
        /// `pg_basebackup`, with the job's WAL mode.
        dumper: PgBaseBackup,
        /// How long a backup waits for its WAL to reach the archive.
        wal_wait: std::time::Duration,
    },
}

/// What [`JobPlan::backup_until`] committed.
#[derive(Debug)]
#[non_exhaustive]
pub enum PlannedBackup {
    /// One database, a directory-format dump or a base backup.
    Backup(pgb_core::BackupReport),
    /// A whole server, with the databases its previous backup had that are gone.
    Server(pgb_core::ClusterBackup),
}

impl PlannedBackup {
    /// The committed backup's report.
    pub fn report(&self) -> &pgb_core::BackupReport {
        match self {
            Self::Backup(r) => r,
            Self::Server(c) => &c.backup,
        }
    }
}

/// Everything one run of a job needs, resolved and checked before anything runs.
#[derive(Debug)]
#[non_exhaustive]
pub struct JobPlan {
    /// The job.
    pub job: ResolvedJob,
    /// Its repository, opened (a local directory is created on the first backup).
    pub repo: Repository,
    /// What it backs up.
    pub dumper: JobDumper,
    /// Compression, labels, encryption, files.
    pub options: BackupOptions,
    /// Reads the archive's table of contents when verifying.
    pub checker: PgArchiveCheck,
    /// Authenticates verification records.
    pub auth_key: Option<AuthKey>,
    /// Where the run's start and outcome are sent.
    pub notifier: Option<Notifier>,
    /// The environment hooks run with (`PATH`, `HOME`, `LANG`, `TZ`, libpq's `PG*`).
    pub hook_env: BTreeMap<String, String>,
    /// Who takes the job's lock.
    pub holder: Holder,
}

impl JobPlan {
    /// Resolves `job` with the environment `env`.
    ///
    /// # Errors
    /// [`PlanError`]: a value that cannot be used, a key that is missing, a repository that
    /// cannot be opened. Nothing has run then.
    pub fn resolve(job: &ResolvedJob, env: &dyn EnvLookup) -> Result<Self, PlanError> {
        let invalid = |key: &str, message: String| PlanError::Invalid {
            job: job.name.clone(),
            key: key.to_owned(),
            message,
        };
        let keys = KeySources::for_job(job);
        let encryption = keys.encryption(env).map_err(|e| key_error(job, e))?;
        let auth_key = keys.auth_key(env).map_err(|e| key_error(job, e))?;
        let tools = tools(env);
        let spool = crate::spool_dir(job.spool_dir.as_deref(), env);
        let url = crate::database_url(job.database.as_deref(), env);
        let conn =
            crate::connection(&url, false).map_err(|e| invalid("database", e.to_string()))?;
        let mut options = crate::backup_options(&job.compression, &job.labels, encryption, &spool)
            .map_err(|e| invalid("compression", e.to_string()))?;
        for dir in &job.files {
            let files = FilesDump::new(dir).map_err(|e| invalid("files", e.to_string()))?;
            options = options.with_files(files);
        }
        let selection = dump_options(job).map_err(|m| invalid("pg_dump_options", m))?;
        let dumper = if let Some(w) = &job.whole_server {
            let encrypted = options.encryption.is_some();
            let dumper = crate::server_dumper(conn, tools.clone(), w, selection, encrypted)
                .map_err(|e| {
                    invalid(
                        "with_role_passwords",
                        format!("{e}: set recipients or a passphrase"),
                    )
                })?;
            JobDumper::Server(dumper)
        } else {
            match job.format.as_str() {
                "physical" => JobDumper::Physical {
                    dumper: PgBaseBackup::new(conn, tools.clone())
                        // A streamed server does not archive: its backups carry their WAL.
                        .with_wal(if matches!(job.wal.as_str(), "included" | "stream") {
                            WalMode::Included
                        } else {
                            WalMode::Archive
                        })
                        .with_incremental(job.incremental),
                    wal_wait: job.wal_wait,
                },
                "directory" => {
                    let jobs = job.jobs.unwrap_or(1);
                    if jobs == 0 {
                        return Err(invalid("jobs", "must be at least 1".to_owned()));
                    }
                    JobDumper::Directory {
                        dumper: crate::directory_dumper(
                            conn,
                            tools.clone(),
                            jobs,
                            &spool,
                            selection,
                        ),
                        jobs: jobs as usize,
                    }
                }
                other => {
                    let format = match other {
                        "plain" => ArchiveFormat::Plain,
                        _ => ArchiveFormat::Custom,
                    };
                    JobDumper::Database(
                        PgDump::new(conn, tools.clone())
                            .with_format(format)
                            .with_options(selection),
                    )
                }
            }
        };
        let repo = crate::proving::job_repository(job, env, true)?;
        Ok(Self {
            job: job.clone(),
            repo,
            dumper,
            options,
            checker: PgArchiveCheck::new(tools).with_spool_dir(spool),
            auth_key,
            notifier: notifier(job, env)?,
            hook_env: hook_env(env),
            holder: crate::holder(env, None),
        })
    }

    /// Parses the config file `text` (read from `path`), layers job `job` with the
    /// environment (defaults < file < `PGB_*` variables) and resolves it: what an embedding
    /// service needs to run a configured job.
    ///
    /// # Errors
    /// [`PlanError::Config`] for the file or the job, else as [`JobPlan::resolve`].
    pub fn from_config(
        text: &str,
        path: &Path,
        job: &str,
        env: &dyn EnvLookup,
    ) -> Result<Self, PlanError> {
        let config = pgb_config::LoadedConfig::parse(text, path)?;
        let job = crate::resolve_job(&config, job, env, &pgb_config::JobSettings::default())?;
        Self::resolve(&job, env)
    }

    /// Replaces who takes the job's lock (the binary names its host).
    #[must_use]
    pub fn with_holder(mut self, holder: Holder) -> Self {
        self.holder = holder;
        self
    }

    /// Replaces the notifier (`None`: notify nothing).
    #[must_use]
    pub fn with_notifier(mut self, notifier: Option<Notifier>) -> Self {
        self.notifier = notifier;
        self
    }

    /// What the run backs up, as [`run_job`] takes it.
    pub fn backup(&self) -> JobBackup<'_> {
        match &self.dumper {
            JobDumper::Database(d) => JobBackup::Database {
                dumper: d,
                options: &self.options,
            },
            JobDumper::Server(d) => JobBackup::Server {
                dumper: d,
                options: &self.options,
            },
            JobDumper::Directory { dumper, jobs } => JobBackup::Directory {
                dumper,
                jobs: *jobs,
                options: &self.options,
            },
            JobDumper::Physical { dumper, wal_wait } => JobBackup::Physical {
                dumper,
                wal_wait: *wal_wait,
                options: &self.options,
            },
        }
    }

    /// The backup alone (no lock, hooks, verify, prune or notification): what `pgb backup
    /// --job` runs before its own after-commit step ([`pgb_ops::after_commit`] with its
    /// flags). `cancel` completing cancels it; nothing is committed then.
    ///
    /// # Errors
    /// [`pgb_core::Error`] of the backup.
    pub async fn backup_until(
        &self,
        progress: &dyn Progress,
        cancel: impl Future<Output = ()> + Send,
    ) -> Result<PlannedBackup, pgb_core::Error> {
        let request = self.backup().request();
        Ok(
            match self.repo.backup_request(request, progress, cancel).await? {
                pgb_core::BackupOutcome::Server(c) => PlannedBackup::Server(c),
                other => PlannedBackup::Backup(other.into_report()),
            },
        )
    }

    /// One run: lock, hooks, backup, the after-commit step (verify, record, prune of the job's
    /// own set), notifications. `cancel` completing cancels a running backup.
    ///
    /// # Errors
    /// [`RunFailure`], with the report of what ran.
    pub async fn run(
        &self,
        progress: &dyn Progress,
        cancel: impl Future<Output = ()> + Send,
    ) -> Result<RunReport, Box<RunFailure>> {
        let run = JobRun {
            job: &self.job,
            repo: &self.repo,
            backup: self.backup(),
            checker: Some(&self.checker),
            holder: self.holder.clone(),
            hook_env: self.hook_env.clone(),
            progress,
            notifier: self.notifier.as_ref(),
            auth_key: self.auth_key.as_ref(),
        };
        run_job(&run, cancel).await
    }
}

/// Where PostgreSQL tools are searched: `PGB_PG_BIN_DIR`, the system directories, `PATH`
/// ([`crate::tools_in`] without directories of the caller's).
pub fn tools(env: &dyn EnvLookup) -> ToolLocator {
    crate::tools_in(&[], env)
}

/// pg_dump's selection and pass-through options of the job (as its manifests record them),
/// and the migration heads its preflight reads ([`crate::migration_probe`]).
///
/// # Errors
/// An option pgb sets itself (`-F`, `-f`, `-Z`, `-j`, the connection).
pub fn dump_options(job: &ResolvedJob) -> Result<DumpOptions, String> {
    selection_options(&job.selection)
        .map(|o| o.with_migrations(crate::migration_probe(job)))
        .map_err(|e| e.to_string())
}

/// pg_dump's options for a selection (a job's, or one built from a caller's flags): its
/// patterns and pass-through options; no migration probe.
///
/// # Errors
/// A pass-through option pgb sets itself (`-F`, `-f`, `-Z`, `-j`, the connection).
pub fn selection_options(
    s: &pgb_config::DumpSelection,
) -> Result<DumpOptions, pgb_core::DumpError> {
    DumpOptions::new()
        .with_schemas(&s.schemas)
        .with_exclude_schemas(&s.exclude_schemas)
        .with_tables(&s.tables)
        .with_exclude_tables(&s.exclude_tables)
        .with_exclude_table_data(&s.exclude_table_data)
        .with_extra(&s.pg_dump_options)
}

/// The environment hooks run with: `PATH`, `HOME`, `LANG`, `TZ` and the libpq `PG*`
/// connection variables, never pgb's own secrets.
pub fn hook_env(env: &dyn EnvLookup) -> BTreeMap<String, String> {
    [
        "PATH",
        "HOME",
        "LANG",
        "TZ",
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGPASSFILE",
    ]
    .iter()
    .filter_map(|k| env.get(k).map(|v| ((*k).to_owned(), v)))
    .collect()
}

/// A key of `job` that cannot be had, as the plan's error: recipients beside a passphrase is
/// a value to change (`recipients`), anything else a missing or unusable key.
pub(crate) fn key_error(job: &ResolvedJob, e: KeySourceError) -> PlanError {
    match e {
        KeySourceError::RecipientsAndPassphrase => PlanError::Invalid {
            job: job.name.clone(),
            key: "recipients".to_owned(),
            message: e.to_string(),
        },
        e => PlanError::Key {
            job: job.name.clone(),
            message: e.to_string(),
        },
    }
}

/// What `archive_command` needs from a job: its repository (created on the first push, as a
/// backup creates it) and how WAL is stored there (the job's compression, recipients and
/// authentication key). WAL is encrypted to recipients only: a job with a passphrase is
/// refused by the push ([`pgb_core::wal::WalError::PassphraseEncryption`]).
///
/// # Errors
/// [`PlanError`]: a compression or key that cannot be used, a repository that cannot be opened.
pub fn job_wal_push(
    job: &ResolvedJob,
    env: &dyn EnvLookup,
) -> Result<(Repository, pgb_core::wal::WalPushOptions), PlanError> {
    let compression: Compression =
        job.compression
            .parse()
            .map_err(|e: pgb_core::InvalidCompression| PlanError::Invalid {
                job: job.name.clone(),
                key: "compression".to_owned(),
                message: e.to_string(),
            })?;
    let keys = KeySources::for_job(job);
    let options = pgb_core::wal::WalPushOptions::default()
        .with_compression(compression)
        .with_encryption(keys.encryption(env).map_err(|e| key_error(job, e))?)
        .with_auth_key(keys.auth_key(env).map_err(|e| key_error(job, e))?);
    let repo = crate::proving::job_repository(job, env, true)?;
    Ok((repo, options))
}

#[cfg(test)]
mod tests {
    use pgb_config::DumpSelection;

    #[test]
    fn selection_options_refuse_options_pgb_sets() {
        let mut s = DumpSelection {
            tables: vec!["public.t".into()],
            pg_dump_options: vec!["--no-owner".into()],
            ..DumpSelection::default()
        };
        assert!(super::selection_options(&s).is_ok());
        s.pg_dump_options.push("--format=plain".into());
        let e = super::selection_options(&s).unwrap_err().to_string();
        assert!(e.contains("set by pgb itself"), "{e}");
    }
}
