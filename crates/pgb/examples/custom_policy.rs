//! The retention engine on its own: explain a "7 daily, 4 weekly, 3 monthly" policy over a
//! year of nightly backups, with no repository and no async runtime.
//!
//! ```sh
//! cargo run -p pgb --example custom_policy
//! ```

use pgb::retention::{Backup, Count, Policy, RetentionPolicy};
use time::macros::datetime;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = datetime!(2026-01-01 02:00 UTC);
    let backups: Vec<Backup> = (0..365)
        .map(|d| Backup::new(format!("nightly-{d:03}"), start + time::Duration::days(d)))
        .collect();
    let policy = Policy::default()
        .with_keep_daily(Count::N(7))
        .with_keep_weekly(Count::N(4))
        .with_keep_monthly(Count::N(3));
    let plan = policy.plan(&backups, datetime!(2027-01-01 00:00 UTC))?;
    for kept in &plan.keep {
        let reasons: Vec<String> = kept.reasons.iter().map(ToString::to_string).collect();
        println!("keep   {}  {}", kept.id, reasons.join(", "));
    }
    println!(
        "remove {} backups; keep {}",
        plan.remove.len(),
        plan.keep.len()
    );
    assert_eq!(
        plan.keep.len(),
        11,
        "7/4/3 keeps 11 nightly backups, not 14"
    );
    Ok(())
}
