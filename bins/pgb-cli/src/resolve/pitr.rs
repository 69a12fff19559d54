//! `drill --physical`: flags and environment → [`PitrDrillOptions`]. The scratch server's
//! `restore_command` is the library's own (a copy from the drill's verified spool), so the
//! options get no `wal fetch` command.

use std::path::PathBuf;
use std::sync::Arc;

use pgb::physical::parse_target_time;
use pgb_ops::{PitrDrillOptions, PitrTarget};

use super::{Env, temp_dir, tools, var};
use crate::args::DrillArgs;
use crate::exit::Failure;

/// The options of `drill --physical`: `--to-time random|TIME`, `--system-id`, smoke files,
/// `--amcheck`, limits, the record's key; scratch directories under `PGB_SPOOL_DIR`, else the
/// temporary directory.
pub(crate) fn options(a: &DrillArgs, env: Env<'_>) -> Result<PitrDrillOptions, Failure> {
    let target = match a.to_time.as_deref().unwrap_or("random") {
        "random" => PitrTarget::Random,
        t => PitrTarget::Time(
            parse_target_time(t).map_err(|e| Failure::usage(format!("--to-time: {e}")))?,
        ),
    };
    let scratch = var(env, "PGB_SPOOL_DIR").map_or_else(|| temp_dir(env), PathBuf::from);
    let unused = Arc::new(|_: u64, _: &std::path::Path| String::new());
    let mut o = PitrDrillOptions::new(tools(&a.tools, env), scratch, unused)
        .with_target(target)
        .with_system_identifier(a.system_id)
        .with_amcheck(a.amcheck);
    if let Some(db) = &a.from_database {
        o = o.with_database(db.clone());
    }
    for (name, sql) in super::ops::smoke_files(a)? {
        o = o.with_smoke(name, sql);
    }
    let (max_rto, max_rpo) = super::ops::drill_limits(a)?;
    if let Some(d) = max_rto {
        o = o.with_max_rto(d);
    }
    if let Some(d) = max_rpo {
        o = o.with_max_rpo(d);
    }
    if let Some(k) = super::auth_key(a.keys.auth_key_file.as_deref(), env)? {
        o = o.with_auth_key(k);
    }
    Ok(o)
}
