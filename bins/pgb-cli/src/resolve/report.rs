//! `pgb report`'s options: the window (`--since`, [`pgb_jobs::parse_since`]), the sets, the
//! policy whose next prune is shown (the flags as given, else the job's) and the job's part
//! ([`pgb_jobs::job_report`]).

use std::sync::Arc;

use pgb_config::ResolvedJob;
use pgb_ops::ReportOptions;
use time::OffsetDateTime;

use super::Env;
use crate::args::ReportArgs;
use crate::exit::Failure;

/// The report's options as of `now`.
pub(crate) fn report_options(
    a: &ReportArgs,
    job: Option<&ResolvedJob>,
    env: Env<'_>,
    now: OffsetDateTime,
) -> Result<ReportOptions, Failure> {
    let repo = pgb::redact_url(&super::repo_url(&a.repo, env));
    let mut o = ReportOptions::new(repo, now)
        .with_auth_key(super::auth_key(a.auth_key_file.as_deref(), env)?);
    if let Some(s) = &a.since {
        let start = pgb_jobs::parse_since(s, now)
            .map_err(|e| Failure::usage(format!("--since {s:?}: {e}")))?;
        o = o.with_since(start, s.clone());
    }
    if !a.set.is_empty() {
        o = o.with_sets(a.set.iter().cloned());
    }
    if let Some(text) = a.policy.as_given()
        && let Some(p) = super::policy(&a.policy)?
    {
        o = o.with_policy(Arc::new(p), text);
    }
    Ok(match job {
        Some(j) => pgb_jobs::job_report(o, j),
        None => o,
    })
}
