//! The storage conformance suite: the [`Storage`] contract, case by case.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use pgb_core::{ObjectKey, Storage, StorageError, StorageErrorKind, StorageExt, WriteOptions};

/// The context of one case: the store and a random root no other run uses.
#[derive(Debug)]
pub struct Ctx {
    /// The store under test.
    pub storage: Arc<dyn Storage>,
    /// A fresh root for this case.
    pub root: ObjectKey,
}

impl Ctx {
    /// A context with a random root `pgb-conformance/<random>`.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        let mut rnd = [0u8; 8];
        getrandom::fill(&mut rnd).expect("OS random numbers");
        let hex: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
        let root = ObjectKey::parse(&format!("pgb-conformance/{hex}")).expect("valid key");
        Self { storage, root }
    }

    /// A key under this case's root.
    pub fn key(&self, rel: &str) -> ObjectKey {
        self.root.join(rel).expect("valid test key")
    }

    /// Best-effort removal of everything under the root (never anything else).
    pub async fn cleanup(&self) {
        if let Ok(list) = self.storage.list(Some(&self.root)).await {
            for m in list {
                let _ = self.storage.delete(&m.key).await;
            }
        }
    }

    async fn keys_under(&self, prefix: &str) -> Vec<String> {
        let mut keys: Vec<String> = self
            .storage
            .list(Some(&self.key(prefix)))
            .await
            .expect("list")
            .into_iter()
            .map(|m| {
                m.key
                    .strip_prefix(&self.root)
                    .expect("under root")
                    .to_owned()
            })
            .collect();
        keys.sort();
        keys
    }

    async fn all_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .storage
            .list(Some(&self.root))
            .await
            .expect("list")
            .into_iter()
            .map(|m| {
                m.key
                    .strip_prefix(&self.root)
                    .expect("under root")
                    .to_owned()
            })
            .collect();
        keys.sort();
        keys
    }
}

/// Deterministic test data.
fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2_654_435_761)
                .rotate_left(u32::from(seed) % 31) as u8
        })
        .collect()
}

async fn write_chunks(cx: &Ctx, key: &ObjectKey, body: &[u8], chunk: usize) {
    let mut w = cx
        .storage
        .writer(
            key,
            WriteOptions::default().with_size_hint(body.len() as u64),
        )
        .await
        .expect("open writer");
    for c in body.chunks(chunk.max(1)) {
        w.write(Bytes::copy_from_slice(c)).await.expect("write");
    }
    let meta = w.finish().await.expect("finish");
    assert_eq!(
        meta.size,
        body.len() as u64,
        "finish reports the object's size"
    );
}

fn assert_not_found<T: std::fmt::Debug>(res: Result<T, StorageError>, what: &str) {
    match res {
        Err(e) => assert_eq!(e.kind(), StorageErrorKind::NotFound, "{what}: {e}"),
        Ok(v) => panic!("{what}: expected NotFound, got {v:?}"),
    }
}

/// Every case of the suite, as plain async functions (the macro wraps each in a test).
pub mod cases {
    use super::*;

    /// A multi-chunk write reads back byte for byte.
    pub async fn round_trip_many_chunks(cx: &Ctx) {
        let body = data(3 * 1024 * 1024 + 17, 1);
        let key = cx.key("round/trip.bin");
        write_chunks(cx, &key, &body, 64 * 1024 + 3).await;
        assert_eq!(cx.storage.get_bytes(&key).await.expect("read"), body);
    }

    /// An empty object exists and reads back empty.
    pub async fn zero_length_object(cx: &Ctx) {
        let key = cx.key("empty");
        write_chunks(cx, &key, &[], 1).await;
        assert_eq!(cx.storage.head(&key).await.expect("head").size, 0);
        assert!(cx.storage.get_bytes(&key).await.expect("read").is_empty());
    }

    /// An object of more than three multipart parts (3 × 8 MiB + 1) round-trips.
    pub async fn object_larger_than_three_parts(cx: &Ctx) {
        let body = data(3 * 8 * 1024 * 1024 + 1, 2);
        let key = cx.key("large.bin");
        write_chunks(cx, &key, &body, 1024 * 1024).await;
        assert_eq!(
            cx.storage.head(&key).await.expect("head").size,
            body.len() as u64
        );
        let back = cx.storage.get_bytes(&key).await.expect("read");
        assert!(back == body, "large object differs after round trip");
    }

    /// Range reads return exactly the requested bytes.
    pub async fn range_read(cx: &Ctx) {
        let body = data(100_000, 3);
        let key = cx.key("range.bin");
        write_chunks(cx, &key, &body, 10_000).await;
        for range in [0..1, 10..20_000, 99_999..100_000, 4096..65_536] {
            let mut s = cx
                .storage
                .reader(&key, Some(range.clone()))
                .await
                .expect("reader");
            let mut got = Vec::new();
            while let Some(c) = futures_util::StreamExt::next(&mut s).await {
                got.extend_from_slice(&c.expect("chunk"));
            }
            assert_eq!(
                got,
                body[range.start as usize..range.end as usize],
                "range {range:?}"
            );
        }
    }

    /// `head` of a missing key is `NotFound`.
    pub async fn head_of_missing_key_is_not_found(cx: &Ctx) {
        assert_not_found(cx.storage.head(&cx.key("missing")).await, "head");
    }

    /// Reading a missing key is `NotFound`.
    pub async fn read_of_missing_key_is_not_found(cx: &Ctx) {
        assert_not_found(
            cx.storage
                .reader(&cx.key("missing"), None)
                .await
                .map(|_| ()),
            "read",
        );
    }

    /// Deleting a missing key is `Ok`.
    pub async fn delete_of_missing_key_is_ok(cx: &Ctx) {
        cx.storage
            .delete(&cx.key("never/existed"))
            .await
            .expect("delete of a missing key");
    }

    /// `list` of `a/b` sees `a/b/...`, never `a/bc`.
    pub async fn list_is_scoped_by_segment(cx: &Ctx) {
        for k in ["a/b/1", "a/b/c/2", "a/bc/3", "a/b.txt", "z"] {
            cx.storage
                .put(
                    &cx.key(k),
                    Bytes::from_static(b"x"),
                    WriteOptions::default(),
                )
                .await
                .expect("put");
        }
        assert_eq!(cx.keys_under("a/b").await, ["a/b/1", "a/b/c/2"]);
        assert_eq!(
            cx.keys_under("a").await,
            ["a/b.txt", "a/b/1", "a/b/c/2", "a/bc/3"]
        );
    }

    /// Listing a prefix nothing lives under is an empty list.
    pub async fn list_of_missing_prefix_is_empty(cx: &Ctx) {
        assert!(cx.keys_under("nothing/here").await.is_empty());
    }

    /// A deleted object disappears from `list` and `head`.
    pub async fn list_after_delete(cx: &Ctx) {
        for k in ["d/1", "d/2"] {
            cx.storage
                .put(
                    &cx.key(k),
                    Bytes::from_static(b"x"),
                    WriteOptions::default(),
                )
                .await
                .expect("put");
        }
        cx.storage.delete(&cx.key("d/1")).await.expect("delete");
        assert_eq!(cx.keys_under("d").await, ["d/2"]);
        assert_not_found(cx.storage.head(&cx.key("d/1")).await, "head after delete");
    }

    /// Keys with spaces and non-ASCII characters round-trip through write, list and read.
    pub async fn odd_keys_round_trip(cx: &Ctx) {
        let key = cx.key("odd/with space/ünïcødé-日本.json");
        cx.storage
            .put(&key, Bytes::from_static(b"{}"), WriteOptions::default())
            .await
            .expect("put");
        assert_eq!(
            cx.keys_under("odd").await,
            ["odd/with space/ünïcødé-日本.json"]
        );
        assert_eq!(&cx.storage.get_bytes(&key).await.expect("read")[..], b"{}");
    }

    /// A create-only write refuses an existing key and leaves it unchanged, or, on a backend
    /// that declares it cannot enforce create-only, the case says so loudly.
    pub async fn create_new_refuses_to_overwrite(cx: &Ctx) {
        let key = cx.key("manifest.json");
        cx.storage
            .put(
                &key,
                Bytes::from_static(b"first"),
                WriteOptions::create_new(),
            )
            .await
            .expect("first create");
        if !cx.storage.info().capabilities.create_new {
            eprintln!(
                "NOT PROVEN: {} declares create_new = false; create-only cannot be checked here",
                cx.storage.info().location
            );
            return;
        }
        let err = cx
            .storage
            .put(
                &key,
                Bytes::from_static(b"second"),
                WriteOptions::create_new(),
            )
            .await
            .expect_err("a second create-only write must fail");
        assert_eq!(err.kind(), StorageErrorKind::AlreadyExists, "{err}");
        assert_eq!(
            &cx.storage.get_bytes(&key).await.expect("read")[..],
            b"first"
        );
    }

    /// An overwrite replaces the whole object.
    pub async fn overwrite_replaces(cx: &Ctx) {
        let key = cx.key("over");
        cx.storage
            .put(
                &key,
                Bytes::from_static(b"longer content"),
                WriteOptions::default(),
            )
            .await
            .expect("put");
        cx.storage
            .put(&key, Bytes::from_static(b"short"), WriteOptions::default())
            .await
            .expect("put");
        assert_eq!(
            &cx.storage.get_bytes(&key).await.expect("read")[..],
            b"short"
        );
    }

    /// After `abort`, nothing is visible under the key or in listings.
    pub async fn aborted_write_is_invisible(cx: &Ctx) {
        let key = cx.key("aborted/obj");
        let mut w = cx
            .storage
            .writer(&key, WriteOptions::default())
            .await
            .expect("writer");
        w.write(Bytes::from(data(2 * 1024 * 1024, 4)))
            .await
            .expect("write");
        w.abort().await.expect("abort");
        assert_not_found(cx.storage.head(&key).await, "head after abort");
        assert!(cx.all_keys().await.is_empty(), "nothing listed after abort");
    }

    /// Dropping a writer without `finish` leaves nothing visible (cancellation safety).
    pub async fn dropped_writer_is_invisible(cx: &Ctx) {
        let key = cx.key("dropped/obj");
        {
            let mut w = cx
                .storage
                .writer(&key, WriteOptions::default())
                .await
                .expect("writer");
            w.write(Bytes::from(data(2 * 1024 * 1024, 5)))
                .await
                .expect("write");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert_not_found(cx.storage.head(&key).await, "head after drop");
        assert!(cx.all_keys().await.is_empty(), "nothing listed after drop");
    }

    /// A stream that fails midway leaves nothing visible.
    pub async fn failing_input_stream_leaves_nothing(cx: &Ctx) {
        let key = cx.key("failing/obj");
        let items: Vec<Result<Bytes, StorageError>> = vec![
            Ok(Bytes::from(data(1024 * 1024, 6))),
            Ok(Bytes::from(data(1024 * 1024, 7))),
            Err(StorageError::new(
                StorageErrorKind::Other,
                "read",
                "source",
                "source failed midway",
            )),
        ];
        let res = cx
            .storage
            .put_stream(
                &key,
                Box::pin(futures_util::stream::iter(items)),
                WriteOptions::default(),
            )
            .await;
        assert!(res.is_err(), "put_stream must report the failure");
        assert_not_found(cx.storage.head(&key).await, "head after failed stream");
        assert!(
            cx.all_keys().await.is_empty(),
            "nothing listed after failed stream"
        );
    }

    /// Writers to different keys may run at once.
    pub async fn concurrent_writers_to_different_keys(cx: &Ctx) {
        let futs = (0..4u8).map(|i| {
            let key = cx.key(&format!("conc/{i}"));
            let body = data(300_000, i);
            async move {
                write_chunks(cx, &key, &body, 50_000).await;
                (key, body)
            }
        });
        for (key, body) in futures_util::future::join_all(futs).await {
            assert_eq!(cx.storage.get_bytes(&key).await.expect("read"), body);
        }
    }

    /// `head` and `list` report the stored size.
    pub async fn head_reports_size(cx: &Ctx) {
        let key = cx.key("sized");
        cx.storage
            .put(&key, Bytes::from(data(12_345, 9)), WriteOptions::default())
            .await
            .expect("put");
        assert_eq!(cx.storage.head(&key).await.expect("head").size, 12_345);
        let listed = cx.storage.list(Some(&cx.root)).await.expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].size, 12_345);
    }

    /// `list_stream` of a prefix with more objects than one listing page (1,000 on most
    /// stores) yields each of them exactly once, in no promised order, and nothing beside
    /// the prefix; `list` returns the same objects; a stream dropped after its first object
    /// stops cleanly.
    pub async fn list_stream_yields_many_objects_once(cx: &Ctx) {
        const MANY: usize = 1_100;
        let put = |rel: String| async move {
            cx.storage
                .put(
                    &cx.key(&rel),
                    Bytes::from_static(b"x"),
                    WriteOptions::default(),
                )
                .await
                .expect("put");
        };
        futures_util::stream::iter((0..MANY).map(|i| format!("many/{:02}/{i:04}", i % 37)))
            .for_each_concurrent(32, put)
            .await;
        put("manyx/outside".to_owned()).await;
        let prefix = cx.key("many");

        let mut streamed = Vec::new();
        let mut stream = cx.storage.list_stream(Some(&prefix));
        while let Some(meta) = stream.next().await {
            let meta = meta.expect("listed");
            assert!(meta.key.starts_with(&prefix), "{} is outside", meta.key);
            assert_eq!(meta.size, 1);
            streamed.push(meta.key.to_string());
        }
        drop(stream);
        let count = streamed.len();
        streamed.sort();
        streamed.dedup();
        assert_eq!(count, MANY, "every object once");
        assert_eq!(streamed.len(), MANY, "no object twice");

        let mut listed: Vec<String> = cx
            .storage
            .list(Some(&prefix))
            .await
            .expect("list")
            .into_iter()
            .map(|m| m.key.to_string())
            .collect();
        listed.sort();
        assert_eq!(listed, streamed, "list is the stream collected");

        let mut first = cx.storage.list_stream(Some(&prefix));
        let one = first.next().await.expect("an object").expect("listed");
        assert!(one.key.starts_with(&prefix));
        drop(first);

        futures_util::stream::iter(listed)
            .for_each_concurrent(32, |k| async move {
                let key = ObjectKey::parse(&k).expect("listed key");
                cx.storage.delete(&key).await.expect("delete");
            })
            .await;
    }
}
