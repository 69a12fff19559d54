//! The proxy itself, against a small HTTP/1.1 upstream written here (it records every request
//! it receives, so the tests can tell a forwarded request from one that never left the proxy).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgb_faultproxy::{Fault, FaultProxy, Match, RandomFaults, Rule, Store};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What the upstream received: (method, target, body).
type Seen = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

const BIG: usize = 10_000;

fn big_body() -> Vec<u8> {
    (0..BIG).map(|i| (i % 251) as u8).collect()
}

async fn upstream() -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let authority = listener.local_addr().unwrap().to_string();
    let seen: Seen = Arc::default();
    let (s, auth) = (Arc::clone(&seen), authority.clone());
    tokio::spawn(async move {
        loop {
            let (conn, _) = listener.accept().await.unwrap();
            let (s, auth) = (Arc::clone(&s), auth.clone());
            tokio::spawn(async move {
                let mut r = BufReader::new(conn);
                let mut first = String::new();
                r.read_line(&mut first).await.unwrap();
                let mut parts = first.split_whitespace();
                let method = parts.next().unwrap().to_owned();
                let target = parts.next().unwrap().to_owned();
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    r.read_line(&mut line).await.unwrap();
                    if line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    assert!(!lower.starts_with("host:") || lower.contains(&auth));
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).await.unwrap();
                s.lock()
                    .unwrap()
                    .push((method.clone(), target.clone(), body.clone()));
                let w = r.get_mut();
                match target.as_str() {
                    "/big" => {
                        let b = big_body();
                        w.write_all(
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", b.len())
                                .as_bytes(),
                        )
                        .await
                        .unwrap();
                        w.write_all(&b).await.unwrap();
                    }
                    "/chunked" => {
                        w.write_all(
                            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                              5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                        )
                        .await
                        .unwrap();
                    }
                    "/session" => {
                        w.write_all(
                            format!(
                                "HTTP/1.1 200 OK\r\nLocation: http://{auth}/upload?id=7\r\n\
                                 Content-Length: 0\r\n\r\n"
                            )
                            .as_bytes(),
                        )
                        .await
                        .unwrap();
                    }
                    _ => {
                        let b = format!("ok {method} {target} {}", body.len());
                        w.write_all(
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{b}", b.len())
                                .as_bytes(),
                        )
                        .await
                        .unwrap();
                    }
                }
                let _ = w.shutdown().await;
            });
        }
    });
    (format!("http://{authority}"), seen)
}

/// What a raw client got: the bytes before the connection ended, and whether it was reset.
struct Got {
    bytes: Vec<u8>,
    reset: bool,
}

impl Got {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    fn status(&self) -> Option<u16> {
        self.text().split_whitespace().nth(1)?.parse().ok()
    }

    fn body(&self) -> &[u8] {
        let at = self
            .bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(self.bytes.len(), |i| i + 4);
        &self.bytes[at..]
    }
}

async fn send(proxy: &FaultProxy, method: &str, target: &str, body: &[u8]) -> Got {
    send_with(proxy, method, target, body, "").await
}

async fn send_with(
    proxy: &FaultProxy,
    method: &str,
    target: &str,
    body: &[u8],
    extra: &str,
) -> Got {
    let mut c = TcpStream::connect(proxy.authority()).await.unwrap();
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n{extra}\r\n",
        proxy.authority(),
        body.len()
    );
    // A reset can come while the request is still being sent.
    if c.write_all(head.as_bytes()).await.is_err() || c.write_all(body).await.is_err() {
        return Got {
            bytes: Vec::new(),
            reset: true,
        };
    }
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let reset = loop {
        match tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf)).await {
            Ok(Ok(0)) => break false,
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => break e.kind() == std::io::ErrorKind::ConnectionReset,
            Err(_) => panic!("no answer within 10 s"),
        }
    };
    Got { bytes, reset }
}

/// The log is written when the proxy finishes an exchange, a moment after the client saw it end.
async fn settled_log(proxy: &FaultProxy, n: usize) -> Vec<pgb_faultproxy::Exchange> {
    for _ in 0..200 {
        let log = proxy.log();
        if log.len() >= n {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("log has {} entries, want {n}", proxy.log().len());
}

#[tokio::test]
async fn forwards_requests_and_answers_unchanged() {
    let (up, seen) = upstream().await;
    let proxy = FaultProxy::start(&up, Store::S3).unwrap();
    let got = send(&proxy, "PUT", "/b/key?x=1", b"payload").await;
    assert_eq!(got.status(), Some(200));
    assert_eq!(got.body(), b"ok PUT /b/key?x=1 7");
    let got = send_with(&proxy, "GET", "/big", b"", "Range: bytes=0-\r\n").await;
    assert_eq!(got.body(), big_body().as_slice());
    let got = send(&proxy, "GET", "/chunked", b"").await;
    assert!(got.body().ends_with(b"0\r\n\r\n"), "{}", got.text());
    assert!(got.text().contains("hello"));
    assert_eq!(seen.lock().unwrap().len(), 3);
    assert_eq!(seen.lock().unwrap()[0].2, b"payload");
    let log = settled_log(&proxy, 3).await;
    assert_eq!(log[0].method, "PUT");
    assert_eq!(log[0].target, "/b/key?x=1");
    assert_eq!(log[1].range.as_deref(), Some("bytes=0-"));
    assert_eq!(log[1].body_bytes, BIG as u64);
    assert!(
        log.iter()
            .all(|e| e.status == Some(200) && e.fault.is_none() && e.forwarded)
    );
}

#[tokio::test]
async fn made_up_errors_carry_each_stores_own_body_and_never_reach_the_store() {
    let (up, seen) = upstream().await;
    for (store, status, want) in [
        (Store::S3, 503, "<Code>SlowDown</Code>"),
        (Store::S3, 500, "<Code>InternalError</Code>"),
        (Store::Azure, 503, "<Code>ServerBusy</Code>"),
        (Store::Gcs, 429, "\"reason\":\"rateLimitExceeded\""),
        (Store::Gcs, 503, "\"code\":503"),
    ] {
        let proxy = FaultProxy::start(&up, store).unwrap();
        proxy.add_rule(Rule::new(Match::any(), Fault::Status(status)));
        let got = send(&proxy, "PUT", "/b/k", b"abc").await;
        assert_eq!(got.status(), Some(status));
        assert!(
            got.text().contains(want),
            "{store:?} {status}: {}",
            got.text()
        );
        if store == Store::Azure {
            assert!(got.text().contains("x-ms-error-code: ServerBusy"));
        }
    }
    assert!(seen.lock().unwrap().is_empty(), "nothing forwarded");
}

#[tokio::test]
async fn rules_fire_on_chosen_occurrences_of_matching_requests_only() {
    let (up, seen) = upstream().await;
    let proxy = FaultProxy::start(&up, Store::S3).unwrap();
    proxy.add_rule(
        Rule::new(
            Match::method("PUT").target_contains("manifest.json"),
            Fault::Status(500),
        )
        .nth(1),
    );
    proxy.add_rule(Rule::new(Match::method("DELETE"), Fault::Status(503)).first(2));
    let mut statuses = Vec::new();
    for (m, t) in [
        ("PUT", "/b/id/manifest.json"),
        ("GET", "/b/id/manifest.json"),
        ("PUT", "/b/id/data"),
        ("PUT", "/b/id/manifest.json"),
        ("PUT", "/b/id/manifest.json"),
        ("DELETE", "/b/x"),
        ("DELETE", "/b/x"),
        ("DELETE", "/b/x"),
    ] {
        statuses.push(send(&proxy, m, t, b"").await.status().unwrap());
    }
    assert_eq!(statuses, [200, 200, 200, 500, 200, 503, 503, 200]);
    assert_eq!(seen.lock().unwrap().len(), 5);
    let log = settled_log(&proxy, 8).await;
    let faulted: Vec<_> = log
        .iter()
        .filter(|e| e.fault.is_some())
        .map(|e| e.seq)
        .collect();
    assert_eq!(faulted, [3, 5, 6]);
    assert!(!log[3].forwarded && log[4].forwarded);
}

/// GCS resumable uploads: chunk PUTs that do not finish the upload say `bytes a-b/*`, the
/// final one names the total. Header conditions and `except` tell them apart.
#[tokio::test]
async fn header_conditions_and_exceptions_select_requests() {
    let (up, _seen) = upstream().await;
    let proxy = FaultProxy::start(&up, Store::Gcs).unwrap();
    let final_chunk = Match::method("PUT")
        .target_contains("upload_id=")
        .header_lacks("Content-Range", "/*");
    proxy.add_rule(Rule::new(
        Match::any().except(final_chunk),
        Fault::Status(503),
    ));
    let mut statuses = Vec::new();
    for (t, range) in [
        ("/u?upload_id=1", "bytes 0-9/*"),
        ("/u?upload_id=1", "bytes 10-14/15"),
        ("/u?upload_id=1", "bytes */15"),
        ("/o/k", ""),
    ] {
        let extra = if range.is_empty() {
            String::new()
        } else {
            format!("content-range: {range}\r\n")
        };
        statuses.push(
            send_with(&proxy, "PUT", t, b"", &extra)
                .await
                .status()
                .unwrap(),
        );
    }
    assert_eq!(statuses, [503, 200, 200, 503]);
}

#[tokio::test]
async fn reset_before_forwarding_never_reaches_the_store() {
    let (up, seen) = upstream().await;
    let proxy = FaultProxy::start(&up, Store::S3).unwrap();
    proxy.add_rule(Rule::new(Match::any(), Fault::ResetBeforeForward).first(1));
    let got = send(&proxy, "PUT", "/b/k", b"abc").await;
    assert!(got.reset && got.bytes.is_empty(), "{}", got.text());
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(
        send(&proxy, "PUT", "/b/k", b"abc").await.status(),
        Some(200)
    );
    let log = settled_log(&proxy, 2).await;
    assert_eq!(log[0].status, None);
    assert!(!log[0].forwarded);
}

#[tokio::test]
async fn forward_then_reset_applies_the_request_but_loses_the_answer() {
    let (up, seen) = upstream().await;
    let proxy = FaultProxy::start(&up, Store::Azure).unwrap();
    proxy.add_rule(Rule::new(Match::method("PUT"), Fault::ForwardThenReset).first(1));
    let got = send(&proxy, "PUT", "/c/manifest.json", b"{}").await;
    assert!(got.reset && got.bytes.is_empty(), "{}", got.text());
    assert_eq!(seen.lock().unwrap().len(), 1, "the store got it");
    assert_eq!(seen.lock().unwrap()[0].2, b"{}");
    let log = settled_log(&proxy, 1).await;
    assert!(log[0].forwarded);
    assert_eq!(log[0].status, None);
    assert_eq!(log[0].fault, Some(Fault::ForwardThenReset));
}

#[tokio::test]
async fn truncation_cuts_the_body_and_resets() {
    let (up, _) = upstream().await;
    let proxy = FaultProxy::start(&up, Store::S3).unwrap();
    proxy.add_rule(Rule::new(Match::method("GET"), Fault::TruncateBodyPercent(50)).first(1));
    proxy.add_rule(Rule::new(Match::method("GET"), Fault::TruncateBody(100)).nth(1));
    let got = send(&proxy, "GET", "/big", b"").await;
    assert_eq!(got.status(), Some(200));
    assert_eq!(got.body(), &big_body()[..BIG / 2]);
    let got = send(&proxy, "GET", "/big", b"").await;
    assert_eq!(got.body(), &big_body()[..100]);
    // A body shorter than the cut passes whole, and the log shows no fault.
    proxy.add_rule(Rule::new(
        Match::method("GET"),
        Fault::TruncateBody(1 << 20),
    ));
    let got = send(&proxy, "GET", "/big", b"").await;
    assert_eq!(got.body().len(), BIG);
    let log = settled_log(&proxy, 3).await;
    assert_eq!(log[0].body_bytes, (BIG / 2) as u64);
    assert_eq!(log[0].fault, Some(Fault::TruncateBodyPercent(50)));
    assert_eq!(log[1].body_bytes, 100);
    assert_eq!(log[2].fault, None);
}

#[tokio::test]
async fn ok_with_an_error_document_or_empty_body_is_not_forwarded() {
    let (up, seen) = upstream().await;
    let proxy = FaultProxy::start(&up, Store::S3).unwrap();
    proxy.add_rule(
        Rule::new(
            Match::method("POST").target_contains("uploadId="),
            Fault::OkWithErrorDocument,
        )
        .first(1),
    );
    // Rules count every request they match, fired or not: this one's second is the next POST.
    proxy.add_rule(Rule::new(Match::method("POST"), Fault::OkEmpty).nth(1));
    let got = send(&proxy, "POST", "/b/k?uploadId=abc", b"<Complete/>").await;
    assert_eq!(got.status(), Some(200));
    assert!(got.text().contains("<Error><Code>InternalError</Code>"));
    let got = send(&proxy, "POST", "/b/k?uploadId=abc", b"<Complete/>").await;
    assert_eq!(got.status(), Some(200));
    assert!(got.body().is_empty());
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn stall_holds_the_request_without_forwarding() {
    let (up, seen) = upstream().await;
    let proxy = FaultProxy::start(&up, Store::Gcs).unwrap();
    proxy.add_rule(Rule::new(
        Match::any(),
        Fault::Stall(Duration::from_millis(300)),
    ));
    let t = std::time::Instant::now();
    let got = send(&proxy, "GET", "/b/k", b"").await;
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert!(got.bytes.is_empty());
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn locations_naming_the_store_are_rewritten_to_the_proxy() {
    let (up, _) = upstream().await;
    let proxy = FaultProxy::start(&up, Store::Gcs).unwrap();
    let got = send(&proxy, "POST", "/session", b"").await;
    let want = format!("Location: http://{}/upload?id=7", proxy.authority());
    assert!(got.text().contains(&want), "{}", got.text());
}

#[tokio::test]
async fn random_faults_are_deterministic_by_seed_and_near_their_rate() {
    let (up, _) = upstream().await;
    let mut runs = Vec::new();
    for seed in [7, 7, 8] {
        let proxy = FaultProxy::start(&up, Store::S3).unwrap();
        proxy.set_random(Some(
            RandomFaults::transient(10, seed).only(Match::any().target_lacks("skip")),
        ));
        for i in 0..300 {
            // Each path twice: the occurrence counts in the choice.
            send(
                &proxy,
                "PUT",
                &format!("/b/part?partNumber={}", i / 2),
                b"x",
            )
            .await;
        }
        send(&proxy, "PUT", "/b/skip", b"x").await;
        let log = settled_log(&proxy, 301).await;
        assert!(log[300].fault.is_none());
        let faults: Vec<(u64, Fault)> = log
            .iter()
            .filter_map(|e| e.fault.clone().map(|f| (e.seq, f)))
            .collect();
        // Truncations are only drawn for GETs.
        assert!(
            faults
                .iter()
                .all(|(_, f)| !matches!(f, Fault::TruncateBodyPercent(_)))
        );
        runs.push(faults);
    }
    assert_eq!(runs[0], runs[1], "same seed, same faults");
    assert_ne!(runs[0], runs[2], "another seed, other faults");
    for r in &runs {
        assert!(
            (10..=55).contains(&r.len()),
            "about one in ten of 300: {}",
            r.len()
        );
    }
}
