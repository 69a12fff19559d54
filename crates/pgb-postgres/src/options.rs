//! What a pg_dump dumps: schema and table selection, and options passed through as given.

use pgb_core::{DumpError, DumpErrorKind};

/// Options pgb sets itself (format, output, compression, jobs, connection): refused in
/// [`DumpOptions::with_extra`].
const OWNED: [(&str, &str); 9] = [
    ("-F", "--format"),
    ("-f", "--file"),
    ("-Z", "--compress"),
    ("-j", "--jobs"),
    ("-d", "--dbname"),
    ("-h", "--host"),
    ("-p", "--port"),
    ("-U", "--username"),
    ("-w", "--no-password"),
];

/// Selection and pass-through options of a pg_dump: `--schema`, `--exclude-schema`,
/// `--table`, `--exclude-table`, `--exclude-table-data` (patterns as pg_dump takes them), and
/// any other pg_dump option pgb does not set itself.
///
/// It also says which migration heads the dump's preflight reads ([`DumpOptions::with_migrations`]:
/// every framework by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DumpOptions {
    args: Vec<String>,
    migrations: crate::MigrationProbe,
}

impl DumpOptions {
    /// No selection: the whole database.
    pub fn new() -> Self {
        Self::default()
    }

    fn push(mut self, flag: &str, values: &[String]) -> Self {
        self.args
            .extend(values.iter().map(|v| format!("--{flag}={v}")));
        self
    }

    /// Dumps only these schemas (`--schema`).
    pub fn with_schemas(self, patterns: &[String]) -> Self {
        self.push("schema", patterns)
    }

    /// Leaves out these schemas (`--exclude-schema`).
    pub fn with_exclude_schemas(self, patterns: &[String]) -> Self {
        self.push("exclude-schema", patterns)
    }

    /// Dumps only these tables (`--table`).
    pub fn with_tables(self, patterns: &[String]) -> Self {
        self.push("table", patterns)
    }

    /// Leaves out these tables (`--exclude-table`).
    pub fn with_exclude_tables(self, patterns: &[String]) -> Self {
        self.push("exclude-table", patterns)
    }

    /// Dumps these tables' definitions without their data (`--exclude-table-data`).
    pub fn with_exclude_table_data(self, patterns: &[String]) -> Self {
        self.push("exclude-table-data", patterns)
    }

    /// Passes other pg_dump options as given (`--no-comments`, `--lock-wait-timeout=10s`).
    ///
    /// # Errors
    /// `Refused` for an option pgb sets itself (format, output file, compression, jobs,
    /// connection), naming it.
    pub fn with_extra(mut self, options: &[String]) -> Result<Self, DumpError> {
        for o in options {
            let owned = OWNED.iter().find(|(short, long)| {
                o == long
                    || o.starts_with(&format!("{long}="))
                    || (!o.starts_with("--") && o.starts_with(short))
            });
            if let Some((short, long)) = owned {
                return Err(DumpError::new(
                    DumpErrorKind::NoMatch,
                    format!(
                        "pg_dump option {o:?} is set by pgb itself ({short}/{long}); leave it out"
                    ),
                ));
            }
            if !o.starts_with('-') {
                return Err(DumpError::new(
                    DumpErrorKind::NoMatch,
                    format!("pg_dump option {o:?} is not an option (write --name=value)"),
                ));
            }
            self.args.push(o.clone());
        }
        Ok(self)
    }

    /// The pg_dump arguments, in order.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Which migration heads the preflight reads and the manifest records.
    pub fn with_migrations(mut self, probe: crate::MigrationProbe) -> Self {
        self.migrations = probe;
        self
    }

    /// The migration heads read at preflight.
    pub fn migrations(&self) -> &crate::MigrationProbe {
        &self.migrations
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn selection_becomes_pg_dump_arguments() {
        let o = DumpOptions::new()
            .with_schemas(&v(&["app"]))
            .with_exclude_table_data(&v(&["app.audit_*"]))
            .with_extra(&v(&["--no-comments", "--lock-wait-timeout=10s"]))
            .unwrap();
        assert_eq!(
            o.args(),
            [
                "--schema=app",
                "--exclude-table-data=app.audit_*",
                "--no-comments",
                "--lock-wait-timeout=10s"
            ]
        );
    }

    #[test]
    fn options_pgb_sets_itself_are_refused() {
        for bad in [
            "-Fp",
            "--format=plain",
            "--file",
            "-f",
            "-Z9",
            "--jobs=4",
            "-j",
            "--dbname=x",
        ] {
            let e = DumpOptions::new().with_extra(&v(&[bad])).unwrap_err();
            assert!(e.to_string().contains("set by pgb itself"), "{bad}: {e}");
        }
        assert!(DumpOptions::new().with_extra(&v(&["plain"])).is_err());
        assert!(DumpOptions::new().with_extra(&v(&["--format-x"])).is_ok());
    }
}
