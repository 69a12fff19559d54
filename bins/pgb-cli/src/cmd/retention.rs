//! `pgb retention plan`: the retention engine on a JSON list of backups, no repository.

use std::path::Path;

use pgb::retention::{Backup, RetentionPolicy};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::args::RetentionCommand;
use crate::exit::Failure;
use crate::render::{self, Output};
use crate::resolve;

pub(super) fn run(cmd: RetentionCommand) -> Result<(), Failure> {
    let RetentionCommand::Plan {
        policy,
        input,
        now,
        json,
    } = cmd;
    let policy =
        resolve::policy(&policy)?.ok_or_else(|| Failure::usage("no retention policy given"))?;
    let backups = read_backups(&input)?;
    let now = match now {
        Some(s) => OffsetDateTime::parse(&s, &Rfc3339)
            .map_err(|e| Failure::usage(format!("--now {s:?}: expected RFC 3339 ({e})")))?,
        None => OffsetDateTime::now_utc(),
    };
    let plan = policy
        .plan(&backups, now)
        .map_err(|e| Failure::usage(e.to_string()))?;
    let times = backups.iter().map(|b| (b.id.clone(), b.time)).collect();
    Output::json(json).emit(&plan, |w| render::plan_text(w, &plan, &times))
}

/// The backups of `--input` (a file, or `-` for stdin).
fn read_backups(input: &Path) -> Result<Vec<Backup>, Failure> {
    let text = if input.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(input)
    }
    .map_err(|e| Failure::usage(format!("cannot read {}: {e}", input.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        Failure::usage(format!(
            "{}: expected a JSON array of {{\"id\", \"time\" (RFC 3339), \"labels\"}}: {e}",
            input.display()
        ))
    })
}
