//! Arguments of whole-server backups (`backup --all-databases`) and their restores.

use clap::Args;

use crate::exit::Failure;

/// `backup --all-databases` and its selection.
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Whole server")]
pub(crate) struct ClusterBackupArgs {
    /// Back up the whole server: every connectable non-template database (enumerated at each
    /// run, so new databases are picked up) plus the globals (roles, memberships, tablespaces),
    /// as one backup. --db names the server (its database is where globals are read).
    #[arg(long)]
    pub(crate) all_databases: bool,
    /// Only databases matching this glob (`*`, `?`); repeatable. A glob matching no database
    /// is an error.
    #[arg(long, value_name = "GLOB", requires = "all_databases")]
    pub(crate) include: Vec<String>,
    /// Leave out databases matching this glob; repeatable; wins over --include.
    #[arg(long, value_name = "GLOB", requires = "all_databases")]
    pub(crate) exclude: Vec<String>,
    /// Include role passwords (hashes) in the globals: needs a superuser and an encrypted
    /// backup (--recipient, --recipients-file or --passphrase-file).
    #[arg(long, requires = "all_databases")]
    pub(crate) with_role_passwords: bool,
}

impl ClusterBackupArgs {
    /// The databases and globals chosen, as a job's `[whole_server]` holds them.
    pub(crate) fn server(&self) -> pgb_config::WholeServer {
        pgb_config::WholeServer {
            include: self.include.clone(),
            exclude: self.exclude.clone(),
            with_role_passwords: self.with_role_passwords,
        }
    }
}

/// What to restore from a whole-server backup.
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Whole server")]
pub(crate) struct ClusterRestoreArgs {
    /// Restore this database of a whole-server backup into --db.
    #[arg(long, value_name = "NAME")]
    pub(crate) database: Option<String>,
    /// Apply the backup's globals (roles, memberships, tablespaces) to the server of --db,
    /// statement by statement: existing roles are kept and updated, the connected role is
    /// never dropped or altered.
    #[arg(long, conflicts_with = "database")]
    pub(crate) globals: bool,
    /// Rebuild the whole server of --server: the globals, then every database under its own
    /// name (a non-empty target database is refused without --clean; a missing one is created
    /// with the source's encoding and locale), with its comment and settings; its owner with
    /// --keep-owner, its ACL with --keep-privileges.
    #[arg(long, conflicts_with_all = ["database", "globals"], requires = "server")]
    pub(crate) all: bool,
    /// The server to rebuild with --all (postgres://user@host:port[/maintenance_db]).
    #[arg(long, value_name = "URL", requires = "all")]
    pub(crate) server: Option<String>,
}

impl ClusterRestoreArgs {
    /// Whether a whole-server restore was asked for.
    pub(crate) fn selected(&self) -> bool {
        self.database.is_some() || self.globals || self.all
    }
}

/// `backup --format directory`: pg_dump's parallel jobs and its spool.
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Directory format")]
pub(crate) struct DirectoryBackupArgs {
    /// With --format directory: parallel pg_dump jobs (connections), and files uploaded at a
    /// time [default: 1].
    #[arg(long, value_name = "N")]
    pub(crate) jobs: Option<u32>,
    /// With --format directory: where pg_dump writes before the upload (else PGB_SPOOL_DIR,
    /// else TMPDIR); it needs room for the uncompressed dump.
    #[arg(long, value_name = "DIR")]
    pub(crate) spool_dir: Option<std::path::PathBuf>,
}

/// `restore --table/--schema`: part of a backup.
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Selection")]
pub(crate) struct SelectRestoreArgs {
    /// Restore only this table (SCHEMA.TABLE, or TABLE in any schema); repeatable. A table
    /// comes with what it needs: its schema, the types, domains, functions and sequences it
    /// uses, its data, owned sequences and their values, defaults, constraints, indexes,
    /// triggers (with their functions) and comments. A foreign key to a table not selected is
    /// left out with a warning naming it; a table that needs another table (its parent, one a
    /// function it uses reads) is refused naming it (exit 2), as is a table the backup does not
    /// hold. From a directory-format backup only its table of contents and these tables' data
    /// files are downloaded.
    #[arg(long, value_name = "SCHEMA.TABLE")]
    pub(crate) table: Vec<String>,
    /// Restore only the objects of this schema; repeatable.
    #[arg(long, value_name = "NAME")]
    pub(crate) schema: Vec<String>,
}

/// `backup`: what pg_dump dumps (patterns as pg_dump takes them; recorded in the manifest).
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Selection")]
pub(crate) struct DumpSelectArgs {
    /// Dump only schemas matching this pattern (pg_dump --schema); repeatable.
    #[arg(long = "schema", value_name = "PATTERN")]
    pub(crate) schemas: Vec<String>,
    /// Leave out schemas matching this pattern; repeatable.
    #[arg(long, value_name = "PATTERN")]
    pub(crate) exclude_schema: Vec<String>,
    /// Dump only tables matching this pattern (pg_dump --table); repeatable.
    #[arg(long = "table", value_name = "PATTERN")]
    pub(crate) tables: Vec<String>,
    /// Leave out tables matching this pattern; repeatable.
    #[arg(long, value_name = "PATTERN")]
    pub(crate) exclude_table: Vec<String>,
    /// Dump these tables' definitions but not their data; repeatable.
    #[arg(long, value_name = "PATTERN")]
    pub(crate) exclude_table_data: Vec<String>,
    /// Any other pg_dump option, as one argument (--pg-dump-option=--no-comments); repeatable.
    /// Options pgb sets itself (format, file, compression, jobs, connection) are refused.
    #[arg(long, value_name = "OPTION", allow_hyphen_values = true)]
    pub(crate) pg_dump_option: Vec<String>,
}

/// `backup --files DIR`: directories archived with the backup.
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Files")]
pub(crate) struct FilesBackupArgs {
    /// Archive this directory (tar: symlinks and special files stored as such, never followed)
    /// as part of the backup, compressed and encrypted like the dumps; repeatable.
    #[arg(long = "files", value_name = "DIR")]
    pub(crate) files: Vec<std::path::PathBuf>,
}

/// `restore --files-to DIR`.
#[derive(Debug, Args, Default)]
#[command(next_help_heading = "Files")]
pub(crate) struct FilesRestoreArgs {
    /// Restore the backup's files archive into DIR (several archives: DIR/<directory name>,
    /// colliding names numbered: uploads-1, uploads-2), and nothing else; a non-empty DIR is
    /// refused without --clean, as are / and a DIR holding the repository.
    #[arg(long, value_name = "DIR")]
    pub(crate) files_to: Option<std::path::PathBuf>,
    /// With --files-to: keep the setuid, setgid, sticky and world-writable bits of the
    /// archive (by default they are dropped, with a warning naming the files).
    #[arg(long, requires = "files_to")]
    pub(crate) keep_modes: bool,
}

impl DumpSelectArgs {
    /// The flags as the selection a job's `[job]` table holds.
    pub(crate) fn selection(&self) -> pgb_config::DumpSelection {
        pgb_config::DumpSelection {
            schemas: self.schemas.clone(),
            exclude_schemas: self.exclude_schema.clone(),
            tables: self.tables.clone(),
            exclude_tables: self.exclude_table.clone(),
            exclude_table_data: self.exclude_table_data.clone(),
            pg_dump_options: self.pg_dump_option.clone(),
        }
    }
}

impl FilesBackupArgs {
    /// Adds the `--files` directories to the backup options, each checked to be a directory.
    pub(crate) fn add_to(
        &self,
        options: pgb::BackupOptions,
    ) -> Result<pgb::BackupOptions, Failure> {
        self.files.iter().try_fold(options, |o, dir| {
            let files =
                pgb::FilesDump::new(dir).map_err(|e| Failure::usage(format!("--files: {e}")))?;
            Ok(o.with_files(files))
        })
    }
}

impl super::BackupArgs {
    /// Flags that only one kind of backup takes.
    pub(crate) fn check_kind(&self) -> Result<(), Failure> {
        use super::Format;
        if self.cluster.all_databases && self.format.is_some_and(|f| f != Format::Custom) {
            return Err(Failure::usage(
                "--all-databases dumps every database in the custom format; drop --format",
            ));
        }
        let directory = self.format == Some(Format::Directory);
        let d = &self.directory;
        if !directory && (d.jobs.is_some() || d.spool_dir.is_some()) {
            return Err(Failure::usage(
                "--jobs and --spool-dir of backup need --format directory",
            ));
        }
        if d.jobs == Some(0) {
            return Err(Failure::usage("--jobs must be at least 1"));
        }
        Ok(())
    }
}

impl super::RestoreArgs {
    /// Flags that only one kind of restore takes: `--table`, `--schema` and `--jobs` only
    /// dumps, `--db` not with `--all` (whose databases keep their names on `--server`).
    pub(crate) fn check_kind(&self) -> Result<(), Failure> {
        if self.physical.pgdata.is_some()
            && (self.select.table.len() + self.select.schema.len() > 0 || self.jobs.is_some())
        {
            return Err(Failure::usage(
                "--table, --schema and --jobs apply to dumps, not to a physical restore (--pgdata)",
            ));
        }
        if self.cluster.all && self.db.is_some() {
            return Err(Failure::usage(
                "--all restores every database under its own name on --server; drop --db",
            ));
        }
        Ok(())
    }
}
