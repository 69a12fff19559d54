//! # pgb-faultproxy
//!
//! A fault-injecting HTTP/1.1 proxy for pgb's tests: it listens on `127.0.0.1`, forwards every
//! request to one object-store emulator (moto for S3, fake-gcs-server for GCS, Azurite for
//! Azure), and misbehaves where a test tells it to, the way real object storage does:
//!
//! - answer 503, 500 or 429 with the store's own error body ([`Fault::Status`]);
//! - reset the connection before forwarding ([`Fault::ResetBeforeForward`]);
//! - forward, let the store apply the request, then reset: the client never hears the answer
//!   ([`Fault::ForwardThenReset`]);
//! - cut a response body after K bytes or a share of its length ([`Fault::TruncateBody`],
//!   [`Fault::TruncateBodyPercent`]);
//! - hold a request past the client's timeout ([`Fault::Stall`]);
//! - answer 200 with an error document or an empty body (a multipart completion that "succeeds"
//!   without completing: [`Fault::OkWithErrorDocument`], [`Fault::OkEmpty`]).
//!
//! Faults come from [`Rule`]s (a [`Match`] on method and request target, applied on chosen
//! occurrences) and from [`RandomFaults`] (one request in N, chosen by a seed). The random
//! choice depends only on the seed and the request's identity (method, path, query keys, part
//! number, and how many times that identity was seen), never on timing, so the same requests
//! meet the same faults on every run. Every exchange is logged ([`Exchange`]): method, target,
//! `Range` header, status, fault applied, response body bytes passed on.
//!
//! Each client connection carries one request: the proxy asks both sides for
//! `Connection: close`, so that a reset or a cut never hits a second request by accident.
//!
//! ```no_run
//! use pgb_faultproxy::{Fault, FaultProxy, Match, Rule, Store};
//!
//! let proxy = FaultProxy::start("http://127.0.0.1:9000", Store::S3)?;
//! // The second PUT of a manifest is applied by the store, but its answer is lost.
//! proxy.add_rule(
//!     Rule::new(Match::method("PUT").target_contains("manifest.json"), Fault::ForwardThenReset)
//!         .nth(1),
//! );
//! // ... point the client at proxy.url() ...
//! assert!(proxy.log().iter().any(|e| e.fault == Some(Fault::ForwardThenReset)));
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::{TcpListener, TcpStream};

/// Which store sits behind the proxy: it decides the error bodies the proxy makes up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// S3 (XML `<Error><Code>SlowDown</Code>...`).
    S3,
    /// Google Cloud Storage (JSON `{"error": {...}}`).
    Gcs,
    /// Azure Blob Storage (XML, plus the `x-ms-error-code` header).
    Azure,
}

/// What the proxy does to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Do not forward; answer this status with the store's own error body (503 `SlowDown` /
    /// `ServerBusy` / `backendError`, 500 `InternalError`, 429, 403 `AccessDenied`, 404
    /// `NoSuchBucket` / `ContainerNotFound`).
    Status(u16),
    /// Reset the connection (TCP RST) before forwarding: the store never sees the request.
    ResetBeforeForward,
    /// Forward the request, wait for the store's answer (so it has applied the request), then
    /// reset the connection: the client never hears the answer.
    ForwardThenReset,
    /// Forward the request with its body reversed (same length, other bytes: another writer's
    /// object), wait for the store's answer, then reset: the store holds something the client
    /// did not write, and the client never heard about it.
    ForwardTamperedThenReset,
    /// Forward, pass on the answer's head and the first `n` bytes of its body, then reset.
    TruncateBody(u64),
    /// Like [`TruncateBody`](Self::TruncateBody), after this percentage of the answer's
    /// `Content-Length` (after one byte when the length is unknown).
    TruncateBodyPercent(u8),
    /// Read the request, do not forward it, hold the connection this long, then close it
    /// without an answer (a store that stalls past the client's timeout).
    Stall(Duration),
    /// Do not forward; answer 200 with the store's error document as the body (a multipart
    /// completion that failed after the status line was sent).
    OkWithErrorDocument,
    /// Do not forward; answer 200 with an empty body.
    OkEmpty,
}

impl Fault {
    fn is_truncation(&self) -> bool {
        matches!(self, Self::TruncateBody(_) | Self::TruncateBodyPercent(_))
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status(s) => write!(f, "status {s}"),
            Self::ResetBeforeForward => f.write_str("reset before forwarding"),
            Self::ForwardThenReset => f.write_str("forwarded, then reset"),
            Self::ForwardTamperedThenReset => f.write_str("forwarded tampered, then reset"),
            Self::TruncateBody(n) => write!(f, "body cut after {n} bytes"),
            Self::TruncateBodyPercent(p) => write!(f, "body cut at {p}%"),
            Self::Stall(d) => write!(f, "stalled {d:?}"),
            Self::OkWithErrorDocument => f.write_str("200 with an error document"),
            Self::OkEmpty => f.write_str("200 with an empty body"),
        }
    }
}

/// Which requests a rule or the random faults apply to: every condition must hold.
#[derive(Debug, Clone, Default)]
pub struct Match {
    method: Option<String>,
    contains: Vec<String>,
    lacks: Vec<String>,
    ranged: Option<bool>,
    header_has: Vec<(String, String)>,
    header_lacks: Vec<(String, String)>,
    except: Vec<Match>,
}

impl Match {
    /// Every request.
    pub fn any() -> Self {
        Self::default()
    }

    /// Requests with this method (`GET`, `PUT`, ...).
    pub fn method(method: &str) -> Self {
        Self::any().and_method(method)
    }

    /// Also requires this method.
    pub fn and_method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Also requires the request target (path and query) to contain `s`.
    pub fn target_contains(mut self, s: &str) -> Self {
        self.contains.push(s.to_owned());
        self
    }

    /// Also requires the request target not to contain `s`.
    pub fn target_lacks(mut self, s: &str) -> Self {
        self.lacks.push(s.to_owned());
        self
    }

    /// Also requires a `Range` header (`true`) or its absence (`false`).
    pub fn ranged(mut self, yes: bool) -> Self {
        self.ranged = Some(yes);
        self
    }

    /// Also requires a header `name` (case-insensitive) whose value contains `s`.
    pub fn header_contains(mut self, name: &str, s: &str) -> Self {
        self.header_has
            .push((name.to_ascii_lowercase(), s.to_owned()));
        self
    }

    /// Also requires that no header `name` (case-insensitive) has a value containing `s`
    /// (an absent header qualifies).
    pub fn header_lacks(mut self, name: &str, s: &str) -> Self {
        self.header_lacks
            .push((name.to_ascii_lowercase(), s.to_owned()));
        self
    }

    /// Also requires that `other` does not match: `Match::any().except(m)` is every request
    /// but those `m` selects.
    pub fn except(mut self, other: Match) -> Self {
        self.except.push(other);
        self
    }

    fn matches(&self, req: &RequestHead) -> bool {
        let header_has = |name: &str, s: &str| {
            req.headers.iter().any(|(n, v)| {
                n.eq_ignore_ascii_case(name) && String::from_utf8_lossy(v).contains(s)
            })
        };
        self.header_has.iter().all(|(n, s)| header_has(n, s))
            && !self.header_lacks.iter().any(|(n, s)| header_has(n, s))
            && !self.except.iter().any(|m| m.matches(req))
            && self.method.as_deref().is_none_or(|m| m == req.method)
            && self
                .contains
                .iter()
                .all(|s| req.target.contains(s.as_str()))
            && !self.lacks.iter().any(|s| req.target.contains(s.as_str()))
            && self.ranged.is_none_or(|r| r == req.range.is_some())
    }
}

#[derive(Debug, Clone)]
enum When {
    Always,
    Nth(Vec<u64>),
    First(u64),
}

/// A fault applied to the requests a [`Match`] selects: every one, the first N, or chosen
/// occurrences (counted per rule, from 0).
#[derive(Debug, Clone)]
pub struct Rule {
    matcher: Match,
    fault: Fault,
    when: When,
}

impl Rule {
    /// `fault` on every request `matcher` selects.
    pub fn new(matcher: Match, fault: Fault) -> Self {
        Self {
            matcher,
            fault,
            when: When::Always,
        }
    }

    /// Only on occurrence `n` (0 = the first matching request).
    pub fn nth(self, n: u64) -> Self {
        self.nths(&[n])
    }

    /// Only on these occurrences (0-based).
    pub fn nths(mut self, ns: &[u64]) -> Self {
        self.when = When::Nth(ns.to_vec());
        self
    }

    /// Only on the first `n` matching requests.
    pub fn first(mut self, n: u64) -> Self {
        self.when = When::First(n);
        self
    }
}

/// One request in `one_in` (of those `matcher` selects) gets one of `faults`, chosen by a seed.
#[derive(Debug, Clone)]
pub struct RandomFaults {
    one_in: u64,
    seed: u64,
    faults: Vec<Fault>,
    matcher: Match,
}

impl RandomFaults {
    /// Faults on one request in `one_in`, drawn from `faults`; the same seed and the same
    /// requests give the same faults. Truncations are only drawn for `GET`s; other requests
    /// get the next fault of the list instead.
    pub fn new(one_in: u64, seed: u64, faults: Vec<Fault>) -> Self {
        Self {
            one_in: one_in.max(1),
            seed,
            faults,
            matcher: Match::any(),
        }
    }

    /// The transient faults a store really produces, for "one in N" runs: 503, 500, 429, a
    /// reset before forwarding, and a body cut at half its length.
    pub fn transient(one_in: u64, seed: u64) -> Self {
        Self::new(
            one_in,
            seed,
            vec![
                Fault::Status(503),
                Fault::Status(500),
                Fault::Status(429),
                Fault::ResetBeforeForward,
                Fault::TruncateBodyPercent(50),
            ],
        )
    }

    /// Restricts the random faults to the requests `matcher` selects.
    pub fn only(mut self, matcher: Match) -> Self {
        self.matcher = matcher;
        self
    }

    fn decide(&self, req: &RequestHead, occurrence: u64) -> Option<Fault> {
        if self.faults.is_empty() || !self.matcher.matches(req) {
            return None;
        }
        let h = splitmix64(self.seed ^ fnv1a(identity(req).as_bytes()) ^ splitmix64(occurrence));
        if !h.is_multiple_of(self.one_in) {
            return None;
        }
        let start = (h >> 32) as usize % self.faults.len();
        (0..self.faults.len())
            .map(|i| &self.faults[(start + i) % self.faults.len()])
            .find(|f| req.method == "GET" || !f.is_truncation())
            .cloned()
    }
}

/// What the proxy saw of one exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// Arrival order, from 0.
    pub seq: u64,
    /// Request method.
    pub method: String,
    /// Request target: path and query, as sent.
    pub target: String,
    /// The `Range` (or Azure's `x-ms-range`) header, if any.
    pub range: Option<String>,
    /// Status sent to the client (the store's, or the made-up one); `None` when the client got
    /// no status line.
    pub status: Option<u16>,
    /// Whether the request reached the store.
    pub forwarded: bool,
    /// The fault applied, if any.
    pub fault: Option<Fault>,
    /// Response body bytes passed on to the client.
    pub body_bytes: u64,
}

impl fmt::Display for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} {} {}", self.seq, self.method, self.target)?;
        if let Some(r) = &self.range {
            write!(f, " [{r}]")?;
        }
        match self.status {
            Some(s) => write!(f, " -> {s}")?,
            None => f.write_str(" -> (no answer)")?,
        }
        if let Some(fault) = &self.fault {
            write!(f, " ({fault})")?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct RuleState {
    rule: Rule,
    seen: u64,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<RuleState>,
    random: Option<RandomFaults>,
    identities: std::collections::HashMap<String, u64>,
}

#[derive(Debug)]
struct Shared {
    store: Store,
    upstream: SocketAddr,
    upstream_authority: String,
    own_authority: String,
    state: Mutex<State>,
    log: Mutex<Vec<Exchange>>,
    seq: AtomicU64,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn log(&self) -> MutexGuard<'_, Vec<Exchange>> {
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The first rule that fires wins; otherwise the random faults decide. Every rule whose
    /// matcher selects the request counts it, fired or not.
    fn choose(&self, req: &RequestHead) -> Option<Fault> {
        let mut st = self.state();
        let mut chosen = None;
        for rs in &mut st.rules {
            if !rs.rule.matcher.matches(req) {
                continue;
            }
            let n = rs.seen;
            rs.seen += 1;
            let fires = match &rs.rule.when {
                When::Always => true,
                When::Nth(ns) => ns.contains(&n),
                When::First(k) => n < *k,
            };
            if fires && chosen.is_none() {
                chosen = Some(rs.rule.fault.clone());
            }
        }
        let id = identity(req);
        let occurrence = {
            let c = st.identities.entry(id).or_insert(0);
            let n = *c;
            *c += 1;
            n
        };
        if chosen.is_none()
            && let Some(r) = &st.random
        {
            chosen = r.decide(req, occurrence);
        }
        chosen
    }
}

/// The proxy: listening on `127.0.0.1`, forwarding to one upstream, on its own thread and
/// runtime (so sync tests that run `pgb` as a child process can use it as well as async
/// ones). Stopped when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    base_path: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .field("store", &self.shared.store)
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`http://127.0.0.1:PORT[/path]`, an emulator's
    /// endpoint). No faults until rules are added.
    ///
    /// # Errors
    /// When the upstream URL is not `http://host:port[/path]` with a resolvable host, or the
    /// listening socket or the runtime cannot be created.
    pub fn start(upstream: &str, store: Store) -> io::Result<Self> {
        let rest = upstream.strip_prefix("http://").ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "upstream must be http://host:port",
            )
        })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let upstream_addr = std::net::ToSocketAddrs::to_socket_addrs(authority)?
            .next()
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "upstream has no address")
            })?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            store,
            upstream: upstream_addr,
            upstream_authority: authority.to_owned(),
            own_authority: addr.to_string(),
            state: Mutex::new(State::default()),
            log: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let sh = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("pgb-faultproxy".into())
            .spawn(move || {
                rt.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else {
                        return;
                    };
                    loop {
                        tokio::select! {
                            _ = &mut stopped => break,
                            accepted = listener.accept() => {
                                if let Ok((conn, _)) = accepted {
                                    tokio::spawn(serve(conn, Arc::clone(&sh)));
                                }
                            }
                        }
                    }
                });
            })?;
        Ok(Self {
            addr,
            base_path: path.to_owned(),
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The proxy's endpoint, with the upstream's path (`http://127.0.0.1:PORT[/path]`): give
    /// it to the client instead of the emulator's.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.base_path)
    }

    /// The proxy's `host:port`.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// Adds a rule (rules are checked in the order added; the first that fires wins).
    pub fn add_rule(&self, rule: Rule) {
        self.shared.state().rules.push(RuleState { rule, seen: 0 });
    }

    /// Sets (or with `None` removes) the random faults.
    pub fn set_random(&self, random: Option<RandomFaults>) {
        self.shared.state().random = random;
    }

    /// Removes every rule and the random faults; the log is kept.
    pub fn clear_faults(&self) {
        let mut st = self.shared.state();
        st.rules.clear();
        st.random = None;
    }

    /// Every finished exchange so far, in arrival order.
    pub fn log(&self) -> Vec<Exchange> {
        let mut log = self.shared.log().clone();
        log.sort_by_key(|e| e.seq);
        log
    }

    /// Empties the log.
    pub fn clear_log(&self) {
        self.shared.log().clear();
    }

    /// The exchanges that met a fault.
    pub fn faulted(&self) -> Vec<Exchange> {
        self.log()
            .into_iter()
            .filter(|e| e.fault.is_some())
            .collect()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Debug)]
struct RequestHead {
    method: String,
    target: String,
    range: Option<String>,
    /// The head's lines after the request line, without `Host`, `Connection`, `Expect`,
    /// `Keep-Alive` and `Proxy-Connection`.
    headers: Vec<(String, Vec<u8>)>,
    framing: Framing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

/// The identity of a request for the seeded choice: method, path, query keys, and the values
/// of the query keys that do not change from run to run (part numbers, `comp`).
fn identity(req: &RequestHead) -> String {
    let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
    let mut keys: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) if matches!(k, "partNumber" | "comp" | "uploadType" | "restype") => {
                format!("{k}={v}")
            }
            Some((k, _)) => k.to_owned(),
            None => p.to_owned(),
        })
        .collect();
    keys.sort();
    format!("{} {path}?{}", req.method, keys.join("&"))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const MAX_HEAD: usize = 64 * 1024;

/// Reads a message head (up to the empty line) from `r`.
async fn read_head<R: AsyncBufRead + Unpin>(r: &mut R) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let n = r.read_until(b'\n', &mut head).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed mid-head",
            ));
        }
        if head.len() > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
        }
        let line = &head[before..];
        if line == b"\r\n" || line == b"\n" {
            if before == 0 {
                // A stray empty line before a request line: ignore it.
                head.clear();
                continue;
            }
            return Ok(head);
        }
    }
}

fn header_str(v: &[u8]) -> String {
    String::from_utf8_lossy(v).trim().to_owned()
}

fn framing_of(headers: &[httparse::Header<'_>], default: Framing) -> Framing {
    for h in headers {
        if h.name.eq_ignore_ascii_case("transfer-encoding")
            && header_str(h.value).to_ascii_lowercase().contains("chunked")
        {
            return Framing::Chunked;
        }
    }
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length")
            && let Ok(n) = header_str(h.value).parse()
        {
            return Framing::Length(n);
        }
    }
    default
}

fn parse_request(head: &[u8]) -> io::Result<RequestHead> {
    let mut hs = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut hs);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bad request head",
            ));
        }
    }
    let method = req.method.unwrap_or("GET").to_owned();
    let target = req.path.unwrap_or("/").to_owned();
    // Azure sends `x-ms-range` (or `Range`).
    let range = ["range", "x-ms-range"].iter().find_map(|name| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| header_str(h.value))
    });
    let framing = framing_of(req.headers, Framing::Length(0));
    let headers = req
        .headers
        .iter()
        .filter(|h| !is_hop_header(h.name) && !h.name.eq_ignore_ascii_case("host"))
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect();
    Ok(RequestHead {
        method,
        target,
        range,
        headers,
        framing,
    })
}

fn is_hop_header(name: &str) -> bool {
    ["connection", "keep-alive", "proxy-connection", "expect"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

/// Sends TCP RST instead of FIN when the socket is dropped.
fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

async fn serve(conn: TcpStream, shared: Arc<Shared>) {
    let _ = conn.set_nodelay(true);
    let mut client = BufReader::new(conn);
    let Ok(head) = read_head(&mut client).await else {
        return;
    };
    let Ok(req) = parse_request(&head) else {
        return;
    };
    let seq = shared.seq.fetch_add(1, Ordering::SeqCst);
    let fault = shared.choose(&req);
    let mut entry = Exchange {
        seq,
        method: req.method.clone(),
        target: req.target.clone(),
        range: req.range.clone(),
        status: None,
        forwarded: false,
        fault: fault.clone(),
        body_bytes: 0,
    };
    let _ = handle(&mut client, &req, fault.as_ref(), &shared, &mut entry).await;
    shared.log().push(entry);
}

async fn handle(
    client: &mut BufReader<TcpStream>,
    req: &RequestHead,
    fault: Option<&Fault>,
    shared: &Shared,
    entry: &mut Exchange,
) -> io::Result<()> {
    match fault {
        Some(Fault::ResetBeforeForward) => {
            reset(client.get_ref());
            return Ok(());
        }
        Some(Fault::Status(status)) => {
            copy_body(client, &mut tokio::io::sink(), req.framing, None).await?;
            let (body, ctype, code) = error_document(shared.store, *status);
            entry.status = Some(*status);
            entry.body_bytes = body.len() as u64;
            return answer(client.get_mut(), *status, ctype, code, &body, shared.store).await;
        }
        Some(Fault::OkWithErrorDocument) => {
            copy_body(client, &mut tokio::io::sink(), req.framing, None).await?;
            let (body, ctype, _) = error_document(shared.store, 500);
            entry.status = Some(200);
            entry.body_bytes = body.len() as u64;
            return answer(client.get_mut(), 200, ctype, None, &body, shared.store).await;
        }
        Some(Fault::OkEmpty) => {
            copy_body(client, &mut tokio::io::sink(), req.framing, None).await?;
            entry.status = Some(200);
            return answer(
                client.get_mut(),
                200,
                "application/xml",
                None,
                b"",
                shared.store,
            )
            .await;
        }
        Some(Fault::Stall(d)) => {
            copy_body(client, &mut tokio::io::sink(), req.framing, None).await?;
            // Wait out the stall, or until the client gives up and closes.
            let mut probe = [0u8; 1];
            let _ = tokio::time::timeout(*d, client.read(&mut probe)).await;
            return Ok(());
        }
        _ => {}
    }

    // Forward.
    let upstream = TcpStream::connect(shared.upstream).await?;
    let _ = upstream.set_nodelay(true);
    let mut upstream = BufReader::new(upstream);
    let mut out = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\n",
        req.method, req.target, shared.upstream_authority
    )
    .into_bytes();
    for (name, value) in &req.headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    upstream.get_mut().write_all(&out).await?;
    match (fault, req.framing) {
        (Some(Fault::ForwardTamperedThenReset), Framing::Length(n)) => {
            let mut body = vec![0u8; usize::try_from(n).unwrap_or(usize::MAX)];
            client.read_exact(&mut body).await?;
            body.reverse();
            upstream.get_mut().write_all(&body).await?;
        }
        _ => {
            copy_body(client, upstream.get_mut(), req.framing, None).await?;
        }
    }
    upstream.get_mut().flush().await?;
    entry.forwarded = true;

    let head = read_head(&mut upstream).await?;
    let mut hs = [httparse::EMPTY_HEADER; 128];
    let mut resp = httparse::Response::new(&mut hs);
    match resp.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "bad response head",
            ));
        }
    }
    let status = resp.code.unwrap_or(502);
    if matches!(
        fault,
        Some(Fault::ForwardThenReset | Fault::ForwardTamperedThenReset)
    ) {
        reset(client.get_ref());
        return Ok(());
    }
    let no_body = req.method == "HEAD" || status == 204 || status == 304 || status < 200;
    let framing = if no_body {
        Framing::Length(0)
    } else {
        framing_of(resp.headers, Framing::UntilClose)
    };
    let limit = match fault {
        Some(Fault::TruncateBody(n)) => Some(*n),
        Some(Fault::TruncateBodyPercent(p)) => Some(match framing {
            Framing::Length(len) => len * u64::from(*p) / 100,
            _ => 1,
        }),
        _ => None,
    };
    let mut out = format!("HTTP/1.1 {status} {}\r\n", resp.reason.unwrap_or("")).into_bytes();
    for h in resp.headers.iter() {
        if is_hop_header(h.name) {
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        // Redirects and resumable-upload sessions name the emulator's own address; keep the
        // client on the proxy.
        let value = String::from_utf8_lossy(h.value)
            .replace(&shared.upstream_authority, &shared.own_authority);
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    client.get_mut().write_all(&out).await?;
    entry.status = Some(status);
    let (sent, cut) = copy_body(&mut upstream, client.get_mut(), framing, limit).await?;
    entry.body_bytes = sent;
    if cut {
        client.get_mut().flush().await?;
        reset(client.get_ref());
        return Ok(());
    }
    // A truncation that never cut (the body was shorter) is no fault.
    if entry.fault.as_ref().is_some_and(Fault::is_truncation) {
        entry.fault = None;
    }
    client.get_mut().flush().await?;
    client.get_mut().shutdown().await?;
    Ok(())
}

/// Copies one message body framed as `framing` from `r` to `w`, byte for byte (chunked
/// framing included); stops after `limit` bytes if given. Returns the bytes written and
/// whether the limit cut the body.
async fn copy_body<R, W>(
    r: &mut R,
    w: &mut W,
    framing: Framing,
    limit: Option<u64>,
) -> io::Result<(u64, bool)>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut sent = 0u64;
    match framing {
        Framing::Length(n) => {
            let cut = copy_exact(r, w, n, limit, &mut sent).await?;
            Ok((sent, cut))
        }
        Framing::UntilClose => {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = r.read(&mut buf).await?;
                if n == 0 {
                    return Ok((sent, false));
                }
                let take = limit.map_or(n, |l| n.min((l - sent) as usize));
                w.write_all(&buf[..take]).await?;
                sent += take as u64;
                if limit.is_some_and(|l| sent >= l) {
                    return Ok((sent, true));
                }
            }
        }
        Framing::Chunked => loop {
            let mut line = Vec::new();
            if r.read_until(b'\n', &mut line).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed mid-chunk",
                ));
            }
            if write_limited(w, &line, limit, &mut sent).await? {
                return Ok((sent, true));
            }
            let text = String::from_utf8_lossy(&line);
            let size_text = text.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_text, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
            if size == 0 {
                loop {
                    let mut trailer = Vec::new();
                    if r.read_until(b'\n', &mut trailer).await? == 0 {
                        return Ok((sent, false));
                    }
                    if write_limited(w, &trailer, limit, &mut sent).await? {
                        return Ok((sent, true));
                    }
                    if trailer == b"\r\n" || trailer == b"\n" {
                        return Ok((sent, false));
                    }
                }
            }
            if copy_exact(r, w, size + 2, limit, &mut sent).await? {
                return Ok((sent, true));
            }
        },
    }
}

async fn write_limited<W: AsyncWrite + Unpin>(
    w: &mut W,
    bytes: &[u8],
    limit: Option<u64>,
    sent: &mut u64,
) -> io::Result<bool> {
    let take = limit.map_or(bytes.len(), |l| bytes.len().min((l - *sent) as usize));
    w.write_all(&bytes[..take]).await?;
    *sent += take as u64;
    Ok(take < bytes.len() || limit.is_some_and(|l| *sent >= l))
}

async fn copy_exact<R, W>(
    r: &mut R,
    w: &mut W,
    n: u64,
    limit: Option<u64>,
    sent: &mut u64,
) -> io::Result<bool>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut left = n;
    let mut buf = vec![0u8; 16 * 1024];
    while left > 0 {
        let want = (left as usize).min(buf.len());
        let got = r.read(&mut buf[..want]).await?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed mid-body",
            ));
        }
        left -= got as u64;
        if write_limited(w, &buf[..got], limit, sent).await? && limit.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The store's own error body for `status`: (body, content type, Azure error code).
fn error_document(store: Store, status: u16) -> (Vec<u8>, &'static str, Option<&'static str>) {
    let (code, message) = match (store, status) {
        (Store::S3, 503 | 429) => ("SlowDown", "Please reduce your request rate."),
        (Store::S3, 403) => ("AccessDenied", "Access Denied"),
        (Store::S3, 404) => ("NoSuchBucket", "The specified bucket does not exist"),
        (Store::S3, _) => (
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
        (Store::Azure, 503 | 429) => (
            "ServerBusy",
            "The server is currently unable to receive requests. Please retry your request.",
        ),
        (Store::Azure, 403) => (
            "AuthorizationFailure",
            "This request is not authorized to perform this operation.",
        ),
        (Store::Azure, 404) => (
            "ContainerNotFound",
            "The specified container does not exist.",
        ),
        (Store::Azure, _) => (
            "InternalError",
            "The server encountered an internal error. Please retry the request.",
        ),
        (Store::Gcs, 503) => ("backendError", "Backend Error"),
        (Store::Gcs, 429) => (
            "rateLimitExceeded",
            "The rate of change requests is too high.",
        ),
        (Store::Gcs, 403) => ("forbidden", "Access denied."),
        (Store::Gcs, 404) => ("notFound", "The specified bucket does not exist."),
        (Store::Gcs, _) => ("internalError", "Internal Error"),
    };
    match store {
        Store::S3 => (
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
                 <Message>{message}</Message><RequestId>pgbfaultproxy</RequestId></Error>"
            )
            .into_bytes(),
            "application/xml",
            None,
        ),
        Store::Azure => (
            format!(
                "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code>\
                 <Message>{message}\nRequestId:pgbfaultproxy</Message></Error>"
            )
            .into_bytes(),
            "application/xml",
            Some(code),
        ),
        Store::Gcs => (
            format!(
                "{{\"error\":{{\"code\":{status},\"message\":\"{message}\",\"errors\":\
                 [{{\"message\":\"{message}\",\"domain\":\"global\",\"reason\":\"{code}\"}}]}}}}"
            )
            .into_bytes(),
            "application/json; charset=UTF-8",
            None,
        ),
    }
}

async fn answer(
    w: &mut TcpStream,
    status: u16,
    ctype: &str,
    azure_code: Option<&str>,
    body: &[u8],
    store: Store,
) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Fault",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status == 503 || status == 429 {
        head.push_str("Retry-After: 0\r\n");
    }
    if let (Store::Azure, Some(code)) = (store, azure_code) {
        head.push_str("x-ms-error-code: ");
        head.push_str(code);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes()).await?;
    w.write_all(body).await?;
    w.flush().await?;
    w.shutdown().await
}
