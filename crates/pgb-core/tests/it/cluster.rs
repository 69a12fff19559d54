//! Backups of a whole server through the orchestration, with fake dumps: one manifest for the
//! globals and every database, committed only when every artifact succeeded.

use std::sync::Arc;

use async_trait::async_trait;
use pgb_core::{
    ArtifactKind, BackupOptions, ClusterDumper, DumpError, Dumper, Error, ErrorClass,
    MemoryStorage, NoProgress, PreparedCluster, Repository, Storage,
};
use pgb_testkit::{FakeDumper, FakeOutcome};

const KIB: u64 = 1024;

/// A server of fake databases: (name, dump) pairs, plus the names still on the server.
#[derive(Debug)]
struct FakeCluster {
    databases: Vec<(String, FakeDumper)>,
    server: Vec<String>,
    role_passwords: bool,
    /// The include and exclude globs the backup records, when made with a selection.
    selection: Option<(Vec<String>, Vec<String>)>,
}

impl FakeCluster {
    fn new(dbs: &[(&str, FakeOutcome)]) -> Self {
        Self {
            databases: dbs
                .iter()
                .map(|(n, o)| ((*n).to_owned(), FakeDumper::new(300 * KIB, *o)))
                .collect(),
            server: dbs.iter().map(|(n, _)| (*n).to_owned()).collect(),
            role_passwords: false,
            selection: None,
        }
    }
}

#[async_trait]
impl ClusterDumper for FakeCluster {
    async fn prepare(&self) -> Result<PreparedCluster, DumpError> {
        let globals = FakeDumper::new(2 * KIB, FakeOutcome::Succeed)
            .prepare()
            .await?;
        let mut dbs = Vec::new();
        for (n, d) in &self.databases {
            dbs.push((n.clone(), d.prepare().await?));
        }
        let prepared = PreparedCluster::new(globals, dbs, self.server.clone())
            .with_role_passwords(self.role_passwords);
        Ok(match &self.selection {
            Some((include, exclude)) => prepared.with_selection(include.clone(), exclude.clone()),
            None => prepared,
        })
    }
}

async fn object_keys(storage: &dyn Storage) -> Vec<String> {
    storage
        .list(None)
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.key.to_string())
        .filter(|k| k.starts_with("backups/"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_database_and_the_globals_commit_as_one_backup_that_verifies() {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let repo = Repository::new(Arc::clone(&storage));
    let cluster = FakeCluster::new(&[
        ("app", FakeOutcome::Succeed),
        ("shop", FakeOutcome::Succeed),
    ]);
    let done = repo
        .backup_cluster_until(
            &cluster,
            &BackupOptions::default(),
            &NoProgress,
            std::future::pending(),
        )
        .await
        .expect("backup");
    let m = &done.backup.manifest;
    assert!(m.is_cluster());
    assert_eq!(m.database, "*");
    assert!(m.set.ends_with("/*"), "{}", m.set);
    let kinds: Vec<(ArtifactKind, &str)> = m
        .artifacts
        .iter()
        .map(|a| (a.kind, a.name.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (ArtifactKind::Globals, "globals"),
            (ArtifactKind::Dump, "app"),
            (ArtifactKind::Dump, "shop")
        ]
    );
    assert_eq!(m.cluster.as_ref().unwrap().databases, ["app", "shop"]);
    assert!(m.dump_of("shop").is_some() && m.dump_of("nope").is_none());
    let listed = repo.list().await.unwrap();
    assert_eq!(listed.backups.len(), 1);
    let report = repo.verify(m, None, &NoProgress).await.expect("verify");
    assert_eq!(report.artifacts, 3);
    assert!(done.gone.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_database_leaves_no_backup_and_no_objects() {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let repo = Repository::new(Arc::clone(&storage));
    let cluster = FakeCluster::new(&[
        ("app", FakeOutcome::Succeed),
        ("shop", FakeOutcome::FailAfter(100 * KIB)),
        ("zoo", FakeOutcome::Succeed),
    ]);
    let err = repo
        .backup_cluster_until(
            &cluster,
            &BackupOptions::default(),
            &NoProgress,
            std::future::pending(),
        )
        .await
        .expect_err("a failed database fails the backup");
    assert!(
        err.to_string().contains("shop"),
        "names the database: {err}"
    );
    assert!(
        cluster.databases[1].1.was_aborted(),
        "the failed dump was reaped"
    );
    let listed = repo.list().await.unwrap();
    assert!(listed.backups.is_empty() && listed.leftovers.is_empty());
    assert_eq!(object_keys(storage.as_ref()).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_passwords_are_refused_in_an_unencrypted_backup() {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let repo = Repository::new(Arc::clone(&storage));
    let mut cluster = FakeCluster::new(&[("app", FakeOutcome::Succeed)]);
    cluster.role_passwords = true;
    let err = repo
        .backup_cluster_until(
            &cluster,
            &BackupOptions::default(),
            &NoProgress,
            std::future::pending(),
        )
        .await
        .expect_err("refused");
    assert!(matches!(err, Error::Invalid(_)), "{err}");
    assert_eq!(err.class(), ErrorClass::Invalid);
    assert_eq!(object_keys(storage.as_ref()).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_gone_since_the_previous_backup_is_reported() {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let repo = Repository::new(Arc::clone(&storage));
    let run = |c: FakeCluster| {
        let repo = repo.clone();
        async move {
            repo.backup_cluster_until(
                &c,
                &BackupOptions::default(),
                &NoProgress,
                std::future::pending(),
            )
            .await
            .expect("backup")
        }
    };
    run(FakeCluster::new(&[
        ("app", FakeOutcome::Succeed),
        ("old", FakeOutcome::Succeed),
    ]))
    .await;
    // `excluded` is on the server but no longer selected: not gone.
    let mut c = FakeCluster::new(&[("app", FakeOutcome::Succeed)]);
    c.server.push("excluded".to_owned());
    let second = run(c).await;
    assert_eq!(second.gone, ["old"]);
    // Single-database restore of a cluster backup must name a database.
    let err = repo
        .restore(
            &second.backup.manifest,
            &pgb_testkit::RecordingRestorer::new(),
            &pgb_core::RestoreOptions::new(),
            &NoProgress,
        )
        .await
        .expect_err("must choose");
    assert_eq!(err.class(), ErrorClass::Invalid, "{err}");
}

/// A whole-server backup made with a selection is its own retention set: pruning the full
/// server's backups to one never removes the selected ones, and the reverse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selected_whole_server_backup_is_a_set_of_its_own_for_prune() {
    use pgb_core::PruneOptions;
    use pgb_core::retention::Policy;
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let repo = Repository::new(Arc::clone(&storage));
    let backup = |selected: bool| {
        let repo = repo.clone();
        async move {
            let cluster = FakeCluster {
                selection: selected.then(|| (vec!["shop*".to_owned()], Vec::new())),
                ..FakeCluster::new(&[("shop", FakeOutcome::Succeed)])
            };
            repo.backup_cluster_until(
                &cluster,
                &BackupOptions::default(),
                &NoProgress,
                std::future::pending(),
            )
            .await
            .expect("backup")
            .backup
            .manifest
        }
    };
    let mut full = Vec::new();
    let mut selected = Vec::new();
    for _ in 0..3 {
        full.push(backup(false).await);
        selected.push(backup(true).await);
    }
    assert_eq!(full[0].set, selected[0].set, "one server");
    assert_ne!(full[0].retention_set(), selected[0].retention_set());
    assert!(selected[0].retention_set().ends_with("include=shop*"));
    let report = repo
        .prune(
            &Policy::default().with_keep_last(1),
            &PruneOptions::default().with_sets([full[0].retention_set()]),
        )
        .await
        .unwrap();
    assert_eq!(report.deleted(), 2, "two of the full server's three");
    let left: Vec<String> = repo
        .list()
        .await
        .unwrap()
        .backups
        .iter()
        .map(|m| m.id.to_string())
        .collect();
    assert_eq!(left.len(), 4, "{left:?}");
    for m in &selected {
        assert!(
            left.contains(&m.id.to_string()),
            "the selected set is untouched"
        );
    }
}
