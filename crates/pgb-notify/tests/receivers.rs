//! Notifications delivered to small HTTP servers started by the tests on 127.0.0.1: a webhook
//! receiver, a Slack-like receiver and a healthchecks-like ping receiver; plus failing,
//! flaky, silent and unreachable endpoints.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgb_notify::{Event, Notification, Notifier, NotifyOptions, RunId, SecretUrl, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Request {
    method: String,
    target: String,
    content_type: Option<String>,
    body: String,
}

/// A one-request-per-connection HTTP/1.1 server answering each request with the next status
/// of `statuses` (the last repeats); `None` never answers.
#[derive(Clone)]
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<Request>>>,
}

async fn receiver(statuses: Vec<Option<u16>>) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    tokio::spawn(async move {
        let mut n = 0usize;
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let status = statuses[n.min(statuses.len() - 1)];
            n += 1;
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head_end, content_length) = loop {
                    let k = sock.read(&mut chunk).await.unwrap_or(0);
                    if k == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..k]);
                    if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..pos]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                        break (pos + 4, len);
                    }
                };
                while buf.len() < head_end + content_length {
                    let k = sock.read(&mut chunk).await.unwrap_or(0);
                    if k == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..k]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let mut first = head.lines().next().unwrap().split(' ');
                let content_type = head.lines().find_map(|l| {
                    l.to_lowercase()
                        .strip_prefix("content-type:")
                        .map(|v| v.trim().to_owned())
                });
                s.lock().unwrap().push(Request {
                    method: first.next().unwrap().to_owned(),
                    target: first.next().unwrap().to_owned(),
                    content_type,
                    body: String::from_utf8_lossy(&buf[head_end..]).to_string(),
                });
                match status {
                    Some(code) => {
                        let resp = format!(
                            "HTTP/1.1 {code} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nOK"
                        );
                        let _ = sock.write_all(resp.as_bytes()).await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(3600)).await,
                }
            });
        }
    });
    Receiver { url, seen }
}

impl Receiver {
    fn seen(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }
}

fn fast() -> NotifyOptions {
    NotifyOptions::default()
        .with_timeout(Duration::from_millis(500))
        .with_retries(2)
        .with_backoff(Duration::from_millis(10))
}

fn failed_backup() -> Notification {
    Notification::new(Event::BackupFailed)
        .with_job("nightly")
        .with_set("db.example:5432/app")
        .with_cause("storage: write backups/x/data.dump.zst: no space left on device")
        .with_duration("total", Duration::from_millis(4200))
        .with_size("plain", 123_456)
        .with_log_tail(vec![
            "pg_dump: dumping contents of table public.orders".into(),
            "pgb: error: no space left on device".into(),
        ])
}

#[tokio::test]
async fn the_webhook_receives_the_json_payload() {
    let hook = receiver(vec![Some(200)]).await;
    let n = Notifier::new(
        vec![Transport::Webhook(
            SecretUrl::parse(&format!("{}/hooks/pgb?token=s3cret", hook.url)).unwrap(),
        )],
        fast(),
    )
    .unwrap();
    let d = n.notify(&failed_backup(), &RunId::generate()).await;
    assert_eq!(d.len(), 1);
    assert!(d[0].ok, "{d:?}");
    assert_eq!(d[0].attempts, 1);
    let seen = hook.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].target, "/hooks/pgb?token=s3cret");
    assert_eq!(seen[0].content_type.as_deref(), Some("application/json"));
    let v: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(v["event"], "backup_failed");
    assert_eq!(v["job"], "nightly");
    assert_eq!(v["set"], "db.example:5432/app");
    assert_eq!(v["status"], "failed");
    assert_eq!(
        v["cause"],
        "storage: write backups/x/data.dump.zst: no space left on device"
    );
    assert_eq!(v["durations_ms"]["total"], 4200);
    assert_eq!(v["sizes"]["plain"], 123_456);
    // The delivery names the host, never the token.
    assert!(!format!("{d:?}").contains("s3cret"));
}

#[tokio::test]
async fn slack_gets_its_incoming_webhook_format() {
    let slack = receiver(vec![Some(200)]).await;
    let n = Notifier::new(
        vec![Transport::Slack(
            SecretUrl::parse(&format!("{}/services/T0/B0/XYZ", slack.url)).unwrap(),
        )],
        fast(),
    )
    .unwrap();
    let ok = Notification::new(Event::DrillPassed)
        .with_backup_id("20261130T010000Z-abcdef")
        .with_duration("rto", Duration::from_millis(95_000));
    assert!(n.notify(&ok, &RunId::generate()).await[0].ok);
    let v: serde_json::Value = serde_json::from_str(&slack.seen()[0].body).unwrap();
    let text = v["text"].as_str().unwrap();
    assert!(
        text.starts_with(
            ":white_check_mark: pgb: drill_passed [ok] (backup 20261130T010000Z-abcdef)"
        ),
        "{text}"
    );
    assert!(text.contains("rto 95.0s"), "{text}");
}

#[tokio::test]
async fn healthchecks_pings_start_success_and_fail_paired_by_run_id() {
    let hc = receiver(vec![Some(200)]).await;
    let n = Notifier::new(
        vec![Transport::Healthchecks(
            SecretUrl::parse(&format!("{}/ping/1234-uuid", hc.url)).unwrap(),
        )],
        fast(),
    )
    .unwrap();
    let run = RunId::generate();
    assert!(n.start(&run).await.iter().all(|d| d.ok));
    assert!(n.notify(&failed_backup(), &run).await[0].ok);
    let run2 = RunId::generate();
    n.start(&run2).await;
    n.notify(&Notification::new(Event::BackupSucceeded), &run2)
        .await;

    let seen = hc.seen();
    let targets: Vec<&str> = seen.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(
        targets,
        [
            format!("/ping/1234-uuid/start?rid={}", run.as_str()),
            format!("/ping/1234-uuid/fail?rid={}", run.as_str()),
            format!("/ping/1234-uuid/start?rid={}", run2.as_str()),
            format!("/ping/1234-uuid?rid={}", run2.as_str()),
        ]
    );
    // The failure ping carries the headline and the last log lines.
    let body = &seen[1].body;
    assert!(
        body.starts_with("pgb: backup_failed [failed] (job nightly"),
        "{body}"
    );
    assert!(
        body.ends_with(
            "pg_dump: dumping contents of table public.orders\npgb: error: no space left on device"
        ),
        "{body}"
    );
}

#[tokio::test]
async fn a_job_events_filter_applies_to_webhooks_but_every_run_is_still_pinged() {
    let hook = receiver(vec![Some(200)]).await;
    let hc = receiver(vec![Some(200)]).await;
    let n = Notifier::new(
        vec![
            Transport::Webhook(SecretUrl::parse(&format!("{}/hook", hook.url)).unwrap()),
            Transport::Healthchecks(SecretUrl::parse(&format!("{}/ping", hc.url)).unwrap()),
        ],
        fast(),
    )
    .unwrap()
    .with_events([Event::BackupFailed]);
    let run = RunId::generate();
    n.start(&run).await;
    let d = n
        .notify(&Notification::new(Event::BackupSucceeded), &run)
        .await;
    assert_eq!(d.len(), 1, "only the ping: {d:?}");
    assert_eq!(d[0].transport, "healthchecks");
    assert!(hook.seen().is_empty());
    let d = n.notify(&failed_backup(), &RunId::generate()).await;
    assert_eq!(d.len(), 2);
    assert_eq!(hook.seen().len(), 1);
    let targets: Vec<String> = hc.seen().into_iter().map(|r| r.target).collect();
    assert_eq!(targets.len(), 3, "{targets:?}");
    assert_eq!(targets[0], format!("/ping/start?rid={}", run.as_str()));
    assert_eq!(targets[1], format!("/ping?rid={}", run.as_str()));
    assert!(targets[2].starts_with("/ping/fail?rid="), "{targets:?}");
}

#[tokio::test]
async fn server_errors_are_retried_and_client_errors_are_not() {
    let flaky = receiver(vec![Some(503), Some(500), Some(200)]).await;
    let n = Notifier::new(
        vec![Transport::Webhook(SecretUrl::parse(&flaky.url).unwrap())],
        fast(),
    )
    .unwrap();
    let d = n.notify(&failed_backup(), &RunId::generate()).await;
    assert!(d[0].ok, "{d:?}");
    assert_eq!(d[0].attempts, 3);
    assert_eq!(flaky.seen().len(), 3);

    let gone = receiver(vec![Some(404)]).await;
    let n = Notifier::new(
        vec![Transport::Webhook(SecretUrl::parse(&gone.url).unwrap())],
        fast(),
    )
    .unwrap();
    let d = n.notify(&failed_backup(), &RunId::generate()).await;
    assert!(!d[0].ok);
    assert_eq!(d[0].attempts, 1);
    assert_eq!(d[0].error.as_deref(), Some("HTTP 404 Not Found"));
}

#[tokio::test]
async fn unreachable_and_silent_endpoints_fail_as_values_without_hanging() {
    // Nothing listens on a port we bound and released.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let silent = receiver(vec![None]).await;
    let good = receiver(vec![Some(200)]).await;
    let n = Notifier::new(
        vec![
            Transport::Webhook(
                SecretUrl::parse(&format!("http://127.0.0.1:{port}/secret-path")).unwrap(),
            ),
            Transport::Slack(SecretUrl::parse(&format!("{}/secret-path", silent.url)).unwrap()),
            Transport::Webhook(SecretUrl::parse(&good.url).unwrap()),
        ],
        fast(),
    )
    .unwrap();
    // A liveness bound, not a speed assertion: with a 0.5 s timeout and two retries this
    // returns in seconds; a hang would never return.
    let d = tokio::time::timeout(
        Duration::from_secs(60),
        n.notify(&failed_backup(), &RunId::generate()),
    )
    .await
    .expect("notify must not hang");
    assert!(!d[0].ok);
    assert_eq!(d[0].attempts, 3);
    assert!(
        d[0].error
            .as_deref()
            .unwrap()
            .starts_with("could not connect"),
        "{d:?}"
    );
    assert!(!d[1].ok);
    assert!(
        d[1].error.as_deref().unwrap().starts_with("timed out"),
        "{d:?}"
    );
    assert_eq!(silent.seen().len(), 3);
    // A failing transport does not stop the others.
    assert!(d[2].ok);
    let text = format!("{d:?}");
    assert!(!text.contains("secret-path"), "{text}");
}
