//! One module per command. Each handler is short: arguments → typed options
//! ([`crate::resolve`]) → one library operation → render its report ([`crate::render`]). A
//! handler never loops over backups or deletes anything itself.

mod backup;
mod backup_job;
mod check;
mod cluster;
mod config;
pub(crate) mod daemon;
mod docs;
mod drill;
mod gc;
mod key;
mod list;
mod migrations;
pub(crate) mod notify;
mod physical;
mod pitr_drill;
mod prune;
mod report;
mod restore;
mod retention;
mod run;
mod schedule;
mod stream_supervisor;
mod verify;
mod wal;
mod wal_notify;
mod wal_stream;

use tokio::sync::watch;

use crate::args::Command;
use crate::exit::{FAILURE, Failure};
use crate::render::ProgressConfig;
use crate::resolve::{Env, SharedEnv};

/// What every handler gets from `main`: the environment and the signal that interrupts it.
pub(crate) struct Ctx<'a> {
    pub(crate) env: Env<'a>,
    shared_env: SharedEnv,
    signal: watch::Receiver<Option<i32>>,
    /// How backup, verify and restore show their progress (`--progress`).
    pub(crate) progress: ProgressConfig,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(env: &'a SharedEnv, signal: watch::Receiver<Option<i32>>) -> Self {
        Self {
            env: &**env,
            shared_env: SharedEnv::clone(env),
            signal,
            progress: ProgressConfig::default(),
        }
    }

    /// Sets how progress is shown.
    pub(crate) fn with_progress(mut self, progress: ProgressConfig) -> Self {
        self.progress = progress;
        self
    }

    /// The process environment `main` snapshotted, owned, for what outlives the handler's
    /// borrow (the daemon's job runs). Not a `--job`'s layer: that is [`Ctx::env`].
    pub(crate) fn shared_env(&self) -> SharedEnv {
        SharedEnv::clone(&self.shared_env)
    }

    /// The same signal with another environment (a `--job`'s, [`crate::resolve::job`]).
    pub(crate) fn with_env<'b>(&self, env: Env<'b>) -> Ctx<'b> {
        Ctx {
            env,
            shared_env: SharedEnv::clone(&self.shared_env),
            signal: self.signal.clone(),
            progress: self.progress,
        }
    }

    /// Resolves with the exit code once SIGINT (130) or SIGTERM (143) arrived.
    pub(crate) fn interrupted(&self) -> impl Future<Output = i32> + Send + 'static {
        let mut rx = self.signal.clone();
        async move {
            rx.wait_for(Option::is_some)
                .await
                .map_or(FAILURE, |v| v.unwrap_or(FAILURE))
        }
    }

    /// Completes once a signal arrived: the cancellation a library operation takes.
    pub(crate) fn cancelled(&self) -> impl Future<Output = ()> + Send + 'static {
        let interrupted = self.interrupted();
        async move {
            interrupted.await;
        }
    }

    /// The signal that already arrived, if any.
    pub(crate) fn signalled(&self) -> Option<i32> {
        *self.signal.borrow()
    }
}

/// Runs a command until it finishes or a signal interrupts it. A backup (or a drill) is
/// cancelled through the library, which releases its lease (drops its scratch database)
/// before returning; any other command is dropped (its
/// children are killed on drop).
pub(crate) async fn run(cmd: Command, ctx: &Ctx<'_>) -> Result<(), Failure> {
    // The daemon stops its scheduler on a signal (running jobs cancelled, locks released)
    // and exits 0 after a clean stop; so does `wal stream` (pg_receivewal killed and reaped).
    if matches!(
        cmd,
        Command::Daemon(_)
            | Command::Wal {
                command: crate::args::WalCommand::Stream(_)
            }
    ) {
        return dispatch(cmd, ctx).await;
    }
    if matches!(
        cmd,
        Command::Backup(_) | Command::Run(_) | Command::Drill(_)
    ) {
        let res = dispatch(cmd, ctx).await;
        return ctx
            .signalled()
            .map_or(res, |code| Err(Failure::interrupted(code)));
    }
    tokio::select! {
        res = dispatch(cmd, ctx) => res,
        code = ctx.interrupted() => Err(Failure::interrupted(code)),
    }
}

async fn dispatch(cmd: Command, ctx: &Ctx<'_>) -> Result<(), Failure> {
    match cmd {
        Command::Backup(a) => backup::run(a, ctx).await,
        Command::List(a) => list::run(a, ctx).await,
        Command::Verify(a) => verify::run(a, ctx).await,
        Command::Restore(a) => restore::run(a, ctx).await,
        Command::Prune(a) => prune::run(a, ctx).await,
        Command::Gc(a) => gc::run(a, ctx).await,
        Command::Drill(a) => drill::run(a, ctx).await,
        Command::Check(a) => check::run(a, ctx).await,
        Command::Key { command } => key::run(command),
        Command::Retention { command } => retention::run(command),
        Command::Run(a) => run::run(a, ctx).await,
        Command::Daemon(a) => daemon::run(a, ctx).await,
        Command::Config { command } => config::run(command, ctx.env),
        Command::Schedule { command } => schedule::run(command, ctx.env),
        Command::Wal { command } => wal::run(command, ctx).await,
        Command::Report(a) => report::run(a, ctx).await,
        Command::Completions(a) => docs::completions(&a),
        Command::Man(a) => docs::man(&a),
    }
}
