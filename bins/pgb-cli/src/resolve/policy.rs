//! The retention policy of the `--keep-*` flags, built by the config crate's one builder
//! ([`pgb_config::retention_policy`]) as a job's `keep_*` keys are.

use pgb::retention::Policy;

use crate::args::PolicyArgs;
use crate::exit::Failure;

/// The retention policy of the `--keep-*` flags, else that of `--job`; `None` when neither.
pub(crate) fn policy(a: &PolicyArgs) -> Result<Option<Policy>, Failure> {
    let p = pgb_config::retention_policy(&a.settings()?).map_err(|e| Failure::usage(e.message))?;
    Ok(p.or_else(|| a.from_job.clone()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn flags_go_through_the_config_builder() {
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
    }
}
