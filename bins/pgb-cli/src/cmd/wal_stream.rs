//! `pgb wal stream`: flags or `--job` → the server, slot, spool and push options → one
//! library call (`WalStreamSource::run`, cancelled by SIGTERM/SIGINT) → its report. A clean
//! stop on a signal exits 0, like the daemon.

use std::path::PathBuf;
use std::time::Duration;

use pgb::postgres::{ConnConfig, StreamError, StreamOptions, StreamPreflight, WalStreamSource};
use pgb::wal::WalPushOptions;

use super::Ctx;
use crate::args::WalStreamArgs;
use crate::exit::{self, Failure};
use crate::render::Output;
use crate::resolve::{self, Env};

/// The slot when `--slot` is not given.
const SLOT: &str = "pgb";
/// How often the partial segment is stored, by default.
const PARTIAL_INTERVAL: &str = "5s";

pub(super) async fn run(a: WalStreamArgs, ctx: &Ctx<'_>) -> Result<(), Failure> {
    let env = ctx.env;
    let job = match &a.job.job {
        Some(name) => Some(resolve::config::job(a.job.config.as_deref(), name, env)?),
        None => None,
    };
    let (repo, mut push) = match &job {
        Some(j) if a.repo.repo.is_none() => {
            let (repo, opts) = pgb_jobs::job_wal_push(j, env)?;
            (repo, opts)
        }
        _ => (
            resolve::backup_repository(&a.repo, env)?,
            WalPushOptions::default(),
        ),
    };
    if let Some(c) = &a.compression {
        push =
            push.with_compression(c.parse().map_err(|e: pgb::InvalidCompression| {
                Failure::usage(format!("--compression: {e}"))
            })?);
    }
    let flags_name_keys = !a.encrypt.recipient.is_empty()
        || a.encrypt.recipients_file.is_some()
        || a.encrypt.passphrase_file.is_some()
        || a.encrypt.auth_key_file.is_some();
    if job.is_none() || flags_name_keys {
        push = push
            .with_encryption(resolve::encryption(&a.encrypt, env)?)
            .with_auth_key(resolve::auth_key(a.encrypt.auth_key_file.as_deref(), env)?);
    }
    let conn = connection(&a, job.as_ref(), env)?;
    let slot = a.slot.as_deref().unwrap_or(SLOT);
    let interval = a.partial_interval.as_deref().unwrap_or(PARTIAL_INTERVAL);
    let interval = pgb_config::parse_duration(interval)
        .map_err(|e| Failure::usage(format!("--partial-interval: {e}")))?
        .max(Duration::from_secs(1));
    let spool = match &a.spool {
        Some(s) => s.clone(),
        None => default_spool(env, &conn, slot)?,
    };
    let source = WalStreamSource::new(conn, resolve::tools(&a.tools, env), slot, a.create_slot);
    let out = Output::json(a.json);
    if a.preflight {
        let pre = source.preflight().await.map_err(failure)?;
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
    let opts = StreamOptions::new(&spool, interval, push);
    let report = source
        .run(
            repo.wal(),
            opts,
            |pre| {
                warn(pre);
                eprintln!(
                    "pgb: streaming WAL of cluster {} (server {}, timeline {}) through slot {} into {} (spool {})",
                    pre.system_identifier,
                    pre.server,
                    pre.timeline,
                    pre.slot,
                    resolve::repo_url(&a.repo, env),
                    spool.display()
                );
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

fn warn(pre: &StreamPreflight) {
    for w in &pre.warnings {
        eprintln!("pgb: warning: {w}");
    }
}

/// `--db`, else the job's database, else `DATABASE_URL`.
fn connection(
    a: &WalStreamArgs,
    job: Option<&pgb_config::ResolvedJob>,
    env: Env<'_>,
) -> Result<ConnConfig, Failure> {
    let (url, from_flag) = match (&a.db, job.and_then(|j| j.database.clone())) {
        (Some(u), _) => (u.clone(), true),
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
fn failure(e: StreamError) -> Failure {
    match e {
        StreamError::SlotInUse(m) => Failure::new(exit::REFUSED, m),
        StreamError::SpoolLocked(m) => Failure::new(exit::LOCKED, m),
        StreamError::Server(d) => Failure::from(pgb::Error::Dump(d)),
        StreamError::Wal(w) => super::wal::failure(w),
        e => Failure::new(exit::FAILURE, e.to_string()),
    }
}
