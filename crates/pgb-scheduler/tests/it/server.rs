//! `/healthz` and `/metrics` through a real HTTP client.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use chrono_tz::Tz;
use croner::Cron;
use pgb_scheduler::{
    CancellationToken, Clock, Endpoints, JobRunner, ScheduledJob, Scheduler, Trigger,
};

struct Ok_;

#[async_trait]
impl JobRunner for Ok_ {
    async fn run(&self, _: &str, _: Trigger, _: CancellationToken) -> Result<(), String> {
        Ok(())
    }
}

#[tokio::test]
async fn healthz_is_200_when_fresh_503_when_stale_and_metrics_are_served() {
    let now = Utc::now();
    let fresh = ScheduledJob {
        name: "shop".into(),
        schedule: Cron::from_str("0 3 * * *").unwrap(),
        zone: Tz::UTC,
        jitter: Duration::ZERO,
        catch_up: false,
        max_age: Some(Duration::from_secs(3600)),
        last_success: Some(now - chrono::Duration::minutes(10)),
    };
    let sched = Scheduler::new(vec![fresh], Arc::new(Ok_));
    let health = sched.health();
    let cancel = CancellationToken::new();
    let loop_task = tokio::spawn(sched.run(cancel.clone()));

    let listener = pgb_scheduler::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let endpoints = Endpoints {
        health: health.clone(),
        metrics: Arc::new(|| {
            "# TYPE pgb_backup_last_success_timestamp_seconds gauge\npgb_backup_last_success_timestamp_seconds{job=\"shop\"} 1.78e9\n".to_owned()
        }),
        clock: Clock::system(),
        status_page: None,
    };
    let server = tokio::spawn(pgb_scheduler::serve(listener, endpoints, cancel.clone()));
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");

    // Wait for the scheduler's first tick.
    let mut status = 0;
    for _ in 0..50 {
        let r = client.get(format!("{base}/healthz")).send().await.unwrap();
        status = r.status().as_u16();
        if status == 200 {
            let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
            assert_eq!(body["healthy"], true);
            assert_eq!(body["jobs"]["shop"]["fresh"], true);
            assert_eq!(body["jobs"]["shop"]["max_age_seconds"], 3600);
            assert!(body["jobs"]["shop"]["next_run"].is_string());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);

    let r = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("pgb_backup_last_success_timestamp_seconds{job=\"shop\"}")
    );

    let r = client.get(format!("{base}/nope")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    // Without a status page, `/` is not found either.
    let r = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);

    // Make the job stale: its newest success is now older than its max age.
    // (As when the binary refreshes it from the repository.)
    health.set_last_success("shop", now - chrono::Duration::hours(2));
    let r = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 503);
    let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["healthy"], false);
    assert_eq!(body["alive"], true);
    assert_eq!(body["jobs"]["shop"]["fresh"], false);

    cancel.cancel();
    loop_task.await.unwrap();
    server.await.unwrap();
    assert!(
        client.get(format!("{base}/healthz")).send().await.is_err(),
        "server stopped"
    );
}

/// Open descriptors of this process (Linux), to see how many connections the server holds.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_neither_lock_out_healthz_nor_stay_open() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    const HALF_OPEN: usize = 500;
    // Short so the test is quick, long enough that a loaded machine answers the health check
    // well before it.
    let options = pgb_scheduler::ServeOptions {
        header_timeout: Duration::from_secs(4),
        // Longer than the test: only the header timeout may close the half-sent requests.
        request_timeout: Duration::from_secs(600),
        max_connections: 64,
    };
    let listener = pgb_scheduler::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let endpoints = Endpoints {
        health: Scheduler::new(vec![], Arc::new(Ok_)).health(),
        metrics: Arc::new(String::new),
        clock: Clock::system(),
        status_page: None,
    };
    let cancel = CancellationToken::new();
    let server = tokio::spawn(pgb_scheduler::serve_with(
        listener,
        endpoints,
        options,
        cancel.clone(),
    ));
    let fds_before = open_fds();

    // A slowloris: connections that send part of a request line and then nothing.
    let mut half_open = Vec::with_capacity(HALF_OPEN);
    for _ in 0..HALF_OPEN {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /heal").await.unwrap();
        half_open.push(s);
    }
    let sent = tokio::time::Instant::now();

    // A health check on a fresh connection is still answered, before any header timeout.
    let client = reqwest::Client::builder()
        .timeout(options.header_timeout)
        .build()
        .unwrap();
    let r = client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .expect("/healthz answered while 500 half-sent requests were open");
    // No job has run and the scheduler is not ticking: the health check says so.
    assert_eq!(r.status().as_u16(), 503);
    let body: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(body["alive"], false);
    assert!(
        sent.elapsed() < options.header_timeout,
        "answered only after {:?}, when the header timeout may have freed connections",
        sent.elapsed()
    );
    // The server accepted every connection before this one (in order) but holds at most its
    // limit: 500 client ends here, at most 64 server ends (plus the client's pool and slack).
    let held = open_fds().saturating_sub(fds_before + HALF_OPEN);
    assert!(
        held <= options.max_connections + 16,
        "the server holds {held} connections, more than its limit"
    );

    // Every half-sent request is closed by the server: the oldest to make room, the rest
    // after the header timeout. (Generous bound: nothing is closed without the timeout.)
    let deadline = sent + options.header_timeout + Duration::from_secs(30);
    for (i, mut s) in half_open.into_iter().enumerate() {
        let mut buf = [0u8; 1024];
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => {
                // hyper may answer a timed-out request with an error status before closing.
                let mut rest = Vec::new();
                let closed = tokio::time::timeout_at(deadline, s.read_to_end(&mut rest)).await;
                assert!(
                    matches!(closed, Ok(Ok(_)) | Ok(Err(_))),
                    "connection {i} sent {n} bytes and stayed open"
                );
            }
            Ok(Err(e)) => assert_eq!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset,
                "connection {i}: {e}"
            ),
            Err(_) => panic!("half-sent connection {i} still open 30 s after the header timeout"),
        }
    }

    // And the server still serves.
    let r = client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    cancel.cancel();
    server.await.unwrap();
}

/// The status page at `/`: HTML from the caller's function, served with headers that forbid
/// scripts, loading anything and caching; only GET and HEAD.
#[tokio::test]
async fn the_status_page_is_html_that_may_run_nothing_and_is_read_only() {
    let listener = pgb_scheduler::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let endpoints = Endpoints {
        health: Scheduler::new(vec![], Arc::new(Ok_)).health(),
        metrics: Arc::new(String::new),
        clock: Clock::system(),
        status_page: Some(Arc::new(|| {
            "<!DOCTYPE html><title>status</title>".to_owned()
        })),
    };
    let cancel = CancellationToken::new();
    let server = tokio::spawn(pgb_scheduler::serve(listener, endpoints, cancel.clone()));
    let client = reqwest::Client::new();
    let r = client.get(format!("http://{addr}/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let h = r.headers();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(
        csp.starts_with("default-src 'none'") && !csp.contains("script"),
        "{csp}"
    );
    assert_eq!(h["cache-control"], "no-store");
    assert!(r.text().await.unwrap().contains("<title>status</title>"));
    let r = client.post(format!("http://{addr}/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 405);
    // The other endpoints are unchanged.
    let r = client
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    cancel.cancel();
    server.await.unwrap();
}
