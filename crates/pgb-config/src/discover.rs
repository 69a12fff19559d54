//! Finding the config file: `--config FILE`, else `PGB_CONFIG`, else `./pgb.toml`, else
//! `/etc/pgb/pgb.toml`; and loading it through the file access the caller hands in.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::{ConfigError, LoadedConfig, Origin};

/// The message when no config file exists.
pub const NO_CONFIG: &str = "no config file: pass --config FILE, set PGB_CONFIG, or create \
                             ./pgb.toml or /etc/pgb/pgb.toml (`pgb config example` prints one)";

/// The file access [`load`] needs from its host (the binary passes the file system; tests
/// pass maps): the library reads no file on its own.
pub struct Files<'a> {
    /// The working directory, where `./pgb.toml` is looked for.
    pub cwd: &'a Path,
    /// Whether a path is a regular file.
    pub is_file: &'a dyn Fn(&Path) -> bool,
    /// Reads a file as text.
    pub read: &'a dyn Fn(&Path) -> std::io::Result<String>,
}

impl std::fmt::Debug for Files<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Files")
            .field("cwd", &self.cwd)
            .finish_non_exhaustive()
    }
}

/// Finds the config file ([`discover`]) and parses it. `Ok(None)`: there is none (the
/// caller says [`NO_CONFIG`] where a file is required).
///
/// # Errors
/// The file named by `--config` or `PGB_CONFIG` cannot be read, or it does not parse
/// ([`LoadedConfig::parse`]).
pub fn load(
    flag: Option<&Path>,
    var: &dyn Fn(&str) -> Option<String>,
    files: &Files<'_>,
) -> Result<Option<LoadedConfig>, ConfigError> {
    let Some((path, _found)) = discover(flag, var, files.cwd, files.is_file) else {
        return Ok(None);
    };
    let text = (files.read)(&path).map_err(|e| {
        ConfigError::new(
            Origin::File {
                path: path.display().to_string(),
                line: None,
            },
            format!("cannot read the config file: {e}"),
        )
    })?;
    LoadedConfig::parse(&text, &path).map(Some)
}

/// How the config file was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Found {
    /// `--config FILE`.
    Flag,
    /// The `PGB_CONFIG` variable.
    Env,
    /// `pgb.toml` in the working directory.
    WorkingDir,
    /// The system-wide `/etc/pgb/pgb.toml`.
    System,
}

/// The system-wide config file.
pub const SYSTEM_CONFIG: &str = "/etc/pgb/pgb.toml";

/// Picks the config file. An explicit `--config` or `PGB_CONFIG` is returned whether it
/// exists or not (reading it then fails loudly); `./pgb.toml` and [`SYSTEM_CONFIG`] only when
/// `exists` says so. `None`: no config, pgb runs from flags alone.
pub fn discover(
    flag: Option<&Path>,
    var: &dyn Fn(&str) -> Option<String>,
    cwd: &Path,
    exists: &dyn Fn(&Path) -> bool,
) -> Option<(PathBuf, Found)> {
    if let Some(p) = flag {
        return Some((p.to_path_buf(), Found::Flag));
    }
    if let Some(p) = var("PGB_CONFIG").filter(|p| !p.is_empty()) {
        return Some((PathBuf::from(p), Found::Env));
    }
    let local = cwd.join("pgb.toml");
    if exists(&local) {
        return Some((local, Found::WorkingDir));
    }
    let system = PathBuf::from(SYSTEM_CONFIG);
    if exists(&system) {
        return Some((system, Found::System));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_flag_env_cwd_system() {
        let none = |_: &str| None;
        let env = |k: &str| (k == "PGB_CONFIG").then(|| "/srv/pgb.toml".to_owned());
        let all = |_: &Path| true;
        let only_system = |p: &Path| p == Path::new(SYSTEM_CONFIG);
        let nothing = |_: &Path| false;
        let cwd = Path::new("/work");
        assert_eq!(
            discover(Some(Path::new("x.toml")), &env, cwd, &all),
            Some((PathBuf::from("x.toml"), Found::Flag))
        );
        assert_eq!(
            discover(None, &env, cwd, &all),
            Some((PathBuf::from("/srv/pgb.toml"), Found::Env))
        );
        assert_eq!(
            discover(None, &none, cwd, &all),
            Some((PathBuf::from("/work/pgb.toml"), Found::WorkingDir))
        );
        assert_eq!(
            discover(None, &none, cwd, &only_system),
            Some((PathBuf::from(SYSTEM_CONFIG), Found::System))
        );
        assert_eq!(discover(None, &none, cwd, &nothing), None);
    }

    #[test]
    fn load_reads_the_discovered_file_through_the_hosts_access() {
        let text = |p: &Path| -> std::io::Result<String> {
            match p.to_str() {
                Some("/work/pgb.toml") => Ok("[jobs.shop]\nrepository = \"/r\"\n".to_owned()),
                _ => Err(std::io::Error::from(std::io::ErrorKind::NotFound)),
            }
        };
        let none = |_: &str| None;
        let here = Files {
            cwd: Path::new("/work"),
            is_file: &|p| p == Path::new("/work/pgb.toml"),
            read: &text,
        };
        let cfg = load(None, &none, &here).unwrap().expect("./pgb.toml");
        assert_eq!(cfg.job_names().collect::<Vec<_>>(), ["shop"]);
        let elsewhere = Files {
            cwd: Path::new("/elsewhere"),
            ..here
        };
        assert!(load(None, &none, &elsewhere).unwrap().is_none());
        // A named file that cannot be read says so, naming it.
        let e = load(Some(Path::new("/etc/missing.toml")), &none, &elsewhere).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("/etc/missing.toml: cannot read the config file:"),
            "{e}"
        );
    }
}
