//! Prune: apply a retention policy to each backup set and delete what it does not keep.
//!
//! The rules that make a prune safe live here, once, for the CLI, the daemon and embedders:
//!
//! - **Per backup set.** A policy counts the backups of one retention set (one database on one
//!   server, or one whole server, with the selection it was made with:
//!   [`Manifest::retention_set`]), never the repository as a whole, so a busy database cannot
//!   push a quiet one out.
//! - **Only the caller's sets.** A job prunes only the set it backs up
//!   ([`PruneOptions::with_sets`]); backups of other jobs sharing the repository are not
//!   touched, not even planned.
//! - **Only usable backups count.** Backups running now (a live lease, no manifest yet) and
//!   folders whose manifest is unusable (unreadable, too large, failing authentication, data
//!   missing: [`Repository::list`]) are neither counted nor deleted; they are reported.
//! - **The newest complete backup of a set is never deleted,** whatever the policy says.
//! - **The newest verified backup of a set is never deleted** when the caller passes the ids of
//!   verified backups ([`PruneOptions::with_verified`]; `pgb-ops::verified_ids` reads them),
//!   so a run of unverified backups cannot push out the last one known to be good.
//! - **Labels are honoured:** each backup reaches the policy with the labels of its manifest.
//! - **Manifest first.** Each deletion removes the manifest before the data
//!   ([`Repository::delete_backup`]), so an interrupted prune leaves a leftover for `gc`, never
//!   a manifest without data.
//! - **Decide, then delete.** Every set is planned before anything is deleted; a policy error
//!   deletes nothing.
//! - **Physical backups keep their recovery window and their WAL.** With a window policy
//!   (`keep_within`), the base backup that reaches the window's start is kept too
//!   ([`PruneDecision::window_guard`]); after the backups are deleted, the cluster's archived
//!   WAL that no kept backup needs is deleted ([`WalRetention`], `wal/retain.rs`). WAL of a
//!   cluster without a physical backup in the pruned sets is never touched.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use time::OffsetDateTime;

use super::{InvalidBackup, Repository};
use crate::error::Error;
use crate::manifest::{BackupId, Manifest};
use crate::wal::WalRetention;
use crate::wal::retain::RetainRequest;
use crate::wal::window::Base;
use pgb_retention::{Backup, Reason, RetentionPolicy};

/// Options for [`Repository::prune`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PruneOptions {
    /// Decide and report, delete nothing.
    pub dry_run: bool,
    /// The instant the policy is evaluated at (only future-dated backups depend on it);
    /// `None` is the current time.
    pub now: Option<OffsetDateTime>,
    /// The backups with valid verification evidence; the newest of them in each set is kept
    /// whatever the policy says. `None`: no such guard.
    pub verified: Option<BTreeSet<BackupId>>,
    /// Only these retention sets are planned and pruned ([`Manifest::retention_set`]);
    /// `None`: every set of the repository.
    pub sets: Option<BTreeSet<String>>,
}

impl PruneOptions {
    /// Decides and reports without deleting.
    #[must_use]
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Never removes the newest backup of a set among `verified`.
    #[must_use]
    pub fn with_verified(mut self, verified: BTreeSet<BackupId>) -> Self {
        self.verified = Some(verified);
        self
    }

    /// Plans and prunes only these retention sets (a job's own), leaving every other set
    /// alone.
    #[must_use]
    pub fn with_sets(mut self, sets: impl IntoIterator<Item = String>) -> Self {
        self.sets = Some(sets.into_iter().collect());
        self
    }

    /// Evaluates the policy as of `now` instead of the current time.
    #[must_use]
    pub fn with_now(mut self, now: OffsetDateTime) -> Self {
        self.now = Some(now);
        self
    }
}

/// What happens to one backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum PruneAction {
    /// Kept: a rule keeps it, or it is the newest backup of its set.
    Keep,
    /// Removed (or, in a dry run, would be): no rule keeps it.
    Remove,
}

/// The decision about one backup, with its reasons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PruneDecision {
    /// The backup.
    pub id: BackupId,
    /// When it started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// Its labels, as the policy saw them.
    pub labels: Vec<String>,
    /// Keep or remove.
    pub action: PruneAction,
    /// Why it is kept: every rule that keeps it (empty for a removal, and for a backup kept
    /// only by the newest-backup guard).
    pub reasons: Vec<Reason>,
    /// Kept because it is the newest complete backup of its set, although the policy would
    /// remove it.
    pub newest_guard: bool,
    /// Kept because it is the newest verified backup of its set (reason `newest verified`),
    /// although the policy would remove it.
    #[serde(default)]
    pub verified_guard: bool,
    /// Kept because the policy's recovery window (`keep_within`) starts after it ended and
    /// no newer backup reaches that start: a physical backup the window needs, although
    /// the other rules would remove it.
    #[serde(default)]
    pub window_guard: bool,
    /// Kept because kept incremental base backups build on it (their ids, newest first):
    /// a restore of them combines it, so it stays while they do, although the policy would
    /// remove it. Its own WAL is not kept for it: the incrementals' needs are what counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_of: Vec<BackupId>,
    /// Whether it was deleted (always `false` in a dry run and for kept backups).
    pub deleted: bool,
}

/// The decisions for one backup set, newest backup first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PruneSet {
    /// The retention set (`server/database`, plus the selection if any).
    pub set: String,
    /// One decision per complete backup of the set, newest first.
    pub decisions: Vec<PruneDecision>,
}

impl PruneSet {
    /// Decisions with this action.
    pub fn with_action(&self, action: PruneAction) -> impl Iterator<Item = &PruneDecision> {
        self.decisions.iter().filter(move |d| d.action == action)
    }
}

/// What [`Repository::prune`] decided and did.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PruneReport {
    /// Nothing was deleted.
    pub dry_run: bool,
    /// The instant the policy was evaluated at.
    #[serde(with = "time::serde::rfc3339")]
    pub evaluated_at: OffsetDateTime,
    /// One entry per backup set, ordered by set name.
    pub sets: Vec<PruneSet>,
    /// Backups running now (live lease, no manifest): not counted, not touched.
    pub in_progress: Vec<String>,
    /// Folders whose manifest is unusable: not counted, not deleted.
    pub invalid: Vec<InvalidBackup>,
    /// Per cluster of the physical sets pruned: the archived WAL kept and deleted, and the
    /// recovery window before and after.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wal: Vec<WalRetention>,
}

impl PruneReport {
    /// Backups the policy removes (deleted, or to be deleted in a dry run).
    pub fn removals(&self) -> impl Iterator<Item = &PruneDecision> {
        self.sets
            .iter()
            .flat_map(|s| s.with_action(PruneAction::Remove))
    }

    /// How many backups were deleted.
    #[must_use]
    pub fn deleted(&self) -> usize {
        self.removals().filter(|d| d.deleted).count()
    }
}

impl Repository {
    /// Applies `policy` to each backup set and deletes the backups it does not keep (none with
    /// [`PruneOptions::dry_run`]): per set, complete backups
    /// only, never the newest of a set, labels honoured, manifest first.
    ///
    /// # Errors
    /// `Policy` if the policy cannot be applied (nothing is deleted then); storage failures
    /// while listing or deleting (a re-run finishes an interrupted prune: the decisions are
    /// the same, and a half-deleted backup is a leftover for `gc`).
    pub async fn prune(
        &self,
        policy: &dyn RetentionPolicy,
        opts: &PruneOptions,
    ) -> Result<PruneReport, Error> {
        let listing = self.list().await?;
        let now = opts.now.unwrap_or_else(OffsetDateTime::now_utc);
        let mut by_set: BTreeMap<String, Vec<&Manifest>> = BTreeMap::new();
        for m in &listing.backups {
            let set = m.retention_set();
            if opts.sets.as_ref().is_none_or(|only| only.contains(&set)) {
                by_set.entry(set).or_default().push(m);
            }
        }
        let mut sets = by_set
            .iter()
            .map(|(set, manifests)| plan_set(set, manifests, policy, now, opts.verified.as_ref()))
            .collect::<Result<Vec<_>, Error>>()?;
        let windows: Vec<Option<WindowNeed>> = sets
            .iter_mut()
            .map(|s| window_guard(s, &by_set[&s.set], policy, now))
            .collect();
        for s in &mut sets {
            chain_guard(s, &by_set[&s.set]);
        }
        if !opts.dry_run {
            for d in sets
                .iter_mut()
                .flat_map(|s| s.decisions.iter_mut())
                .filter(|d| d.action == PruneAction::Remove)
            {
                self.delete_backup(&d.id).await?;
                tracing::info!(backup = %d.id, "pruned");
                d.deleted = true;
            }
        }
        // WAL only once the manifests of the backups that needed it are gone.
        let mut wal = Vec::new();
        for (set, need) in sets.iter().zip(&windows) {
            if let Some(r) = self
                .retain_wal(set, &by_set[&set.set], policy, need.as_ref(), opts.dry_run)
                .await?
            {
                wal.push(r);
            }
        }
        Ok(PruneReport {
            dry_run: opts.dry_run,
            evaluated_at: now,
            sets,
            in_progress: listing.in_progress,
            invalid: listing.invalid,
            wal,
        })
    }
}

/// The decisions for one set: the policy's plan, with the newest backup always kept.
fn plan_set(
    set: &str,
    manifests: &[&Manifest],
    policy: &dyn RetentionPolicy,
    now: OffsetDateTime,
    verified: Option<&BTreeSet<BackupId>>,
) -> Result<PruneSet, Error> {
    let backups: Vec<Backup> = manifests
        .iter()
        .map(|m| {
            m.labels
                .iter()
                .fold(Backup::new(m.id.as_str(), m.started_at), |b, l| {
                    b.with_label(l.clone())
                })
        })
        .collect();
    let plan = policy.plan(&backups, now)?;
    let mut reasons: BTreeMap<&str, &[Reason]> = plan
        .keep
        .iter()
        .map(|k| (k.id.as_str(), k.reasons.as_slice()))
        .collect();
    let newest = manifests.iter().map(|m| (m.started_at, &m.id)).max();
    let newest_verified = verified.and_then(|v| {
        manifests
            .iter()
            .filter(|m| v.contains(&m.id))
            .map(|m| (m.started_at, &m.id))
            .max()
    });
    let mut decisions: Vec<PruneDecision> = manifests
        .iter()
        .map(|m| {
            let kept = reasons.remove(m.id.as_str());
            let is_newest = newest == Some((m.started_at, &m.id));
            let newest_guard = kept.is_none() && is_newest;
            let verified_guard =
                kept.is_none() && !is_newest && newest_verified == Some((m.started_at, &m.id));
            if newest_guard {
                tracing::error!(backup = %m.id, "policy would remove the newest backup of its set; keeping it");
            }
            PruneDecision {
                id: m.id.clone(),
                started_at: m.started_at,
                labels: m.labels.clone(),
                action: if kept.is_some() || newest_guard || verified_guard {
                    PruneAction::Keep
                } else {
                    PruneAction::Remove
                },
                reasons: kept.map(<[Reason]>::to_vec).unwrap_or_default(),
                newest_guard,
                verified_guard,
                window_guard: false,
                parent_of: Vec::new(),
                deleted: false,
            }
        })
        .collect();
    decisions.sort_by(|a, b| (b.started_at, &b.id).cmp(&(a.started_at, &a.id)));
    Ok(PruneSet {
        set: set.to_owned(),
        decisions,
    })
}

/// Where a physical set's recovery window must start, and the backup that reaches it.
struct WindowNeed {
    wanted_from: OffsetDateTime,
    backup: Option<BackupId>,
}

/// The physical backups of a set and their cluster (`None` for a logical set, or one mixing
/// clusters, which pgb never writes).
fn cluster_of(manifests: &[&Manifest]) -> Option<u64> {
    let mut ids = manifests
        .iter()
        .map(|m| m.physical.as_ref().map(|p| p.system_identifier));
    let first = ids.next()??;
    ids.all(|i| i == Some(first)).then_some(first)
}

/// Keeps the base backup a physical set's recovery window needs: the newest one that ended
/// at or before the window's start (a restore to any moment after it starts there). With no
/// such backup every backup ended inside the window and the oldest kept one starts it.
fn window_guard(
    set: &mut PruneSet,
    manifests: &[&Manifest],
    policy: &dyn RetentionPolicy,
    now: OffsetDateTime,
) -> Option<WindowNeed> {
    let sysid = cluster_of(manifests)?;
    // The window is measured from the newest backup, as `keep_within` is (future-dated
    // backups do not move it).
    let newest = manifests
        .iter()
        .map(|m| m.started_at)
        .filter(|t| *t <= now)
        .max()?;
    let wanted_from = policy.recovery_window_start(newest)?;
    let backup = manifests
        .iter()
        .filter_map(|m| Base::from_manifest(m, sysid))
        .filter(|b| b.info.stop_time <= wanted_from)
        .max_by_key(|b| (b.info.stop_time, b.id))
        .map(|b| b.id.clone());
    if let Some(id) = &backup
        && let Some(d) = set.decisions.iter_mut().find(|d| &d.id == id)
        && d.action == PruneAction::Remove
    {
        d.action = PruneAction::Keep;
        d.window_guard = true;
    }
    Some(WindowNeed {
        wanted_from,
        backup,
    })
}

/// Keeps every ancestor of a kept incremental base backup (its chain): a chain is never
/// broken by retention.
fn chain_guard(set: &mut PruneSet, manifests: &[&Manifest]) {
    let kept: Vec<(BackupId, Vec<BackupId>)> = set
        .with_action(PruneAction::Keep)
        .filter_map(|d| {
            let m = manifests.iter().find(|m| m.id == d.id)?;
            let inc = m.physical.as_ref()?.incremental.as_ref()?;
            Some((d.id.clone(), inc.chain.clone()))
        })
        .collect();
    for (child, chain) in kept {
        for ancestor in chain {
            if let Some(d) = set.decisions.iter_mut().find(|d| d.id == ancestor) {
                d.action = PruneAction::Keep;
                d.parent_of.push(child.clone());
            }
        }
    }
}

/// Kept only as an ancestor of kept incrementals: its own WAL is not needed.
fn chain_only(d: &PruneDecision) -> bool {
    !d.parent_of.is_empty()
        && d.reasons.is_empty()
        && !d.newest_guard
        && !d.verified_guard
        && !d.window_guard
}

impl Repository {
    /// The WAL step of a prune for one set, when it is a physical one.
    async fn retain_wal(
        &self,
        set: &PruneSet,
        manifests: &[&Manifest],
        policy: &dyn RetentionPolicy,
        need: Option<&WindowNeed>,
        dry_run: bool,
    ) -> Result<Option<WalRetention>, Error> {
        let Some(sysid) = cluster_of(manifests) else {
            return Ok(None);
        };
        let kept: BTreeSet<&BackupId> = set
            .with_action(PruneAction::Keep)
            .filter(|d| !chain_only(d))
            .map(|d| &d.id)
            .collect();
        let before = Base::of(manifests, sysid);
        let kept_bases = before
            .iter()
            .filter(|b| kept.contains(b.id))
            .copied()
            .collect();
        let r = self
            .wal()
            .retain(RetainRequest {
                set: &set.set,
                system_identifier: sysid,
                before,
                kept: kept_bases,
                window: policy.recovery_window().map(|s| s.to_string()),
                window_wanted_from: need.map(|n| n.wanted_from),
                window_backup: need.and_then(|n| n.backup.as_ref()),
                dry_run,
            })
            .await?;
        Ok(Some(r))
    }
}
