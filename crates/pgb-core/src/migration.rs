//! The application's schema version ("migration head") as its migration framework records it,
//! and what pgb decides with it: a backup records each database's heads in its manifest
//! ([`crate::Manifest::migrations`]); a restore or drill compares them with the head the
//! application expects ([`MigrationTarget`]); `pgb list --migration` finds the backups taken at
//! or before a migration ([`at_or_before`]).
//!
//! Reading the heads is the PostgreSQL driver's business (`pgb-postgres`); everything here is
//! pure.
//!
//! # Order of heads
//!
//! Within one framework, heads are ordered where the framework's names are: a leading number
//! (Prisma's, Knex's and Sequelize's UTC timestamps, Rails' and golang-migrate's versions,
//! Django's `0003_…` per app), Flyway's dotted versions (`1.10.2`), TypeORM's trailing
//! timestamp (`AddUsers1700000000000`). Alembic revisions and Liquibase changeset ids have no
//! order: two of them are equal or unordered. A custom query's heads are ordered when both
//! begin with a number.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A migration framework pgb reads heads of (or `custom`: the job's `migrations_query`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum MigrationFramework {
    /// Prisma: `_prisma_migrations`.
    Prisma,
    /// Alembic (SQLAlchemy): `alembic_version`.
    Alembic,
    /// Rails / ActiveRecord: `schema_migrations(version)`.
    Rails,
    /// golang-migrate: `schema_migrations(version, dirty)`.
    GolangMigrate,
    /// Django: `django_migrations(app, name, applied)`.
    Django,
    /// Flyway: `flyway_schema_history`.
    Flyway,
    /// Liquibase: `databasechangelog`.
    Liquibase,
    /// Knex: `knex_migrations`.
    Knex,
    /// Sequelize: `SequelizeMeta`.
    Sequelize,
    /// TypeORM: `migrations(id, timestamp, name)`.
    Typeorm,
    /// The head a job's own `migrations_query` returned.
    Custom,
}

impl MigrationFramework {
    /// The frameworks pgb detects by their tables, in detection order.
    pub const DETECTED: [Self; 10] = [
        Self::Prisma,
        Self::Alembic,
        Self::Rails,
        Self::GolangMigrate,
        Self::Django,
        Self::Flyway,
        Self::Liquibase,
        Self::Knex,
        Self::Sequelize,
        Self::Typeorm,
    ];

    /// The name in manifests, configuration and `[framework:]head` (`golang-migrate`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prisma => "prisma",
            Self::Alembic => "alembic",
            Self::Rails => "rails",
            Self::GolangMigrate => "golang-migrate",
            Self::Django => "django",
            Self::Flyway => "flyway",
            Self::Liquibase => "liquibase",
            Self::Knex => "knex",
            Self::Sequelize => "sequelize",
            Self::Typeorm => "typeorm",
            Self::Custom => "custom",
        }
    }

    /// Whether its heads have an order (see the module documentation).
    pub fn ordered(self) -> bool {
        !matches!(self, Self::Alembic | Self::Liquibase)
    }

    /// Every name [`FromStr`] accepts, comma-separated, for messages.
    pub fn names() -> String {
        Self::DETECTED
            .iter()
            .chain([&Self::Custom])
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for MigrationFramework {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no migration framework pgb knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown migration framework {name:?}: expected one of {known}")]
pub struct UnknownFramework {
    /// The name given.
    pub name: String,
    /// The names pgb knows.
    pub known: String,
}

impl FromStr for MigrationFramework {
    type Err = UnknownFramework;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        let alias = match s.as_str() {
            "activerecord" => "rails",
            "golang_migrate" | "migrate" => "golang-migrate",
            other => other,
        };
        Self::DETECTED
            .into_iter()
            .chain([Self::Custom])
            .find(|f| f.as_str() == alias)
            .ok_or_else(|| UnknownFramework {
                name: s.clone(),
                known: Self::names(),
            })
    }
}

/// One framework's head in one database: the newest migration applied, as the framework's
/// own table records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MigrationHead {
    /// The framework.
    pub framework: MigrationFramework,
    /// Its table (`public._prisma_migrations`); empty for a custom query.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub table: String,
    /// The newest migration applied: Prisma's `migration_name`, Alembic's `version_num`
    /// (several heads comma-separated), a version, Django's `app:name` (the newest applied of
    /// any app), Flyway's version, Liquibase's changeset id, a file name.
    pub head: String,
    /// When it was applied (UTC, RFC 3339), where the framework records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<String>,
    /// How many migrations are applied, where the framework keeps one row per migration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied: Option<u64>,
    /// golang-migrate's `dirty` flag: a migration failed midway.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dirty: bool,
    /// A failed migration the framework recorded, quoted from its own row (Prisma's
    /// `migration_name: logs`, Flyway's `version description (script)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// Django: every app's newest applied migration, `app:name`, sorted by app.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<String>,
}

impl MigrationHead {
    /// A head of `framework`.
    pub fn new(framework: MigrationFramework, head: impl Into<String>) -> Self {
        Self {
            framework,
            table: String::new(),
            head: head.into(),
            applied_at: None,
            applied: None,
            dirty: false,
            failed: None,
            apps: Vec::new(),
        }
    }

    /// Names the table it was read from.
    pub fn with_table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// When the head was applied.
    pub fn with_applied_at(mut self, at: Option<String>) -> Self {
        self.applied_at = at.filter(|a| !a.is_empty());
        self
    }

    /// How many migrations are applied.
    pub fn with_applied(mut self, n: Option<u64>) -> Self {
        self.applied = n;
        self
    }

    /// Sets golang-migrate's dirty flag.
    pub fn with_dirty(mut self, dirty: bool) -> Self {
        self.dirty = dirty;
        self
    }

    /// Records a failed migration, as the framework's row states it.
    pub fn with_failed(mut self, failed: Option<String>) -> Self {
        self.failed = failed.filter(|f| !f.trim().is_empty());
        self
    }

    /// Django's per-app heads.
    pub fn with_apps(mut self, apps: Vec<String>) -> Self {
        self.apps = apps;
        self
    }

    /// `framework:head`, with ` (dirty)` or ` (failed)` when so: a list column, a log field.
    pub fn label(&self) -> String {
        let head = if self.head.is_empty() {
            "(none applied)"
        } else {
            &self.head
        };
        let mut s = format!("{}:{head}", self.framework);
        if self.dirty {
            s.push_str(" (dirty)");
        }
        if self.failed.is_some() {
            s.push_str(" (failed)");
        }
        s
    }

    /// What is wrong with the database's migrations, one line: a failed migration (quoting
    /// the framework's row) or golang-migrate's dirty flag.
    pub fn trouble(&self) -> Option<MigrationProblem> {
        if let Some(f) = &self.failed {
            return Some(MigrationProblem::Failed {
                framework: self.framework,
                row: one_line(f),
            });
        }
        self.dirty.then(|| MigrationProblem::Dirty {
            framework: self.framework,
            head: self.head.clone(),
        })
    }
}

/// Text on one line, at most 400 characters: whitespace runs become one space.
fn one_line(s: &str) -> String {
    let line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(400) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line,
    }
}

/// The head `[framework:]head` names: what a restore must reach (`--expect-migration`), or a
/// migration `pgb list --migration` looks for.
///
/// The framework prefix is read only when it is a framework's name, so Django's `app:name`
/// stays whole (`django:shop:0004_orders` names the framework too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationTarget {
    /// The framework, when named.
    pub framework: Option<MigrationFramework>,
    /// The head.
    pub head: String,
}

/// A `[framework:]head` that names no head.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an empty migration head: expected [FRAMEWORK:]HEAD, e.g. prisma:20240501120000_init")]
pub struct EmptyTarget;

impl FromStr for MigrationTarget {
    type Err = EmptyTarget;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (framework, head) = match s.split_once(':') {
            Some((f, rest)) => match f.parse::<MigrationFramework>() {
                Ok(f) => (Some(f), rest.trim()),
                Err(_) => (None, s),
            },
            None => (None, s),
        };
        if head.is_empty() {
            return Err(EmptyTarget);
        }
        Ok(Self {
            framework,
            head: head.to_owned(),
        })
    }
}

impl fmt::Display for MigrationTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.framework {
            Some(fw) => write!(f, "{fw}:{}", self.head),
            None => f.write_str(&self.head),
        }
    }
}

impl MigrationTarget {
    /// The head among `heads` this target concerns: the named framework's, else the only one.
    ///
    /// # Errors
    /// [`MigrationProblem::NoHead`] or [`MigrationProblem::Ambiguous`].
    pub fn pick<'a>(
        &self,
        heads: &'a [MigrationHead],
    ) -> Result<&'a MigrationHead, MigrationProblem> {
        let mut of = heads
            .iter()
            .filter(|h| self.framework.is_none_or(|f| h.framework == f));
        match (of.next(), of.next()) {
            (Some(h), None) => Ok(h),
            (None, _) => Err(MigrationProblem::NoHead {
                framework: self.framework,
            }),
            (Some(_), Some(_)) => Err(MigrationProblem::Ambiguous {
                frameworks: heads.iter().map(|h| h.framework.to_string()).collect(),
            }),
        }
    }

    /// Where `head` stands against this target: `Less` (behind), `Equal`, `Greater` (ahead),
    /// `None` when they differ and the framework gives no order.
    pub fn compare(&self, head: &MigrationHead) -> Option<Ordering> {
        if head.head.is_empty() {
            // Nothing applied (only a failed migration recorded): behind anything.
            return Some(Ordering::Less);
        }
        if head.framework == MigrationFramework::Django {
            return compare_django(head, &self.head);
        }
        if head.head == self.head
            || (head.framework == MigrationFramework::Alembic
                && head.head.split(',').any(|h| h == self.head))
        {
            return Some(Ordering::Equal);
        }
        compare_heads(head.framework, &head.head, &self.head)
    }
}

/// Orders two heads of `framework` (see the module documentation); `None`: no order.
pub fn compare_heads(framework: MigrationFramework, a: &str, b: &str) -> Option<Ordering> {
    if a == b {
        return Some(Ordering::Equal);
    }
    use MigrationFramework as F;
    match framework {
        F::Alembic | F::Liquibase => None,
        F::Flyway => compare_dotted(a, b),
        F::Typeorm => compare_numbers(trailing_digits(a), trailing_digits(b))
            .map(|o| o.then_with(|| a.cmp(b))),
        _ => {
            compare_numbers(leading_digits(a), leading_digits(b)).map(|o| o.then_with(|| a.cmp(b)))
        }
    }
}

fn leading_digits(s: &str) -> &str {
    let end = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    &s[..end]
}

fn trailing_digits(s: &str) -> &str {
    &s[s.trim_end_matches(|c: char| c.is_ascii_digit()).len()..]
}

/// Two runs of decimal digits as numbers of any length; `None` when either is empty.
fn compare_numbers(a: &str, b: &str) -> Option<Ordering> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    Some(a.len().cmp(&b.len()).then_with(|| a.cmp(b)))
}

/// Flyway versions: segments split at `.` or `_`, compared as numbers (`1.10` > `1.9`;
/// `1.0` = `1`).
fn compare_dotted(a: &str, b: &str) -> Option<Ordering> {
    let parts = |s: &str| -> Option<Vec<String>> {
        s.split(['.', '_'])
            .map(|p| {
                (!p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
                    .then(|| p.trim_start_matches('0').to_owned())
            })
            .collect()
    };
    let (mut a, mut b) = (parts(a)?, parts(b)?);
    while a.last().is_some_and(String::is_empty) {
        a.pop();
    }
    while b.last().is_some_and(String::is_empty) {
        b.pop();
    }
    for (x, y) in a.iter().zip(&b) {
        let o = x.len().cmp(&y.len()).then_with(|| x.cmp(y));
        if o != Ordering::Equal {
            return Some(o);
        }
    }
    Some(a.len().cmp(&b.len()))
}

/// Django: the target `app:name` against that app's newest applied migration (an app with
/// none applied is behind); a target without an app against the newest of any app.
fn compare_django(head: &MigrationHead, target: &str) -> Option<Ordering> {
    let Some((app, name)) = target.split_once(':') else {
        let newest = head.head.split_once(':').map_or(&*head.head, |(_, n)| n);
        return compare_heads(MigrationFramework::Django, newest, target);
    };
    let applied = head
        .apps
        .iter()
        .chain([&head.head])
        .filter_map(|a| a.split_once(':'))
        .filter(|(a, _)| *a == app)
        .map(|(_, n)| n)
        .max_by(|x, y| compare_heads(MigrationFramework::Django, x, y).unwrap_or(x.cmp(y)));
    match applied {
        None => Some(Ordering::Less),
        Some(n) => compare_heads(MigrationFramework::Django, n, name),
    }
}

/// Why a database's migrations are not where they must be. One line each, with both heads
/// where there are two; no advice naming a front end's flags.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MigrationProblem {
    /// The framework recorded a failed migration (its own row, quoted).
    #[error("{framework} recorded a failed migration: {row}")]
    Failed {
        /// The framework.
        framework: MigrationFramework,
        /// Its row.
        row: String,
    },
    /// golang-migrate's `dirty` flag is set.
    #[error("{framework} version {head} is dirty (a migration failed midway)")]
    Dirty {
        /// The framework.
        framework: MigrationFramework,
        /// The dirty version.
        head: String,
    },
    /// Behind the expected head.
    #[error("the database is at {found}, behind the expected {expected}")]
    Behind {
        /// What the database holds (`framework:head`).
        found: String,
        /// What was expected.
        expected: String,
    },
    /// A different head of a framework without order.
    #[error(
        "the database is at {found}, not the expected {expected} ({framework} heads have no order: they must be equal)"
    )]
    Differs {
        /// The framework.
        framework: MigrationFramework,
        /// What the database holds.
        found: String,
        /// What was expected.
        expected: String,
    },
    /// No head of the framework (or none at all).
    #[error("{}", match framework {
        Some(f) => format!("the database has no {f} migration head"),
        None => "the database has no migration head".to_owned(),
    })]
    NoHead {
        /// The framework the target named.
        framework: Option<MigrationFramework>,
    },
    /// Several frameworks' heads, and the target named none.
    #[error("the database has migration heads of {}: name one as FRAMEWORK:HEAD", frameworks.join(", "))]
    Ambiguous {
        /// The frameworks found.
        frameworks: Vec<String>,
    },
    /// A backup whose head is newer than the expected one: restoring it would give the
    /// application a schema it does not know (code rolled back, schema not).
    #[error("backup {backup} holds {found}, newer than the expected {expected}")]
    BackupNewer {
        /// The backup.
        backup: String,
        /// Its head.
        found: String,
        /// What was expected.
        expected: String,
    },
    /// A backup whose head is older than the expected one, and nothing (no `post_restore`
    /// hook) would migrate it after the restore.
    #[error(
        "backup {backup} holds {found}, older than the expected {expected}, and no post_restore hook would migrate it"
    )]
    BackupOlder {
        /// The backup.
        backup: String,
        /// Its head.
        found: String,
        /// What was expected.
        expected: String,
    },
}

/// Whether `heads` (read from a restored database, after its `post_restore` hook) reached
/// `target`: no failed migration row, not dirty, at or past the target (ahead passes: a
/// backup newer than the target is the pre-restore check's concern, [`check_backup`]).
///
/// # Errors
/// The [`MigrationProblem`].
pub fn check_reached(
    heads: &[MigrationHead],
    target: &MigrationTarget,
) -> Result<(), MigrationProblem> {
    let h = target.pick(heads)?;
    if let Some(p) = h.trouble() {
        return Err(p);
    }
    match target.compare(h) {
        Some(Ordering::Equal | Ordering::Greater) => Ok(()),
        Some(Ordering::Less) => Err(MigrationProblem::Behind {
            found: h.label(),
            expected: target.to_string(),
        }),
        None => Err(MigrationProblem::Differs {
            framework: h.framework,
            found: h.label(),
            expected: target.to_string(),
        }),
    }
}

/// Whether backup `backup` (with the heads its manifest recorded) may be restored for an
/// application expecting `target`, before anything is written: a backup newer than the target
/// is refused; an older (or, without order, a different) one only when nothing would migrate
/// it (`migrates`: a `post_restore` hook runs after the restore). A backup that recorded no
/// head of the framework passes (nothing to compare; the check after the hook still applies).
///
/// # Errors
/// [`MigrationProblem::BackupNewer`] or [`MigrationProblem::BackupOlder`].
pub fn check_backup(
    backup: &str,
    heads: &[MigrationHead],
    target: &MigrationTarget,
    migrates: bool,
) -> Result<(), MigrationProblem> {
    let Ok(h) = target.pick(heads) else {
        return Ok(());
    };
    let (found, expected) = (h.label(), target.to_string());
    match target.compare(h) {
        Some(Ordering::Greater) => Err(MigrationProblem::BackupNewer {
            backup: backup.to_owned(),
            found,
            expected,
        }),
        Some(Ordering::Less) | None if !migrates => Err(MigrationProblem::BackupOlder {
            backup: backup.to_owned(),
            found,
            expected,
        }),
        _ => Ok(()),
    }
}

/// The backups of `backups` taken at or before migration `target` (of `database`, when given):
/// those whose head (of the target's framework, else their only one) is the target or an
/// earlier one. Without an order (Alembic, Liquibase), "before" is history: a backup of the
/// same set and database taken before the first backup that recorded the target. A backup
/// that recorded no head is never listed (nothing says where it stands).
pub fn at_or_before<'a>(
    backups: &[&'a crate::Manifest],
    target: &MigrationTarget,
    database: Option<&str>,
) -> Vec<&'a crate::Manifest> {
    let heads_of = |m: &'a crate::Manifest| {
        m.migrations
            .iter()
            .filter(move |(db, _)| database.is_none_or(|d| d == db.as_str()))
            .filter_map(move |(db, heads)| target.pick(heads).ok().map(|h| (db, h)))
    };
    // Unordered frameworks: when each (set, database) first recorded the target.
    let mut first_seen: BTreeMap<(&str, &str), time::OffsetDateTime> = BTreeMap::new();
    for m in backups {
        for (db, h) in heads_of(m) {
            if target.compare(h) == Some(Ordering::Equal) {
                let e = first_seen.entry((&m.set, db)).or_insert(m.started_at);
                *e = (*e).min(m.started_at);
            }
        }
    }
    backups
        .iter()
        .copied()
        .filter(|m| {
            heads_of(m).any(|(db, h)| match target.compare(h) {
                Some(o) => o != Ordering::Greater,
                None => first_seen
                    .get(&(m.set.as_str(), db.as_str()))
                    .is_some_and(|t| m.started_at < *t),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> MigrationTarget {
        s.parse().unwrap()
    }

    #[test]
    fn framework_names_parse_and_unknown_ones_name_the_known() {
        assert_eq!("Prisma".parse(), Ok(MigrationFramework::Prisma));
        assert_eq!(
            "golang-migrate".parse(),
            Ok(MigrationFramework::GolangMigrate)
        );
        let e = "flyaway".parse::<MigrationFramework>().unwrap_err();
        assert!(e.to_string().contains("\"flyaway\""), "{e}");
        assert!(e.to_string().contains("flyway"), "{e}");
    }

    #[test]
    fn a_target_reads_its_framework_only_when_it_is_one() {
        assert_eq!(
            t("prisma:2024_x").framework,
            Some(MigrationFramework::Prisma)
        );
        assert_eq!(t("prisma:2024_x").head, "2024_x");
        let django = t("shop:0004_orders");
        assert_eq!(
            (django.framework, django.head.as_str()),
            (None, "shop:0004_orders")
        );
        let named = t("django:shop:0004_orders");
        assert_eq!(named.head, "shop:0004_orders");
        assert!("prisma:".parse::<MigrationTarget>().is_err());
        assert!(" ".parse::<MigrationTarget>().is_err());
    }

    #[test]
    fn heads_order_within_their_framework() {
        use MigrationFramework as F;
        let c = compare_heads;
        assert_eq!(
            c(F::Prisma, "20240101000000_a", "20240201000000_b"),
            Some(Ordering::Less)
        );
        assert_eq!(c(F::Rails, "20240301", "20240201"), Some(Ordering::Greater));
        assert_eq!(c(F::GolangMigrate, "10", "9"), Some(Ordering::Greater));
        assert_eq!(c(F::Flyway, "1.10", "1.9"), Some(Ordering::Greater));
        assert_eq!(c(F::Flyway, "1.0", "1"), Some(Ordering::Equal));
        assert_eq!(c(F::Flyway, "2", "10"), Some(Ordering::Less));
        assert_eq!(
            c(F::Typeorm, "Users1700000000000", "Add1600000000000"),
            Some(Ordering::Greater)
        );
        assert_eq!(c(F::Alembic, "ae1027a6acf", "1975ea83b712"), None);
        assert_eq!(c(F::Knex, "init.js", "20240101_b.js"), None);
        assert_eq!(c(F::Custom, "3", "12"), Some(Ordering::Less));
    }

    #[test]
    fn django_compares_the_named_apps_newest_migration() {
        let h = MigrationHead::new(MigrationFramework::Django, "auth:0012_x")
            .with_apps(vec!["auth:0012_x".into(), "shop:0003_c".into()]);
        assert_eq!(t("shop:0003_c").compare(&h), Some(Ordering::Equal));
        assert_eq!(t("shop:0004_d").compare(&h), Some(Ordering::Less));
        assert_eq!(t("shop:0002_b").compare(&h), Some(Ordering::Greater));
        assert_eq!(t("blog:0001_initial").compare(&h), Some(Ordering::Less));
    }

    #[test]
    fn reached_fails_behind_dirty_and_failed_quoting_the_row() {
        let p = |h: &str| MigrationHead::new(MigrationFramework::Prisma, h);
        let target = t("20240201000000_b");
        assert!(check_reached(&[p("20240201000000_b")], &target).is_ok());
        assert!(check_reached(&[p("20240301000000_c")], &target).is_ok());
        let e = check_reached(&[p("20240101000000_a")], &target).unwrap_err();
        assert!(matches!(e, MigrationProblem::Behind { .. }), "{e}");
        assert!(
            e.to_string().contains("prisma:20240101000000_a")
                && e.to_string().contains("20240201000000_b"),
            "{e}"
        );
        let failed = p("20240201000000_b").with_failed(Some(
            "20240301_c: ERROR:  relation \"x\"\n  does not exist".into(),
        ));
        let e = check_reached(&[failed], &target).unwrap_err();
        assert_eq!(
            e.to_string(),
            "prisma recorded a failed migration: 20240301_c: ERROR: relation \"x\" does not exist"
        );
        let dirty = MigrationHead::new(MigrationFramework::GolangMigrate, "3").with_dirty(true);
        let e = check_reached(&[dirty], &t("3")).unwrap_err();
        assert!(matches!(e, MigrationProblem::Dirty { .. }), "{e}");
        let e = check_reached(&[], &target).unwrap_err();
        assert!(matches!(e, MigrationProblem::NoHead { .. }), "{e}");
        let two = [
            p("1"),
            MigrationHead::new(MigrationFramework::Alembic, "abc"),
        ];
        assert!(matches!(
            check_reached(&two, &target),
            Err(MigrationProblem::Ambiguous { .. })
        ));
        assert!(check_reached(&two, &t("alembic:abc")).is_ok());
        let e = check_reached(&two, &t("alembic:def")).unwrap_err();
        assert!(matches!(e, MigrationProblem::Differs { .. }), "{e}");
    }

    /// A manifest of set `s/db` started at `minute` past midnight with head `head` of
    /// `framework` (none when empty).
    fn backup(minute: u8, framework: &str, head: &str) -> crate::Manifest {
        let migrations = if head.is_empty() {
            serde_json::json!({})
        } else {
            serde_json::json!({"db": [{"framework": framework, "head": head}]})
        };
        let m = serde_json::json!({
            "format_version": 3, "id": format!("20260101T00{minute:02}00Z-abcdef"),
            "pgb_version": "0", "set": "s/db", "database": "db", "server": "s",
            "server_version": "17", "pg_dump_version": "17", "pg_dump_major": 17,
            "format": "custom", "compression": {"algorithm": "none"},
            "started_at": format!("2026-01-01T00:{minute:02}:00Z"),
            "finished_at": format!("2026-01-01T00:{minute:02}:30Z"),
            "artifacts": [{"name": "data", "kind": "dump", "key": "k", "compression": {"algorithm": "none"},
                "encrypted": false, "stored_size": 1, "stored_sha256": "", "plain_size": 1,
                "plain_sha256": ""}],
            "migrations": migrations,
        });
        crate::Manifest::from_json(&serde_json::to_vec(&m).unwrap()).unwrap()
    }

    #[test]
    fn at_or_before_orders_where_it_can_and_uses_history_where_it_cannot() {
        let ordered = [
            backup(1, "rails", "1"),
            backup(2, "rails", "3"),
            backup(3, "rails", "5"),
        ];
        let refs: Vec<&crate::Manifest> = ordered.iter().collect();
        let minutes = |found: Vec<&crate::Manifest>| -> Vec<u8> {
            found.iter().map(|m| m.started_at.minute()).collect()
        };
        assert_eq!(minutes(at_or_before(&refs, &t("3"), None)), [1, 2]);
        assert_eq!(minutes(at_or_before(&refs, &t("4"), Some("db"))), [1, 2]);
        assert!(at_or_before(&refs, &t("4"), Some("other")).is_empty());
        // Alembic: before the first backup that recorded the revision, and those that did.
        let history = [
            backup(1, "alembic", "aaa"),
            backup(2, "alembic", "bbb"),
            backup(3, "alembic", "ccc"),
            backup(4, "alembic", "bbb"),
            backup(5, "alembic", ""),
        ];
        let refs: Vec<&crate::Manifest> = history.iter().collect();
        assert_eq!(minutes(at_or_before(&refs, &t("bbb"), None)), [1, 2, 4]);
        assert!(
            at_or_before(&refs, &t("zzz"), None).is_empty(),
            "never recorded: nothing is known to be before it"
        );
    }

    #[test]
    fn a_backup_newer_than_expected_is_refused_and_an_older_one_only_without_a_hook() {
        let heads = [MigrationHead::new(MigrationFramework::Flyway, "3")];
        let e = check_backup("b1", &heads, &t("2"), true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "backup b1 holds flyway:3, newer than the expected 2"
        );
        assert!(check_backup("b1", &heads, &t("4"), true).is_ok());
        let e = check_backup("b1", &heads, &t("4"), false).unwrap_err();
        assert!(matches!(e, MigrationProblem::BackupOlder { .. }), "{e}");
        assert!(check_backup("b1", &heads, &t("3"), false).is_ok());
        assert!(
            check_backup("b1", &[], &t("3"), false).is_ok(),
            "nothing recorded: no opinion"
        );
    }
}
