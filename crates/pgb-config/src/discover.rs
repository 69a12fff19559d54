//! Finding the config file: `--config FILE`, else `PGB_CONFIG`, else `./pgb.toml`, else
//! `/etc/pgb/pgb.toml`.

use std::path::{Path, PathBuf};

use serde::Serialize;

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
}
