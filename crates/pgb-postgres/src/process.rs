//! Running a PostgreSQL client tool, written once: spawn with only the environment it needs,
//! drain stderr concurrently into a bounded tail, kill on drop, and turn the exit into a typed
//! [`DumpError`].

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};

/// The pipe size asked for a dump's stdout: 1 MiB, the default `pipe-max-size` of an
/// unprivileged process.
pub(crate) const PIPE_SIZE: usize = 1 << 20;

use pgb_core::{DumpError, DumpErrorKind, ToolExit};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;

use crate::conn::ConnConfig;
use crate::tools::Tool;

/// The standard streams a tool gets: stdin and stdout piped or not; stderr is always piped
/// and drained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pipes {
    pub(crate) stdin: bool,
    pub(crate) stdout: bool,
}

impl Pipes {
    /// stdin and stdout piped.
    pub(crate) const BOTH: Self = Self {
        stdin: true,
        stdout: true,
    };
    /// Only stdout piped (stdin is `/dev/null`).
    pub(crate) const STDOUT: Self = Self {
        stdin: false,
        stdout: true,
    };
    /// Neither: a tool that works on files.
    pub(crate) const NONE: Self = Self {
        stdin: false,
        stdout: false,
    };
}

/// A command for `tool`, with the environment [`std_command`] gives it (the variables the
/// tool's locator was handed). The caller adds the arguments.
pub(crate) fn command(tool: &Tool, conn: Option<&ConnConfig>) -> Command {
    Command::from(std_command(&tool.path, tool.inherited_env(), conn))
}

/// The variables a PostgreSQL tool may inherit from its caller: built by the caller (the
/// binary, from its process environment) and handed in through
/// [`ToolLocator::with_inherited_env`](crate::ToolLocator::with_inherited_env); the library
/// reads no environment itself. Only the `KEPT` list (libpq's own variables, the locale, `PATH`,
/// `HOME`, `TMPDIR`, ...) and `PGPASSWORD` are kept at construction, so notification URLs,
/// passphrases, cloud credentials and `DATABASE_URL` never reach a child, and `PGPASSWORD`
/// only reaches a tool that talks to a server. Empty by default: a tool then runs with
/// nothing of the caller's but what its connection hands it.
///
/// `Debug` shows the names only (`PGPASSWORD` is a secret); clones share the variables.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct InheritedEnv(Arc<[(OsString, OsString)]>);

impl InheritedEnv {
    /// The variables of `vars` a PostgreSQL tool may inherit, e.g. `std::env::vars_os()`;
    /// the others are dropped here.
    pub fn new<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        let kept: Vec<(OsString, OsString)> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .filter(|(name, _)| {
                let name = name.to_string_lossy();
                kept(&name) || name == "PGPASSWORD"
            })
            .collect();
        Self(kept.into())
    }

    /// The names kept, in the order given.
    pub fn names(&self) -> impl Iterator<Item = &OsStr> {
        self.0.iter().map(|(name, _)| name.as_os_str())
    }

    /// What a child gets: every variable kept, less `PGPASSWORD` for a tool that does not
    /// talk to a server.
    fn for_child(&self, connects: bool) -> impl Iterator<Item = (&OsStr, &OsStr)> {
        self.0
            .iter()
            .filter(move |(name, _)| connects || name != "PGPASSWORD")
            .map(|(k, v)| (k.as_os_str(), v.as_os_str()))
    }
}

/// Names only: `PGPASSWORD`'s value is a secret.
impl fmt::Debug for InheritedEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("InheritedEnv")
            .field(&self.names().collect::<Vec<_>>())
            .finish()
    }
}

/// The one place that decides what a PostgreSQL tool's environment holds (every pg_dump,
/// pg_dumpall, pg_restore and psql, and the `--version` probe): nothing but `inherited` (see
/// [`InheritedEnv`]), `PGPASSWORD` only for a tool that talks to a server (`conn`): the URL's
/// password when it has one, else the caller's `PGPASSWORD`, libpq's variable for exactly
/// this. With `conn`, the connection's environment (password, connect timeout) is added.
pub(crate) fn std_command(
    program: &Path,
    inherited: &InheritedEnv,
    conn: Option<&ConnConfig>,
) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    cmd.env_clear();
    cmd.envs(inherited.for_child(conn.is_some()));
    if let Some(conn) = conn {
        cmd.envs(conn.child_env());
    }
    cmd
}

/// Variables a PostgreSQL tool keeps from the caller's environment (see [`kept`]).
const KEPT: &[&str] = &[
    // Where things are, and the locale pg_dump and psql need.
    "PATH",
    "HOME",
    "TMPDIR",
    "LANG",
    "LANGUAGE",
    "TZ",
    // libpq (https://www.postgresql.org/docs/current/libpq-envars.html), PGPASSWORD aside.
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGPASSFILE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSYSCONFDIR",
    "PGLOCALEDIR",
    "PGOPTIONS",
    "PGAPPNAME",
    "PGCHANNELBINDING",
    "PGREQUIREAUTH",
    "PGGSSENCMODE",
    "PGGSSLIB",
    "PGGSSDELEGATION",
    "PGKRBSRVNAME",
    "PGCONNECT_TIMEOUT",
    "PGCLIENTENCODING",
    "PGTARGETSESSIONATTRS",
    "PGLOADBALANCEHOSTS",
    "PGMINPROTOCOLVERSION",
    "PGMAXPROTOCOLVERSION",
    "PGDATESTYLE",
    "PGTZ",
    "PGGEQO",
    // Kerberos (GSSAPI authentication): where the ticket cache and configuration are.
    "KRB5CCNAME",
    "KRB5_CONFIG",
    // OpenSSL's trusted certificates (`sslrootcert=system`).
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// Whether a PostgreSQL tool keeps the caller's variable `name`: [`KEPT`], `LC_*` and libpq's
/// `PGSSL*` (PGSSLMODE, PGSSLROOTCERT, PGSSLCERT, PGSSLKEY, ...).
pub(crate) fn kept(name: &str) -> bool {
    KEPT.contains(&name) || name.starts_with("LC_") || name.starts_with("PGSSL")
}

/// A running tool. Dropping it kills the process (`kill_on_drop`).
#[derive(Debug)]
pub(crate) struct ToolProcess {
    program: &'static str,
    child: Child,
    tail: StderrTail,
    drained: Option<JoinHandle<()>>,
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
}

impl ToolProcess {
    /// Spawns `cmd`; `program` names it in errors and logs.
    ///
    /// # Errors
    /// `ToolNotFound` if it cannot be started.
    pub(crate) fn spawn(
        mut cmd: Command,
        program: &'static str,
        pipes: Pipes,
    ) -> Result<Self, DumpError> {
        let piped = |yes: bool| if yes { Stdio::piped() } else { Stdio::null() };
        cmd.stdin(piped(pipes.stdin))
            .stdout(piped(pipes.stdout))
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            DumpError::new(
                DumpErrorKind::ToolNotFound,
                format!(
                    "cannot run {}: {e}",
                    cmd.as_std().get_program().to_string_lossy()
                ),
            )
            .with_program(program)
        })?;
        let (tail, drained) = StderrTail::drain(child.stderr.take().expect("piped"), program);
        tracing::debug!(pid = child.id(), program, "started");
        Ok(Self {
            program,
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            child,
            tail,
            drained: Some(drained),
        })
    }

    /// The process id, while it runs.
    pub(crate) fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// The program's name.
    pub(crate) fn program(&self) -> &'static str {
        self.program
    }

    /// Takes the piped stdin (`None` the second time, or when not piped).
    pub(crate) fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.stdin.take()
    }

    /// Takes the piped stdout.
    pub(crate) fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.stdout.take()
    }

    /// Takes stdout with its pipe enlarged to [`PIPE_SIZE`] (Linux; elsewhere as it is), so a
    /// tool writing in bursts (pg_dump's COPY) runs ahead instead of waiting on a 64 KiB pipe,
    /// and each read takes more at once.
    pub(crate) fn take_stdout_wide(&mut self) -> Option<ChildStdout> {
        let stdout = self.stdout.take()?;
        // Failure (e.g. over /proc/sys/fs/pipe-max-size) leaves the pipe as it was.
        #[cfg(target_os = "linux")]
        let _ = rustix::pipe::fcntl_setpipe_size(&stdout, PIPE_SIZE);
        Some(stdout)
    }

    /// Closes stdin (if still held), waits for the tool and the stderr drain, and returns
    /// `Ok` only for exit status 0.
    ///
    /// # Errors
    /// `Failed` with the program, its [`ToolExit`] and its stderr tail; `Io` if waiting failed.
    pub(crate) async fn wait(&mut self) -> Result<(), DumpError> {
        self.stdin = None;
        let status = self.child.wait().await.map_err(|e| {
            DumpError::new(
                DumpErrorKind::Io,
                format!("waiting for {}: {e}", self.program),
            )
            .with_program(self.program)
        })?;
        if let Some(h) = self.drained.take() {
            let _ = h.await;
        }
        if status.success() {
            return Ok(());
        }
        Err(DumpError::tool_failed(
            self.program,
            tool_exit(status),
            self.tail.text(),
        ))
    }

    /// Kills the tool and reaps it.
    pub(crate) async fn kill(&mut self) {
        self.stdin = None;
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        tracing::debug!(program = self.program, "killed and reaped");
    }
}

/// How a process ended, typed.
pub(crate) fn tool_exit(status: ExitStatus) -> ToolExit {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => ToolExit::Code(c),
        (None, Some(s)) => ToolExit::Signal(s),
        // Neither a code nor a signal does not happen on Unix; report it as a failure.
        _ => ToolExit::Code(-1),
    }
}

/// The last bytes a child wrote to stderr, drained concurrently so it can never block.
#[derive(Debug, Clone, Default)]
pub(crate) struct StderrTail(Arc<Mutex<VecDeque<u8>>>);

/// At most this many bytes of stderr are kept.
const TAIL_BYTES: usize = 16 * 1024;
/// At most this many lines of them are reported.
const TAIL_LINES: usize = 8;

impl StderrTail {
    /// Starts draining `stderr` into the tail.
    fn drain(stderr: tokio::process::ChildStderr, program: &'static str) -> (Self, JoinHandle<()>) {
        let tail = Self::default();
        let t = tail.clone();
        let handle = tokio::spawn(async move {
            let mut stderr = stderr;
            let mut buf = [0u8; 4096];
            loop {
                match stderr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => t.push(&buf[..n]),
                }
            }
            let text = t.text();
            if !text.is_empty() {
                tracing::debug!(program, stderr = %text, "child stderr");
            }
        });
        (tail, handle)
    }

    fn push(&self, bytes: &[u8]) {
        let mut q = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        q.extend(bytes);
        let excess = q.len().saturating_sub(TAIL_BYTES);
        q.drain(..excess);
    }

    /// The last few non-empty lines, always with the last error line (`ERROR:`, `error:`,
    /// `FATAL:`) among them: pg_restore follows its `ERROR:` line with the whole statement
    /// that failed (`Command was: CREATE TABLE ...`), which would otherwise push it out.
    pub(crate) fn text(&self) -> String {
        let q = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let bytes: Vec<u8> = q.iter().copied().collect();
        let s = String::from_utf8_lossy(&bytes);
        let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
        let from = lines.len().saturating_sub(TAIL_LINES);
        let is_error =
            |l: &&str| l.contains("ERROR:") || l.contains("error:") || l.contains("FATAL:");
        match lines.iter().rposition(is_error) {
            Some(i) if i < from => {
                let from = lines.len().saturating_sub(TAIL_LINES - 1).max(i + 1);
                let mut out = vec![lines[i]];
                out.extend(&lines[from..]);
                out.join("\n")
            }
            _ => lines[from..].join("\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_line_stays_in_the_tail_however_long_the_failed_command() {
        let t = StderrTail::default();
        t.push(b"pg_restore: error: could not execute query: ERROR:  relation \"public.actor_actor_id_seq\" does not exist\nLINE 2: actor_id integer DEFAULT nextval('public.actor_actor_id_seq'...\nCommand was: CREATE TABLE public.actor (\n");
        for i in 0..20 {
            t.push(format!("    col{i} text,\n").as_bytes());
        }
        t.push(b");\n");
        let text = t.text();
        assert!(
            text.starts_with("pg_restore: error: could not execute query: ERROR:  relation"),
            "{text}"
        );
        assert_eq!(text.lines().count(), TAIL_LINES);
        assert!(text.ends_with(");"), "{text}");
    }

    #[test]
    fn tail_is_bounded_and_keeps_the_last_lines() {
        let t = StderrTail::default();
        for i in 0..10_000 {
            t.push(format!("line {i}\n").as_bytes());
        }
        assert!(t.0.lock().unwrap().len() <= TAIL_BYTES);
        let text = t.text();
        assert_eq!(text.lines().count(), TAIL_LINES);
        assert!(text.ends_with("line 9999"), "{text}");
    }

    #[test]
    fn a_tool_keeps_libpq_and_locale_variables_and_nothing_else() {
        for name in [
            "PATH",
            "HOME",
            "TMPDIR",
            "LANG",
            "LC_ALL",
            "LC_CTYPE",
            "TZ",
            "PGHOST",
            "PGPORT",
            "PGUSER",
            "PGDATABASE",
            "PGPASSFILE",
            "PGSERVICE",
            "PGSSLMODE",
            "PGSSLROOTCERT",
            "PGCONNECT_TIMEOUT",
            "PGAPPNAME",
            "PGOPTIONS",
        ] {
            assert!(kept(name), "{name} is dropped");
        }
        for name in [
            "PGPASSWORD",
            "PGB_PASSPHRASE",
            "PGB_AUTH_KEY",
            "PGB_NOTIFY_URL",
            "DATABASE_URL",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ACCESS_KEY_ID",
            "AZURE_STORAGE_KEY",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "RUST_LOG",
            "PG",
        ] {
            assert!(!kept(name), "{name} is kept");
        }
    }

    #[test]
    fn the_inherited_env_keeps_what_a_tool_may_see_and_debug_names_it_only() {
        let env = InheritedEnv::new([
            ("PGHOST", "db"),
            ("LC_CTYPE", "C"),
            ("PGSSLMODE", "require"),
            ("PGPASSWORD", "s3cret"),
            ("PGB_PASSPHRASE", "s3cret"),
            ("AWS_SECRET_ACCESS_KEY", "s3cret"),
        ]);
        let names: Vec<_> = env.names().collect();
        assert_eq!(names, ["PGHOST", "LC_CTYPE", "PGSSLMODE", "PGPASSWORD"]);
        assert_eq!(
            format!("{env:?}"),
            r#"InheritedEnv(["PGHOST", "LC_CTYPE", "PGSSLMODE", "PGPASSWORD"])"#
        );
        let names_of = |cmd: &std::process::Command| -> Vec<String> {
            cmd.get_envs()
                .map(|(k, _)| k.to_string_lossy().into_owned())
                .collect()
        };
        // No server, no password.
        let probe = names_of(&std_command(Path::new("true"), &env, None));
        assert_eq!(probe, ["LC_CTYPE", "PGHOST", "PGSSLMODE"]);
        let conn = ConnConfig::parse("postgres://u@db/x").unwrap();
        let seen = names_of(&std_command(Path::new("true"), &env, Some(&conn)));
        assert!(seen.contains(&"PGPASSWORD".to_owned()), "{seen:?}");
        assert!(seen.contains(&"PGHOST".to_owned()), "{seen:?}");
    }

    #[tokio::test]
    async fn a_failing_tool_is_a_typed_error_with_its_stderr() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo 'x: error: it broke' >&2; exit 3"]);
        let mut p = ToolProcess::spawn(cmd, "sh", Pipes::NONE).unwrap();
        let e = p.wait().await.unwrap_err();
        assert_eq!(e.kind(), DumpErrorKind::Failed);
        assert_eq!(e.program(), Some("sh"));
        assert_eq!(e.exit(), Some(ToolExit::Code(3)));
        assert_eq!(e.stderr_tail(), Some("x: error: it broke"));
        assert_eq!(e.to_string(), "sh exited with status 3: x: error: it broke");
    }

    #[tokio::test]
    async fn a_killed_tool_reports_the_signal() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "kill -9 $$"]);
        let mut p = ToolProcess::spawn(cmd, "sh", Pipes::NONE).unwrap();
        let e = p.wait().await.unwrap_err();
        assert_eq!(e.exit(), Some(ToolExit::Signal(9)));
    }

    #[tokio::test]
    async fn a_missing_program_is_tool_not_found() {
        let cmd = Command::new("/nonexistent/pg_dump");
        let e = ToolProcess::spawn(cmd, "pg_dump", Pipes::NONE).unwrap_err();
        assert_eq!(e.kind(), DumpErrorKind::ToolNotFound);
        assert!(e.to_string().contains("/nonexistent/pg_dump"), "{e}");
    }
}
