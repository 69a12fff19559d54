//! `pgb wal stream`: flags or `--job` → the server, slot, spool and push options → one
//! library call (`WalStreamSource::run`, cancelled by SIGTERM/SIGINT) → its report. A clean
//! stop on a signal exits 0, like the daemon.

use std::path::PathBuf;
use std::time::Duration;

use pgb::postgres::{
    ConnConfig, StreamError, StreamOptions, StreamPreflight, StreamReport, WalStreamSource,
};
use pgb::wal::WalPushOptions;

use super::Ctx;
use crate::args::WalStreamArgs;
use crate::exit::{self, Failure};
use crate::render::Output;
use crate::resolve::{self, Env};

/// The slot when neither `--slot` nor a job (`wal_stream_slot`) names one.
const SLOT: &str = "pgb";
/// How often the partial segment is stored, by default (a job's `wal_stream_partial_interval`).
const PARTIAL_INTERVAL: Duration = Duration::from_secs(5);

pub(super) async fn run(a: WalStreamArgs, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let env = ctx.env;
    let job = match &a.job.job {
        Some(name) => Some(resolve::config::job(a.job.config.as_deref(), name, env)?),
        None => None,
    };
    let (repo, push) = match &job {
        Some(j) if a.repo.repo.is_none() => {
            let (repo, opts) = pgb_jobs::job_wal_push(j, env)?;
            (repo, opts)
        }
        _ => (
            resolve::backup_repository(&a.repo, env)?,
            WalPushOptions::default(),
        ),
    };
    let push = super::wal::push_flags(
        push,
        a.compression.as_deref(),
        &a.encrypt,
        job.is_some(),
        env,
    )?;
    let conn = connection(a.db.as_deref(), job.as_ref(), env)?;
    let repo_url = match &job {
        Some(j) if a.repo.repo.is_none() => j.repository.clone(),
        _ => resolve::repo_url(&a.repo, env),
    };
    // Flags win over the job's keys (which already layer the file and the environment).
    let slot = match (&a.slot, &job) {
        (Some(s), _) => s.as_str(),
        (None, Some(j)) => j.wal_stream_slot.as_str(),
        (None, None) => SLOT,
    };
    let interval = match (&a.partial_interval, &job) {
        (Some(i), _) => pgb_config::parse_duration(i)
            .map_err(|e| Failure::usage(format!("--partial-interval: {e}")))?,
        (None, Some(j)) => j.wal_stream_partial_interval,
        (None, None) => PARTIAL_INTERVAL,
    };
    let stream = Stream::new(
        conn,
        resolve::tools(&a.tools, env),
        (repo, push, repo_url),
        (slot, a.create_slot),
        interval,
        a.spool.clone(),
        env,
    )?;
    let out = Output::json(a.json);
    if a.preflight {
        let pre = stream.source.preflight().await.map_err(failure)?;
        warn(&pre);
        return out.emit(&pre, |w| {
            writeln!(
                w,
                "server {} (PostgreSQL {}), cluster {}, timeline {}: ready to stream through slot {} ({}) with {}",
                pre.server,
                pre.version,
                pre.system_identifier,
                pre.timeline,
                pre.slot,
                if pre.slot_exists { "exists" } else { "to be created" },
                pre.receiver
            )
        });
    }
    let report = stream
        .run(
            |pre, line| {
                warn(pre);
                eprintln!("pgb: {line}");
            },
            ctx.cancelled(),
        )
        .await
        .map_err(failure)?;
    out.emit(&report, |w| {
        writeln!(
            w,
            "stopped: {} file(s) archived (last {}), {} partial upload(s) (last {}){}",
            report.archived,
            report.last_archived.as_deref().unwrap_or("none"),
            report.partial_uploads,
            report.last_partial.as_deref().unwrap_or("none"),
            if report.slot_created {
                "; slot created"
            } else {
                ""
            }
        )
    })
}

/// A stream ready to run, the same for `pgb wal stream` and the daemon's supervised streams
/// (a job with `wal = "stream"`).
pub(crate) struct Stream {
    source: WalStreamSource,
    repo: pgb::Repository,
    opts: StreamOptions,
    /// Where it archives, for the start line.
    repo_url: String,
}

impl Stream {
    /// The server, tools, repository (with its push options and URL), slot (and whether to
    /// create it), partial interval (at least 1s) and spool (default under the state dir).
    fn new(
        conn: ConnConfig,
        tools: pgb::postgres::ToolLocator,
        (repo, push, repo_url): (pgb::Repository, WalPushOptions, String),
        (slot, create_slot): (&str, bool),
        interval: Duration,
        spool: Option<PathBuf>,
        env: Env<'_>,
    ) -> Result<Self, Failure> {
        let interval = interval.max(Duration::from_secs(1));
        let spool = match spool {
            Some(s) => s,
            None => default_spool(env, &conn, slot)?,
        };
        Ok(Self {
            source: WalStreamSource::new(conn, tools, slot, create_slot),
            repo,
            opts: StreamOptions::new(&spool, interval, push),
            repo_url,
        })
    }

    /// What `pgb wal stream --job NAME --create-slot` streams: the job's database, repository
    /// and keys, its `wal_stream_slot` (default `pgb`, created when missing), its
    /// `wal_stream_partial_interval` (default 5s) and the default spool.
    pub(crate) fn for_job(job: &pgb_config::ResolvedJob, env: Env<'_>) -> Result<Self, Failure> {
        let (repo, push) = pgb_jobs::job_wal_push(job, env)?;
        let conn = connection(None, Some(job), env)?;
        let tools = pgb_jobs::tools(env);
        let target = (repo, push, job.repository.clone());
        let slot = (job.wal_stream_slot.as_str(), true);
        Self::new(
            conn,
            tools,
            target,
            slot,
            job.wal_stream_partial_interval,
            None,
            env,
        )
    }

    /// Streams until `cancel` (then `pg_receivewal` is stopped and reaped and a last pass
    /// archives what is complete); `started` gets the preflight and the start line once the
    /// receiver runs.
    pub(crate) async fn run(
        self,
        started: impl FnOnce(&StreamPreflight, String) + Send,
        cancel: impl Future<Output = ()> + Send,
    ) -> Result<StreamReport, StreamError> {
        let (url, spool) = (self.repo_url, self.opts.spool.clone());
        let on_start = move |pre: &StreamPreflight| {
            let line = format!(
                "streaming WAL of cluster {} (server {}, timeline {}) through slot {} into {} (spool {})",
                pre.system_identifier,
                pre.server,
                pre.timeline,
                pre.slot,
                url,
                spool.display()
            );
            started(pre, line);
        };
        self.source
            .run(self.repo.wal(), self.opts, on_start, cancel)
            .await
    }
}

pub(crate) fn warn(pre: &StreamPreflight) {
    for w in &pre.warnings {
        eprintln!("pgb: warning: {w}");
    }
}

/// `--db`, else the job's database, else `DATABASE_URL`.
fn connection(
    db: Option<&str>,
    job: Option<&pgb_config::ResolvedJob>,
    env: Env<'_>,
) -> Result<ConnConfig, Failure> {
    let (url, from_flag) = match (db, job.and_then(|j| j.database.clone())) {
        (Some(u), _) => (u.to_owned(), true),
        (None, Some(u)) => (u, false),
        (None, None) => match env.get("DATABASE_URL") {
            Some(u) => (u, false),
            None => {
                return Err(Failure::usage(
                    "pgb wal stream needs a server: --db URL, --job NAME or DATABASE_URL",
                ));
            }
        },
    };
    let conn = ConnConfig::parse(&url).map_err(|e| Failure::usage(e.to_string()))?;
    if from_flag && conn.has_password() {
        return Err(Failure::usage(
            "refusing a password on the command line (visible in the process list): put it in PGPASSWORD or a PGPASSFILE",
        ));
    }
    Ok(conn)
}

/// `<state dir>/wal-stream/<server>-<slot>`: the state dir is `PGB_STATE_DIR`, else
/// `$XDG_STATE_HOME/pgb`, else `$HOME/.local/state/pgb`.
fn default_spool(env: Env<'_>, conn: &ConnConfig, slot: &str) -> Result<PathBuf, Failure> {
    let state = if let Some(d) = env.get("PGB_STATE_DIR") {
        PathBuf::from(d)
    } else if let Some(d) = env.get("XDG_STATE_HOME") {
        PathBuf::from(d).join("pgb")
    } else if let Some(h) = env.get("HOME") {
        PathBuf::from(h).join(".local/state/pgb")
    } else {
        return Err(Failure::usage(
            "no state directory for the spool: pass --spool DIR or set PGB_STATE_DIR",
        ));
    };
    let safe: String = format!("{}-{slot}", conn.server())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(state.join("wal-stream").join(safe))
}

/// The exit code of a stream failure: a slot another tool uses 6, a spool another stream
/// holds 8, the server or role 4 (as `backup --physical`), archiving as `wal push`.
pub(crate) fn failure(e: StreamError) -> Failure {
    match e {
        StreamError::SlotInUse(m) => Failure::new(exit::REFUSED, m),
        StreamError::SpoolLocked(m) => Failure::new(exit::LOCKED, m),
        StreamError::Server(d) => Failure::from(pgb::Error::Dump(d)),
        StreamError::Wal(w) => super::wal::failure(w),
        e => Failure::new(exit::FAILURE, e.to_string()),
    }
}
