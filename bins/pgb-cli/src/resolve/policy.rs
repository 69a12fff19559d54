//! The retention policy of the `--keep-*` flags, built by the config crate's one builder
//! ([`pgb_config::retention_policy`]) as a job's `keep_*` keys are, and `gc`'s grace period.

use pgb::retention::Policy;

use crate::args::PolicyArgs;
use crate::exit::Failure;

/// The retention policy of the `--keep-*` flags, else that of `--job`; `None` when neither.
pub(crate) fn policy(a: &PolicyArgs) -> Result<Option<Policy>, Failure> {
    let p = pgb_config::retention_policy(&a.settings()?).map_err(|e| Failure::usage(e.message))?;
    Ok(p.or_else(|| a.from_job.clone()))
}

/// The grace period of `gc` (`24h`, `7d`, `2w`), in the one duration grammar.
pub(crate) fn grace(older_than: Option<&str>) -> Result<time::Duration, Failure> {
    let s = older_than.unwrap_or(super::defaults::GC_OLDER_THAN);
    let d =
        pgb_config::parse_duration(s).map_err(|e| Failure::usage(format!("--older-than: {e}")))?;
    time::Duration::try_from(d).map_err(|e| Failure::usage(format!("--older-than {s:?}: {e}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn flags_go_through_the_config_builder_and_grace_through_the_duration_grammar() {
        let a = crate::args::PolicyArgs {
            keep_last: Some("-1".to_owned()),
            ..Default::default()
        };
        let e = super::policy(&a).unwrap_err();
        assert!(
            e.code == 2 && e.message.contains("unlimited"),
            "{}",
            e.message
        );
        assert!(super::policy(&Default::default()).unwrap().is_none());
        assert_eq!(super::grace(None).unwrap(), time::Duration::hours(24));
        assert_eq!(
            super::grace(Some("3m")).unwrap(),
            time::Duration::minutes(3)
        );
        assert_eq!(super::grace(Some("3mo")).unwrap_err().code, 2);
    }
}
