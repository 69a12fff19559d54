//! One function per subcommand: read the environment, build the library objects, run, print.

use std::collections::BTreeMap;

use pgb_core::retention::{self, Backup as RetBackup, Policy, RetentionPolicy};
use pgb_core::{
    ArchiveFormat, BackupOptions, Compression, Event, Manifest, Repository, RestoreOptions,
};
use pgb_postgres::{ConnConfig, PgDump, PgRestore, ToolLocator};
use serde::Serialize;
use time::OffsetDateTime;

use crate::cli::{
    Command, EncryptArgs, Format, KeyArgs, KeyCommand, PolicyArgs, RepoArgs, RetentionCommand,
    ToolArgs,
};
use crate::storage_url::{open_storage, redact_url};
use crate::{Failure, exit};
use pgb_core::{AuthKey, Decryption, Encryption};

const DEFAULT_REPO: &str = "pgb-backups";

/// Runs a command until it finishes or `signal` reports one (SIGINT → 130, SIGTERM → 143).
/// A backup is cancelled through the library so it can release its lease; any other command
/// is simply dropped (its children are killed on drop, restores roll back).
pub(crate) async fn run(
    cmd: Command,
    signal: tokio::sync::watch::Receiver<Option<i32>>,
) -> Result<(), Failure> {
    let interrupted = |mut rx: tokio::sync::watch::Receiver<Option<i32>>| async move {
        let code = rx
            .wait_for(Option::is_some)
            .await
            .map(|v| v.unwrap_or(exit::FAILURE));
        code.unwrap_or(exit::FAILURE)
    };
    let is_backup = matches!(cmd, Command::Backup { .. });
    let signal_for_cmd = signal.clone();
    let work = run_command(cmd, async move {
        let _ = interrupted(signal_for_cmd).await;
    });
    if is_backup {
        let res = work.await;
        if let Some(code) = *signal.borrow() {
            return Err(Failure::new(code, interrupted_message(code)));
        }
        return res;
    }
    tokio::select! {
        res = work => res,
        code = interrupted(signal) => Err(Failure::new(code, interrupted_message(code))),
    }
}

fn interrupted_message(code: i32) -> String {
    let sig = if code == exit::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    };
    format!("interrupted by {sig}; nothing was committed by the interrupted operation")
}

async fn run_command(
    cmd: Command,
    cancel: impl std::future::Future<Output = ()> + Send,
) -> Result<(), Failure> {
    match cmd {
        Command::Backup {
            repo,
            db,
            format,
            compression,
            label,
            prune,
            verify_upload,
            encrypt,
            policy,
            tools,
            json,
        } => {
            // Fail closed, before anything else runs: bad keys never reach pg_dump.
            let encryption = build_encryption(&encrypt)?;
            let compression: Compression = compression
                .parse()
                .map_err(|e: pgb_core::InvalidCompression| Failure::usage(e.to_string()))?;
            let policy = if prune {
                Some(build_policy(&policy)?.ok_or_else(|| {
                    Failure::usage(
                        "--prune needs a retention policy, e.g. --keep-daily 7 --keep-weekly 4",
                    )
                })?)
            } else {
                None
            };
            let conn = db_url(&db, "DATABASE_URL")?;
            let repo = open_repo(&repo)?;
            let dumper = PgDump::new(conn, locator(&tools)).with_format(match format {
                Format::Custom => ArchiveFormat::Custom,
                Format::Plain => ArchiveFormat::Plain,
            });
            let mut opts = BackupOptions::default().with_compression(compression);
            for l in label {
                opts = opts.with_label(l);
            }
            if let Some(e) = encryption {
                opts = opts.with_encryption(e);
            }
            opts = opts.with_verify_upload(verify_upload);
            let manifest = repo
                .backup_until(&dumper, &opts, &log_progress, cancel)
                .await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&manifest).expect("serializable")
                );
            } else {
                println!(
                    "backup {} of {} complete: {} stored ({} uncompressed, {}), sha256 {}",
                    manifest.id,
                    manifest.database,
                    human(manifest.stored_size()),
                    human(manifest.plain_size()),
                    manifest.compression,
                    manifest.dump().map_or("", |a| a.stored_sha256.as_str())
                );
            }
            if let Some(policy) = policy {
                // Only reached after the backup committed: a failed backup never prunes.
                prune_repo(&repo, &policy, false, json).await?;
            }
            Ok(())
        }
        Command::List {
            repo,
            database,
            json,
        } => {
            let repo = open_repo(&repo)?;
            let listing = repo.list().await?;
            for bad in &listing.invalid {
                eprintln!(
                    "pgb: warning: backup {} is unusable and not listed: {}",
                    bad.id, bad.problem
                );
            }
            if !listing.leftovers.is_empty() {
                eprintln!(
                    "pgb: note: {} uncommitted backup folder(s) without a manifest (not backups; `pgb gc` removes them)",
                    listing.leftovers.len()
                );
            }
            let rows: Vec<&Manifest> = listing
                .backups
                .iter()
                .filter(|m| database.as_ref().is_none_or(|d| &m.database == d))
                .collect();
            if json {
                let entries: Vec<ListEntry<'_>> =
                    rows.iter().map(|m| ListEntry::from(*m)).collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&entries).expect("serializable")
                );
            } else if rows.is_empty() {
                println!("no backups in {}", repo.storage().info().location);
            } else {
                println!(
                    "{:<24} {:<16} {:<20} {:>10} {:>10} {:<7} {:<8} LABELS",
                    "ID", "DATABASE", "STARTED (UTC)", "STORED", "PLAIN", "FORMAT", "COMPRESS"
                );
                for m in rows {
                    println!(
                        "{:<24} {:<16} {:<20} {:>10} {:>10} {:<7} {:<8} {}",
                        m.id,
                        m.database,
                        fmt_time(m.started_at),
                        human(m.stored_size()),
                        human(m.plain_size()),
                        m.format.to_string(),
                        m.compression.to_string(),
                        m.labels.join(",")
                    );
                }
            }
            Ok(())
        }
        Command::Verify {
            repo,
            id,
            all,
            keys,
            tools,
            json,
        } => {
            let decryption = build_decryption(&keys)?;
            let repo = open_repo(&repo)?
                .with_decryption(decryption)
                .allow_unauthenticated(keys.allow_unauthenticated);
            let checker = PgRestore::new(
                ConnConfig::parse("postgres:///").expect("static"),
                locator(&tools),
                std::env::temp_dir(),
            );
            let targets: Vec<Manifest> = if all {
                let listing = repo.list().await?;
                let mut failures = Vec::new();
                for bad in &listing.invalid {
                    failures.push(format!("backup {}: {}", bad.id, bad.problem));
                }
                if !failures.is_empty() {
                    for f in &failures {
                        eprintln!("pgb: FAILED {f}");
                    }
                }
                if listing.backups.is_empty() && failures.is_empty() {
                    return Err(Failure::new(
                        exit::NOT_FOUND,
                        "no complete backup in the repository",
                    ));
                }
                let backups = listing.backups;
                let mut reports = Vec::new();
                let mut failed = failures.len();
                for m in &backups {
                    match repo.verify(m, Some(&checker), &log_progress).await {
                        Ok(r) => {
                            if !json {
                                println!(
                                    "ok {}: {} stored, {} plain, {} archive entries",
                                    r.id,
                                    human(r.stored_size),
                                    human(r.plain_size),
                                    r.toc_entries.map_or("-".to_owned(), |n| n.to_string())
                                );
                            }
                            reports.push(VerifyEntry {
                                id: r.id.to_string(),
                                ok: true,
                                error: None,
                            });
                        }
                        Err(e) => {
                            failed += 1;
                            eprintln!("pgb: FAILED {e}");
                            reports.push(VerifyEntry {
                                id: m.id.to_string(),
                                ok: false,
                                error: Some(e.to_string()),
                            });
                        }
                    }
                }
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&reports).expect("serializable")
                    );
                }
                if failed > 0 {
                    return Err(Failure::new(
                        exit::INTEGRITY,
                        format!("{failed} backup(s) failed verification"),
                    ));
                }
                return Ok(());
            } else {
                vec![
                    repo.resolve(id.as_deref().unwrap_or("latest"), None)
                        .await?,
                ]
            };
            for m in targets {
                let r = repo.verify(&m, Some(&checker), &log_progress).await?;
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&VerifyEntry {
                            id: r.id.to_string(),
                            ok: true,
                            error: None
                        })
                        .expect("serializable")
                    );
                } else {
                    println!(
                        "ok {}: {} stored, {} plain, {} archive entries",
                        r.id,
                        human(r.stored_size),
                        human(r.plain_size),
                        r.toc_entries.map_or("-".to_owned(), |n| n.to_string())
                    );
                }
            }
            Ok(())
        }
        Command::Restore {
            id,
            repo,
            db,
            from_database,
            clean,
            jobs,
            spool_dir,
            allow_create,
            no_verify_first,
            keep_owner,
            keep_privileges,
            keys,
            tools,
            json,
        } => {
            let conn = db_url(&db, "")?;
            let decryption = build_decryption(&keys)?;
            let repo = open_repo(&repo)?
                .with_decryption(decryption)
                .allow_unauthenticated(keys.allow_unauthenticated);
            let manifest = repo.resolve(&id, from_database.as_deref()).await?;
            let restorer = PgRestore::new(
                conn,
                locator(&tools),
                spool_dir.unwrap_or_else(std::env::temp_dir),
            );
            let mut opts = RestoreOptions::new(manifest.format, manifest.pg_dump_major)
                .with_clean(clean)
                .with_jobs(jobs)
                .with_allow_create(allow_create)
                .with_verify_first(!no_verify_first);
            opts.keep_owner = keep_owner;
            opts.keep_privileges = keep_privileges;
            let started = std::time::Instant::now();
            let report = repo
                .restore(&manifest, &restorer, &opts, &log_progress)
                .await?;
            if json {
                #[derive(Serialize)]
                struct Out<'a> {
                    backup: &'a str,
                    database: &'a str,
                    created: bool,
                    seconds: f64,
                }
                let out = Out {
                    backup: manifest.id.as_str(),
                    database: &report.database,
                    created: report.created,
                    seconds: started.elapsed().as_secs_f64(),
                };
                println!(
                    "{}",
                    serde_json::to_string_pretty(&out).expect("serializable")
                );
            } else {
                println!(
                    "restored backup {} ({} of {}) into {}{} in {:.1}s",
                    manifest.id,
                    manifest.database,
                    fmt_time(manifest.started_at),
                    report.database,
                    if report.created { " (created)" } else { "" },
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(())
        }
        Command::Prune {
            repo,
            policy,
            dry_run,
            json,
        } => {
            let policy = build_policy(&policy)?.ok_or_else(|| {
                Failure::usage("no retention policy given: use --keep-last, --keep-daily, --keep-within, ... (see docs/retention.md)")
            })?;
            let repo = open_repo(&repo)?;
            prune_repo(&repo, &policy, dry_run, json).await
        }
        Command::Gc {
            repo,
            older_than,
            dry_run,
        } => {
            let grace = parse_grace(&older_than)?;
            let repo = open_repo(&repo)?;
            let removed = repo.gc(OffsetDateTime::now_utc(), grace, dry_run).await?;
            let verb = if dry_run { "would remove" } else { "removed" };
            for l in &removed {
                println!(
                    "{verb} {} ({} object(s) of an uncommitted backup)",
                    l.id,
                    l.keys.len()
                );
            }
            println!(
                "gc: {verb} {} leftover folder(s) older than {older_than}",
                removed.len()
            );
            Ok(())
        }
        Command::Key {
            command:
                KeyCommand::Generate {
                    output,
                    auth_key_file,
                },
        } => {
            let (identity, recipient) = pgb_core::generate_identity();
            write_secret_file(&output, &identity)?;
            println!("{recipient}");
            eprintln!(
                "pgb: wrote the identity (secret) to {}; encrypt with --recipient {recipient}",
                output.display()
            );
            if let Some(path) = auth_key_file {
                let key =
                    AuthKey::generate().map_err(|e| Failure::new(exit::KEY, e.to_string()))?;
                write_secret_file(&path, &format!("{}\n", key.to_hex()))?;
                eprintln!(
                    "pgb: wrote a manifest authentication key to {}",
                    path.display()
                );
            }
            Ok(())
        }
        Command::Retention {
            command:
                RetentionCommand::Plan {
                    policy,
                    input,
                    now,
                    json,
                },
        } => {
            let policy = build_policy(&policy)?
                .ok_or_else(|| Failure::usage("no retention policy given"))?;
            let text = if input.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(&input)
            }
            .map_err(|e| Failure::usage(format!("cannot read {}: {e}", input.display())))?;
            let backups: Vec<RetBackup> = serde_json::from_str(&text).map_err(|e| {
                Failure::usage(format!(
                    "{}: expected a JSON array of {{\"id\", \"time\" (RFC 3339), \"labels\"}}: {e}",
                    input.display()
                ))
            })?;
            let now = match now {
                Some(s) => {
                    OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
                        .map_err(|e| {
                            Failure::usage(format!("--now {s:?}: expected RFC 3339 ({e})"))
                        })?
                }
                None => OffsetDateTime::now_utc(),
            };
            let plan = policy
                .plan(&backups, now)
                .map_err(|e| Failure::usage(e.to_string()))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&plan).expect("serializable")
                );
            } else {
                print_plan(
                    &plan,
                    &backups.iter().map(|b| (b.id.clone(), b.time)).collect(),
                );
            }
            Ok(())
        }
    }
}

fn key_failure(msg: impl Into<String>) -> Failure {
    Failure::new(exit::KEY, msg)
}

/// Reads a secret from a file; errors never include its contents.
fn read_secret(path: &std::path::Path, what: &str) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| {
        key_failure(format!(
            "cannot read the {what} file {}: {e}",
            path.display()
        ))
    })
}

fn write_secret_file(path: &std::path::Path, contents: &str) -> Result<(), Failure> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            key_failure(format!(
                "cannot create {}: {e} (existing key files are never overwritten)",
                path.display()
            ))
        })?;
    f.write_all(contents.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| key_failure(format!("cannot write {}: {e}", path.display())))
}

const SECRET_FLAG: &str = "refusing --passphrase on the command line (visible in the process list): use PGB_PASSPHRASE or --passphrase-file";

fn auth_key(file: Option<&std::path::Path>) -> Result<Option<AuthKey>, Failure> {
    let text = match (file, std::env::var("PGB_AUTH_KEY")) {
        (Some(path), _) => read_secret(path, "authentication key")?,
        (None, Ok(v)) => v,
        (None, Err(_)) => return Ok(None),
    };
    text.parse()
        .map(Some)
        .map_err(|e: pgb_core::KeyError| key_failure(e.to_string()))
}

fn passphrase(file: Option<&std::path::Path>) -> Result<Option<String>, Failure> {
    match (file, std::env::var("PGB_PASSPHRASE")) {
        (Some(path), _) => {
            let p = read_secret(path, "passphrase")?;
            Ok(Some(p.strip_suffix('\n').unwrap_or(&p).to_owned()))
        }
        (None, Ok(v)) => Ok(Some(v)),
        (None, Err(_)) => Ok(None),
    }
}

/// Encryption for a backup, validated completely before anything runs.
fn build_encryption(a: &EncryptArgs) -> Result<Option<Encryption>, Failure> {
    if a.passphrase.is_some() {
        return Err(Failure::usage(SECRET_FLAG));
    }
    let mut recipients = a.recipient.clone();
    if let Some(path) = &a.recipients_file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            key_failure(format!(
                "cannot read the recipients file {}: {e}",
                path.display()
            ))
        })?;
        let listed: Vec<String> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        if listed.is_empty() {
            return Err(key_failure(format!(
                "the recipients file {} lists no recipient",
                path.display()
            )));
        }
        recipients.extend(listed);
    }
    let pass = passphrase(a.passphrase_file.as_deref())?;
    let enc = match (recipients.is_empty(), pass) {
        (false, Some(_)) => {
            return Err(Failure::usage(
                "choose recipients or a passphrase, not both (age cannot mix them)",
            ));
        }
        (false, None) => {
            Encryption::to_recipients(&recipients).map_err(|e| key_failure(e.to_string()))?
        }
        (true, Some(p)) => {
            Encryption::with_passphrase(p).map_err(|e| key_failure(e.to_string()))?
        }
        (true, None) => {
            if a.auth_key_file.is_some() {
                return Err(Failure::usage(
                    "--auth-key-file authenticates encrypted backups: add --recipient or a passphrase",
                ));
            }
            return Ok(None);
        }
    };
    Ok(Some(match auth_key(a.auth_key_file.as_deref())? {
        Some(k) => enc.with_auth_key(k),
        None => enc,
    }))
}

/// Keys for reading encrypted backups.
fn build_decryption(a: &KeyArgs) -> Result<Decryption, Failure> {
    if a.passphrase.is_some() {
        return Err(Failure::usage(SECRET_FLAG));
    }
    let mut d = Decryption::none();
    for path in &a.identity_file {
        let text = read_secret(path, "identity")?;
        d = d
            .with_identity_file_contents(&text)
            .map_err(|e| key_failure(format!("{}: {e}", path.display())))?;
    }
    if let Some(p) = passphrase(a.passphrase_file.as_deref())? {
        d = d
            .with_passphrase(p)
            .map_err(|e| key_failure(e.to_string()))?;
    }
    if let Some(k) = auth_key(a.auth_key_file.as_deref())? {
        d = d.with_auth_key(k);
    }
    Ok(d)
}

/// Test hook: `PGB_TEST_FAILPOINT=mid-data|after-data|before-manifest` makes a backup stop
/// at that point (announcing it on stderr) so a crash test can SIGKILL it there.
fn failpoint(e: &Event) {
    static NAME: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let Some(name) = NAME.get_or_init(|| std::env::var("PGB_TEST_FAILPOINT").ok()) else {
        return;
    };
    let here = match e {
        Event::DataStreaming => "mid-data",
        Event::DataFinished { .. } => "after-data",
        Event::ManifestWriting => "before-manifest",
        _ => return,
    };
    if name == here {
        eprintln!("pgb: FAILPOINT {here} reached; waiting to be killed");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}

fn log_progress(e: &Event) {
    failpoint(e);
    match e {
        Event::BackupStarted { id, database } => tracing::info!(%id, %database, "backup started"),
        Event::Progress { plain_bytes, .. } => tracing::info!(
            bytes = plain_bytes,
            "progress: {} read",
            human(*plain_bytes)
        ),
        Event::DataFinished { stored_bytes } => {
            tracing::info!(stored = stored_bytes, "data object finished")
        }
        Event::Committed { id } => tracing::info!(%id, "manifest written; backup committed"),
        _ => {}
    }
}

fn locator(tools: &ToolArgs) -> ToolLocator {
    let mut l = ToolLocator::new().with_path(std::env::var_os("PATH"));
    for d in &tools.pg_bin_dirs {
        l = l.with_bin_dir(d);
    }
    l
}

/// Parses a database URL. A password is accepted only from the environment variable the URL
/// came from, never from a flag: argv is visible to every user in `ps`.
fn db_url(url: &str, env_name: &str) -> Result<ConnConfig, Failure> {
    let conn = ConnConfig::parse(url).map_err(|e| Failure::usage(e.to_string()))?;
    let from_env = !env_name.is_empty() && std::env::var(env_name).is_ok_and(|v| v == url);
    if conn.has_password() && !from_env {
        return Err(Failure::usage(
            "refusing a password on the command line (visible in the process list): put it in PGPASSWORD or a PGPASSFILE, or pass the URL in DATABASE_URL",
        ));
    }
    Ok(conn)
}

fn open_repo(args: &RepoArgs) -> Result<Repository, Failure> {
    let url = args.repo.as_deref().unwrap_or(DEFAULT_REPO);
    let env = |k: &str| std::env::var(k).ok();
    let storage = open_storage(url, &env)?;
    tracing::debug!(repo = %redact_url(url), "repository opened");
    Ok(Repository::new(storage))
}

/// A `Policy` setter for a count rule.
type SetCount = fn(Policy, retention::Count) -> Policy;
/// A `Policy` setter for a duration rule.
type SetSpan = fn(Policy, retention::Span) -> Policy;

fn build_policy(a: &PolicyArgs) -> Result<Option<Policy>, Failure> {
    let bad = |e: retention::RetentionError| Failure::usage(e.to_string());
    let count = |s: &Option<String>| {
        s.as_deref()
            .map(retention::parse_count)
            .transpose()
            .map_err(bad)
    };
    let span = |s: &Option<String>| {
        s.as_deref()
            .map(retention::parse_span)
            .transpose()
            .map_err(bad)
    };
    let mut p = Policy::default();
    let mut any = false;
    if let Some(n) = a.keep_last {
        p = p.with_keep_last(n);
        any = true;
    }
    let counts: [(_, SetCount); 5] = [
        (&a.keep_hourly, Policy::with_keep_hourly),
        (&a.keep_daily, Policy::with_keep_daily),
        (&a.keep_weekly, Policy::with_keep_weekly),
        (&a.keep_monthly, Policy::with_keep_monthly),
        (&a.keep_yearly, Policy::with_keep_yearly),
    ];
    for (v, set) in counts {
        if let Some(c) = count(v)? {
            p = set(p, c);
            any = true;
        }
    }
    let spans: [(_, SetSpan); 6] = [
        (&a.keep_within, Policy::with_keep_within),
        (&a.keep_within_hourly, Policy::with_keep_within_hourly),
        (&a.keep_within_daily, Policy::with_keep_within_daily),
        (&a.keep_within_weekly, Policy::with_keep_within_weekly),
        (&a.keep_within_monthly, Policy::with_keep_within_monthly),
        (&a.keep_within_yearly, Policy::with_keep_within_yearly),
    ];
    for (v, set) in spans {
        if let Some(s) = span(v)? {
            p = set(p, s);
            any = true;
        }
    }
    for l in &a.keep_label {
        p = p.with_keep_label(l.clone());
        any = true;
    }
    if let Some(z) = &a.retention_tz {
        p = p.with_zone(retention::Zone::iana(z).map_err(bad)?);
    }
    if !any {
        return Ok(None);
    }
    p.validate().map_err(bad)?;
    Ok(Some(p))
}

fn print_plan(plan: &retention::Plan, times: &BTreeMap<String, OffsetDateTime>) {
    // Merge keep and remove into one newest-first list.
    let mut rows: Vec<(OffsetDateTime, &str, String)> = Vec::new();
    for k in &plan.keep {
        let reasons: Vec<String> = k.reasons.iter().map(ToString::to_string).collect();
        rows.push((
            times[&k.id],
            &k.id,
            format!("keep    {}", reasons.join(", ")),
        ));
    }
    for r in &plan.remove {
        rows.push((times[r], r, "remove  no rule keeps it".to_owned()));
    }
    rows.sort_by(|a, b| (b.0, b.1).cmp(&(a.0, a.1)));
    for (t, id, what) in rows {
        println!("{:<24} {:<20} {what}", id, fmt_time(t));
    }
}

async fn prune_repo(
    repo: &Repository,
    policy: &Policy,
    dry_run: bool,
    json: bool,
) -> Result<(), Failure> {
    let listing = repo.list().await?;
    for bad in &listing.invalid {
        eprintln!(
            "pgb: warning: backup {} has an unusable manifest; not counted, not deleted: {}",
            bad.id, bad.problem
        );
    }
    if !listing.in_progress.is_empty() {
        eprintln!(
            "pgb: skipped {} in-progress backup(s): {}",
            listing.in_progress.len(),
            listing.in_progress.join(", ")
        );
    }
    let mut sets: BTreeMap<&str, Vec<&Manifest>> = BTreeMap::new();
    for m in &listing.backups {
        sets.entry(m.set.as_str()).or_default().push(m);
    }
    let now = OffsetDateTime::now_utc();
    let mut out = Vec::new();
    let mut deleted = 0usize;
    for (set, manifests) in sets {
        let backups: Vec<RetBackup> = manifests
            .iter()
            .map(|m| {
                m.labels
                    .iter()
                    .fold(RetBackup::new(m.id.as_str(), m.started_at), |b, l| {
                        b.with_label(l.clone())
                    })
            })
            .collect();
        let mut plan = policy
            .plan(&backups, now)
            .map_err(|e| Failure::usage(e.to_string()))?;
        // Belt and braces: the newest complete backup of a set is never deleted, whatever the
        // policy says.
        let newest = manifests
            .iter()
            .max_by_key(|m| (m.started_at, m.id.clone()))
            .map(|m| m.id.to_string());
        if let Some(newest) = newest
            && plan.remove.contains(&newest)
        {
            tracing::error!(backup = %newest, "policy would remove the newest backup; keeping it");
            plan.remove.retain(|id| id != &newest);
        }
        if json {
            out.push(serde_json::json!({ "set": set, "keep": plan.keep, "remove": plan.remove, "dry_run": dry_run }));
        } else {
            println!(
                "set {set}: keep {}, remove {}{}",
                plan.keep.len(),
                plan.remove.len(),
                if dry_run { " (dry run)" } else { "" }
            );
            print_plan(
                &plan,
                &manifests
                    .iter()
                    .map(|m| (m.id.to_string(), m.started_at))
                    .collect(),
            );
        }
        if !dry_run {
            for id in &plan.remove {
                let id: pgb_core::BackupId = id
                    .parse()
                    .map_err(|_| Failure::new(exit::FAILURE, format!("bad id {id}")))?;
                repo.delete_backup(&id).await?;
                deleted += 1;
            }
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("serializable")
        );
    } else if !dry_run {
        println!("pruned {deleted} backup(s)");
    }
    Ok(())
}

fn parse_grace(s: &str) -> Result<time::Duration, Failure> {
    let bad = || {
        Failure::usage(format!(
            "invalid duration {s:?}: use a number with h, d or w, e.g. 24h"
        ))
    };
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: i64 = num.parse().map_err(|_| bad())?;
    match unit {
        "h" => Ok(time::Duration::hours(n)),
        "d" => Ok(time::Duration::days(n)),
        "w" => Ok(time::Duration::weeks(n)),
        _ => Err(bad()),
    }
}

#[derive(Serialize)]
struct ListEntry<'a> {
    id: &'a str,
    database: &'a str,
    set: &'a str,
    server: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    finished_at: OffsetDateTime,
    stored_size: u64,
    plain_size: u64,
    sha256: &'a str,
    plain_sha256: &'a str,
    artifacts: &'a [pgb_core::Artifact],
    format: ArchiveFormat,
    compression: String,
    labels: &'a [String],
    server_version: &'a str,
    pg_dump_version: &'a str,
}

impl<'a> From<&'a Manifest> for ListEntry<'a> {
    fn from(m: &'a Manifest) -> Self {
        Self {
            id: m.id.as_str(),
            database: &m.database,
            set: &m.set,
            server: &m.server,
            started_at: m.started_at,
            finished_at: m.finished_at,
            stored_size: m.stored_size(),
            plain_size: m.plain_size(),
            sha256: m.dump().map_or("", |a| a.stored_sha256.as_str()),
            plain_sha256: m.dump().map_or("", |a| a.plain_sha256.as_str()),
            artifacts: &m.artifacts,
            format: m.format,
            compression: m.compression.to_string(),
            labels: &m.labels,
            server_version: &m.server_version,
            pg_dump_version: &m.pg_dump_version,
        }
    }
}

#[derive(Serialize)]
struct VerifyEntry {
    id: String,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn fmt_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
