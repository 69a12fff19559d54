//! Part sizes for streamed uploads.

const MIB: u64 = 1024 * 1024;

/// How a backend cuts a streamed object into parts (S3 multipart parts, Azure blocks), and how
/// many parts may be in flight at once.
///
/// Memory per writer is about `part × (concurrency + 2)`: one part being filled, one held back by
/// OpenDAL's multipart writer, and `concurrency` parts uploading.
///
/// ```
/// use pgb_storage_opendal::PartSizing;
///
/// let s3 = PartSizing::s3();
/// // A 2 TiB dump announced with a size hint stays well under 10,000 parts.
/// let plan = s3.plan(Some(2 * 1024 * 1024 * 1024 * 1024));
/// assert!(plan.part_size * 10_000 >= 2 * 1024 * 1024 * 1024 * 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartSizing {
    /// Smallest part the service accepts (S3: 5 MiB).
    pub min_part: u64,
    /// Largest part the service accepts (S3: 5 GiB).
    pub max_part: u64,
    /// Most parts one object may have (S3: 10,000; Azure: 50,000 blocks), if limited.
    pub max_parts: Option<u64>,
    /// Part size when no size hint is given.
    pub default_part: u64,
    /// Parts uploaded concurrently, at most.
    pub max_concurrency: usize,
    /// Memory budget for parts in flight; concurrency shrinks when parts are large.
    pub memory_budget: u64,
}

/// The part size and concurrency chosen for one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct UploadPlan {
    /// Bytes per part (and per buffered chunk).
    pub part_size: u64,
    /// Parts in flight at once.
    pub concurrency: usize,
    /// The largest object this plan can store (`part_size × max_parts`), if limited.
    pub max_object_size: Option<u64>,
}

impl PartSizing {
    /// Amazon S3 and S3-compatible stores: 5 MiB..5 GiB parts, at most 10,000 of them. Without a
    /// size hint, 32 MiB parts (objects up to about 312 GiB).
    pub fn s3() -> Self {
        Self {
            min_part: 5 * MIB,
            max_part: 5 * 1024 * MIB,
            max_parts: Some(10_000),
            default_part: 32 * MIB,
            max_concurrency: 4,
            memory_budget: 256 * MIB,
        }
    }

    /// Azure block blobs: blocks up to 4000 MiB, at most 50,000 of them. Without a size hint,
    /// 16 MiB blocks (objects up to about 781 GiB).
    pub fn azure() -> Self {
        Self {
            min_part: MIB,
            max_part: 4000 * MIB,
            max_parts: Some(50_000),
            default_part: 16 * MIB,
            max_concurrency: 4,
            memory_budget: 256 * MIB,
        }
    }

    /// Sequential uploads without a part limit (GCS resumable uploads): 8 MiB chunks, one at a time.
    pub fn sequential() -> Self {
        Self {
            min_part: 256 * 1024,
            max_part: 8 * MIB,
            max_parts: None,
            default_part: 8 * MIB,
            max_concurrency: 1,
            memory_budget: 8 * MIB,
        }
    }

    /// Sets the part size used without a size hint (clamped to the service's limits).
    pub fn with_default_part(mut self, bytes: u64) -> Self {
        self.default_part = bytes.clamp(self.min_part, self.max_part);
        self
    }

    /// Sets the maximum number of parts in flight (at least 1).
    pub fn with_max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n.max(1);
        self
    }

    /// Chooses the part size for an object of about `size_hint` bytes.
    ///
    /// With a hint, parts are sized so that the object needs at most 80% of `max_parts` (20%
    /// headroom for a dump that grows past its estimate), rounded up to a whole MiB and never
    /// below 8 MiB (or `min_part`). Without one, `default_part` is used. Concurrency shrinks so
    /// that the parts in flight stay within `memory_budget`.
    pub fn plan(&self, size_hint: Option<u64>) -> UploadPlan {
        let part = match (size_hint, self.max_parts) {
            (Some(hint), Some(max_parts)) => {
                let target_parts = (max_parts * 4 / 5).max(1);
                let needed = hint.div_ceil(target_parts).div_ceil(MIB) * MIB;
                needed
                    .max((8 * MIB).min(self.default_part))
                    .max(self.min_part)
            }
            _ => self.default_part,
        }
        .clamp(self.min_part, self.max_part);
        let by_budget = usize::try_from(self.memory_budget / part).unwrap_or(usize::MAX);
        UploadPlan {
            part_size: part,
            concurrency: by_budget.clamp(1, self.max_concurrency.max(1)),
            max_object_size: self.max_parts.map(|n| n.saturating_mul(part)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1024 * MIB;

    #[test]
    fn hinted_sizes_stay_under_the_part_limit() {
        let s3 = PartSizing::s3();
        for hint in [
            0,
            1,
            MIB,
            100 * MIB,
            48 * GIB,
            100 * GIB,
            1024 * GIB,
            4 * 1024 * GIB,
        ] {
            let plan = s3.plan(Some(hint));
            assert!(
                plan.part_size >= 5 * MIB && plan.part_size <= 5 * GIB,
                "{hint}: {plan:?}"
            );
            let parts = hint.div_ceil(plan.part_size);
            assert!(
                parts <= 8_000,
                "hint {hint} needs {parts} parts of {}",
                plan.part_size
            );
            assert!(plan.concurrency >= 1);
        }
    }

    #[test]
    fn a_dump_may_outgrow_its_hint_by_a_fifth() {
        let s3 = PartSizing::s3();
        let hint = 500 * GIB;
        let plan = s3.plan(Some(hint));
        assert!(plan.max_object_size.unwrap() >= hint + hint / 5);
    }

    #[test]
    fn the_largest_s3_object_fits() {
        // 5 TiB is S3's object size limit: 10,000 parts of at most 5 GiB cover it.
        let plan = PartSizing::s3().plan(Some(5 * 1024 * GIB));
        assert!(plan.part_size <= 5 * GIB);
        assert!(plan.max_object_size.unwrap() >= 5 * 1024 * GIB);
        assert_eq!(
            plan.concurrency, 1,
            "huge parts: one in flight keeps memory bounded"
        );
    }

    #[test]
    fn without_a_hint_the_default_applies() {
        let plan = PartSizing::s3().plan(None);
        assert_eq!(plan.part_size, 32 * MIB);
        assert_eq!(plan.concurrency, 4);
        assert_eq!(plan.max_object_size, Some(320_000 * MIB));
    }

    #[test]
    fn small_hints_use_small_parts() {
        assert_eq!(PartSizing::s3().plan(Some(1000)).part_size, 8 * MIB);
        assert_eq!(PartSizing::azure().plan(Some(1000)).part_size, 8 * MIB);
    }

    #[test]
    fn memory_stays_within_budget() {
        let plan = PartSizing::s3().plan(Some(3 * 1024 * GIB));
        assert!(plan.part_size * plan.concurrency as u64 <= 256 * MIB || plan.concurrency == 1);
    }

    #[test]
    fn sequential_has_no_part_limit() {
        let plan = PartSizing::sequential().plan(Some(10 * 1024 * GIB));
        assert_eq!(plan.part_size, 8 * MIB);
        assert_eq!(plan.concurrency, 1);
        assert_eq!(plan.max_object_size, None);
    }
}
