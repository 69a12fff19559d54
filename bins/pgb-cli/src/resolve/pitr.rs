//! `drill --physical`: flags → [`PitrDrillOptions`], with the smoke files, limits and key every
//! drill takes ([`super::ops::common`]). The scratch server's `restore_command` is the
//! library's own (a copy from the drill's verified spool), so the options get none.

use pgb_ops::{PitrDrillOptions, PitrTarget};

use super::{Env, tools};
use crate::args::DrillArgs;
use crate::exit::Failure;

/// `--to-time random|TIME`, `--system-id`, `--amcheck`, `--from-database`; scratch
/// directories under `PGB_SPOOL_DIR`, else the temporary directory.
pub(crate) fn options(a: &DrillArgs, env: Env<'_>) -> Result<PitrDrillOptions, Failure> {
    let target = a
        .to_time
        .as_deref()
        .unwrap_or("random")
        .parse::<PitrTarget>();
    let target = target.map_err(|e| Failure::usage(format!("--to-time: {e}")))?;
    let mut o = PitrDrillOptions::new(tools(&a.tools, env), pgb_jobs::spool_dir(None, env))
        .with_target(target)
        .with_system_identifier(a.system_id)
        .with_amcheck(a.amcheck);
    if let Some(db) = &a.from_database {
        o = o.with_database(db.clone());
    }
    Ok(super::ops::common(a, env)?.0.pitr(o))
}
