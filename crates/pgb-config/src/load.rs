//! Parsing a config file: syntax, inline secrets, unknown keys and types, each error with
//! the file, line, job and key.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use crate::error::{ConfigError, Origin};
use crate::settings::ConfigFile;

/// Which table of the file a key belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Scope {
    Defaults,
    Job(String),
}

/// A parsed, well-typed config file, with the line of every key for provenance.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub(crate) path: PathBuf,
    pub(crate) file: ConfigFile,
    pub(crate) lines: BTreeMap<(Scope, String), usize>,
}

/// One key of the document: its path from the root and where key and value are.
struct Entry {
    path: Vec<String>,
    key: Range<usize>,
    value: Range<usize>,
}

fn walk(table: &DeTable<'_>, prefix: &mut Vec<String>, out: &mut Vec<Entry>) {
    for (k, v) in table {
        prefix.push(k.get_ref().to_string());
        out.push(Entry {
            path: prefix.clone(),
            key: k.span(),
            value: v.span(),
        });
        if let DeValue::Table(t) = v.get_ref() {
            walk(t, prefix, out);
        }
        prefix.pop();
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Splits a document path into (job, key): `["jobs","shop","drill","target"]` ->
/// (`Some("shop")`, `"drill.target"`); `["defaults","schedule"]` -> (`None`, `"schedule"`).
fn job_and_key(path: &[String]) -> (Option<&str>, Option<String>) {
    match path {
        [t, job, rest @ ..] if t == "jobs" => (
            Some(job.as_str()),
            (!rest.is_empty()).then(|| rest.join(".")),
        ),
        [t, rest @ ..] if t == "defaults" => (None, (!rest.is_empty()).then(|| rest.join("."))),
        other => (None, (!other.is_empty()).then(|| other.join("."))),
    }
}

/// Keys whose value would be a secret: refused with a pointer to the file/env form.
const SECRET_KEYS: &[(&str, &str)] = &[
    ("passphrase", "passphrase_file or passphrase_env"),
    (
        "password",
        "PGPASSWORD or PGPASSFILE in the job's environment",
    ),
    ("auth_key", "auth_key_file or auth_key_env"),
    ("identity", "identity_file"),
    ("secret", "a file or an environment variable"),
    ("token", "a file or an environment variable"),
    ("webhook_url", "webhook_url_env or webhook_url_file"),
    ("slack_url", "slack_url_env"),
    ("ping_url", "ping_url_env"),
];

/// A password in a URL's userinfo (`scheme://user:pass@host`) or query (`password=`).
pub(crate) fn url_has_password(s: &str) -> bool {
    let Some((_, rest)) = s.split_once("://") else {
        return false;
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if let Some((userinfo, _)) = authority.rsplit_once('@')
        && userinfo.contains(':')
    {
        return true;
    }
    rest.split(['?', '&'])
        .skip(1)
        .any(|kv| kv.to_ascii_lowercase().starts_with("password="))
}

/// The inline-secret rules for one string value at `key` (last path segment).
pub(crate) fn secret_problem(key: &str, value: &str) -> Option<String> {
    if value.to_ascii_uppercase().contains("AGE-SECRET-KEY-") {
        return Some(
            "an age secret key written inline; put it in a file and name it with identity_file"
                .into(),
        );
    }
    if url_has_password(value) {
        return Some(
            "a password written inline in a URL; leave it out and use PGPASSWORD, PGPASSFILE \
             or the storage's credential variables"
                .into(),
        );
    }
    if key.ends_with("_env") && value.contains("://") {
        return Some(format!(
            "{key} takes the name of an environment variable holding the secret, not the value"
        ));
    }
    None
}

impl LoadedConfig {
    /// Parses `text`, read by the caller from `path` (used in messages only).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file, line, job and key: TOML syntax, a secret written
    /// inline, an unknown key, a wrong type, a job name that is not `[A-Za-z0-9_-]+`.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let at = |offset: Option<usize>| Origin::File {
            path: shown.clone(),
            line: offset.map(|o| line_of(text, o)),
        };
        let doc = DeTable::parse(text).map_err(|e| {
            ConfigError::new(
                at(e.span().map(|s| s.start)),
                first_line(e.message()).to_owned(),
            )
        })?;
        let mut entries = Vec::new();
        walk(doc.get_ref(), &mut Vec::new(), &mut entries);

        // Secrets first, so `passphrase = "..."` says why rather than "unknown key".
        for e in &entries {
            let (job, key) = job_and_key(&e.path);
            let Some(key) = key else { continue };
            let last = e.path.last().map(String::as_str).unwrap_or_default();
            if let Some((_, instead)) = SECRET_KEYS.iter().find(|(k, _)| *k == last) {
                return Err(ConfigError::new(
                    at(Some(e.key.start)),
                    format!("a secret written inline; use {instead} instead"),
                )
                .job(job)
                .key(key));
            }
            let value = &text[e.value.clone()];
            for s in string_values(value) {
                if let Some(problem) = secret_problem(last, &s) {
                    return Err(ConfigError::new(at(Some(e.key.start)), problem)
                        .job(job)
                        .key(key));
                }
            }
        }

        let file = ConfigFile::deserialize(toml::de::Deserializer::from(doc)).map_err(|e| {
            let start = e.span().map(|s| s.start);
            // The innermost key whose key or value covers the error.
            let hit = start.and_then(|s| {
                entries
                    .iter()
                    .filter(|en| en.key.contains(&s) || en.value.contains(&s))
                    .max_by_key(|en| en.path.len())
            });
            let message = unknown_key_hint(first_line(e.message()))
                .unwrap_or_else(|| first_line(e.message()).to_owned());
            let mut err = ConfigError::new(at(start), message);
            if let Some(en) = hit {
                let (job, key) = job_and_key(&en.path);
                err = err.job(job);
                if let Some(k) = key {
                    err = err.key(k);
                }
            }
            err
        })?;

        for name in file.jobs.keys() {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                let e = entries
                    .iter()
                    .find(|en| en.path.len() == 2 && en.path[0] == "jobs" && &en.path[1] == name);
                return Err(ConfigError::new(
                    at(e.map(|e| e.key.start)),
                    format!("job name {name:?}: use letters, digits, `_` and `-` only"),
                ));
            }
        }

        let mut lines = BTreeMap::new();
        for e in &entries {
            let scope = match e.path.as_slice() {
                [t, _, ..] if t == "defaults" => Scope::Defaults,
                [t, job, _, ..] if t == "jobs" => Scope::Job(job.clone()),
                _ => continue,
            };
            if let (_, Some(key)) = job_and_key(&e.path) {
                lines.insert((scope, key), line_of(text, e.key.start));
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            lines,
        })
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parsed file.
    pub fn file(&self) -> &ConfigFile {
        &self.file
    }

    /// The job names, sorted.
    pub fn job_names(&self) -> impl Iterator<Item = &str> {
        self.file.jobs.keys().map(String::as_str)
    }
}

/// The strings inside a TOML value's source text (a string or an array of strings).
fn string_values(src: &str) -> Vec<String> {
    match DeValue::parse(src) {
        Ok(v) => {
            let mut out = Vec::new();
            collect_strings(v.get_ref(), &mut out);
            out
        }
        Err(_) => Vec::new(),
    }
}

fn collect_strings(v: &DeValue<'_>, out: &mut Vec<String>) {
    match v {
        DeValue::String(s) => out.push(s.to_string()),
        DeValue::Array(a) => a.iter().for_each(|x| collect_strings(x.get_ref(), out)),
        _ => {}
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s).trim()
}

/// serde's "unknown field `keep_dialy`, expected one of `database`, ... (57 names)" as one
/// useful line: "unknown key `keep_dialy`; did you mean `keep_daily`?" (the nearest known key
/// within two edits), else "unknown key `x` (`pgb config example` lists every key)".
fn unknown_key_hint(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, known) = rest.split_once('`')?;
    let nearest = known
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|k| (edit_distance(key, k), k))
        .filter(|(d, _)| *d <= 2)
        .min();
    Some(match nearest {
        Some((_, k)) => format!("unknown key `{key}`; did you mean `{k}`?"),
        None => format!("unknown key `{key}` (`pgb config example` lists every key)"),
    })
}

/// Levenshtein distance (the keys are short ASCII names).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
