//! The one place where OpenDAL errors become [`StorageError`]s, and where secrets are scrubbed.

use std::error::Error as StdError;
use std::fmt;

use opendal::ErrorKind as OdKind;
use pgb_core::{StorageError, StorageErrorKind};

/// What the failed call was trying to do, for conditions that depend on the caller's intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intent {
    /// Anything without a condition.
    Plain,
    /// A create-only write: a failed condition means the key exists.
    CreateNew,
    /// An overwrite made conditional on the generation seen just before (GCS).
    ConditionalOverwrite,
}

/// Maps errors for one storage; holds what is needed to name causes and scrub secrets.
#[derive(Debug, Clone)]
pub(crate) struct ErrorMapper {
    pub(crate) scheme: &'static str,
    pub(crate) endpoint: Option<String>,
    pub(crate) retries: usize,
    pub(crate) secrets: Vec<String>,
}

/// The redacted text of an OpenDAL error, kept as the `source` of a [`StorageError`] so that
/// callers walking the chain never meet a signed URL or a key.
#[derive(Debug)]
struct BackendDetail(String);

impl fmt::Display for BackendDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for BackendDetail {}

const NOT_FOUND_CONTAINER_CODES: [&str; 4] = [
    "NoSuchBucket",
    "ContainerNotFound",
    "bucket does not exist",
    "Bucket not found",
];

const STORAGE_FULL_MARKERS: [&str; 4] = [
    "InsufficientStorage",
    "QuotaExceeded",
    "AccountQuotaExceeded",
    "XMinioStorageFull",
];

impl ErrorMapper {
    /// Maps an OpenDAL error from `op` on `key`.
    pub(crate) fn map(
        &self,
        op: &'static str,
        key: &str,
        err: &opendal::Error,
        intent: Intent,
    ) -> StorageError {
        self.map_noted(op, key, err, intent, None)
    }

    /// Like [`map`](Self::map), with `note` appended to the message (what was done about the
    /// failure, e.g. that the unfinished upload was aborted).
    pub(crate) fn map_noted(
        &self,
        op: &'static str,
        key: &str,
        err: &opendal::Error,
        intent: Intent,
        note: Option<&str>,
    ) -> StorageError {
        let detail = self.detail(err);
        let raw_message = err.message();
        let retried = err.is_persistent();
        let retries = if retried {
            format!(" after {} retries", self.retries)
        } else {
            String::new()
        };
        let (kind, cause) = match err.kind() {
            OdKind::NotFound
                if NOT_FOUND_CONTAINER_CODES
                    .iter()
                    .any(|c| raw_message.contains(c)) =>
            {
                (StorageErrorKind::Config, self.container_missing())
            }
            // Writing or listing never needs an existing object, so a 404 there means the
            // bucket or container itself is missing (some servers, like fake-gcs-server, say
            // only "Not Found"). A vanished multipart upload is not that.
            OdKind::NotFound
                if matches!(op, "write" | "list") && !raw_message.contains("NoSuchUpload") =>
            {
                (StorageErrorKind::Config, self.container_missing())
            }
            OdKind::NotFound => (StorageErrorKind::NotFound, "object not found".to_owned()),
            OdKind::ConfigInvalid
                if NOT_FOUND_CONTAINER_CODES
                    .iter()
                    .any(|c| raw_message.contains(c)) =>
            {
                (StorageErrorKind::Config, self.container_missing())
            }
            OdKind::ConfigInvalid => (
                StorageErrorKind::Config,
                format!("invalid {} configuration", self.scheme),
            ),
            OdKind::PermissionDenied => (
                StorageErrorKind::PermissionDenied,
                "access denied: check the credentials and their permissions".to_owned(),
            ),
            OdKind::AlreadyExists => (
                StorageErrorKind::AlreadyExists,
                "object already exists".to_owned(),
            ),
            OdKind::ConditionNotMatch | OdKind::Conflict if intent == Intent::CreateNew => (
                StorageErrorKind::AlreadyExists,
                "object already exists (create-only write refused)".to_owned(),
            ),
            OdKind::ConditionNotMatch | OdKind::Conflict
                if intent == Intent::ConditionalOverwrite =>
            {
                (
                    StorageErrorKind::Other,
                    "object was changed by another writer during the upload".to_owned(),
                )
            }
            OdKind::ConditionNotMatch => {
                (StorageErrorKind::Other, "precondition failed".to_owned())
            }
            OdKind::Conflict => (StorageErrorKind::Other, "conflicting request".to_owned()),
            OdKind::Unsupported => (
                StorageErrorKind::Unsupported,
                format!("not supported by this {} backend", self.scheme),
            ),
            OdKind::RateLimited => (
                StorageErrorKind::Unavailable,
                format!("rate limited by the server{retries}"),
            ),
            OdKind::RangeNotSatisfied => (
                StorageErrorKind::Other,
                "requested range is outside the object".to_owned(),
            ),
            _ if STORAGE_FULL_MARKERS.iter().any(|m| raw_message.contains(m)) => (
                StorageErrorKind::StorageFull,
                "no space left: the account or bucket quota is exhausted".to_owned(),
            ),
            _ if is_connection_error(err) => (
                StorageErrorKind::Unavailable,
                format!("cannot reach {}{retries}", self.endpoint_name()),
            ),
            _ if err.is_temporary() || retried => (
                StorageErrorKind::Unavailable,
                format!("{} kept failing{retries}", self.endpoint_name()),
            ),
            _ => (StorageErrorKind::Other, "request failed".to_owned()),
        };
        let mut message = if detail.is_empty() {
            cause
        } else {
            format!("{cause} ({detail})")
        };
        if let Some(note) = note {
            message.push_str("; ");
            message.push_str(note);
        }
        StorageError::new(kind, op, key, message)
            .with_source(BackendDetail(self.redact(&err.to_string())))
    }

    fn container_missing(&self) -> String {
        match self.scheme {
            "az" => "container does not exist".to_owned(),
            _ => "bucket does not exist".to_owned(),
        }
    }

    fn endpoint_name(&self) -> String {
        match &self.endpoint {
            Some(e) => format!("endpoint {e}"),
            None => format!("the {} endpoint", self.scheme),
        }
    }

    /// A short, single-line, redacted description of the server's or transport's answer.
    fn detail(&self, err: &opendal::Error) -> String {
        let msg = err.message();
        let mut parts = Vec::new();
        if let Some(code) = field(msg, "code") {
            parts.push(code);
        }
        if let Some(m) = field(msg, "message") {
            parts.push(m);
        }
        let text = if parts.is_empty() {
            // Transport errors: the innermost source says what happened ("Connection refused").
            let mut deepest: Option<String> = None;
            let mut cur: Option<&(dyn StdError + 'static)> = StdError::source(err);
            while let Some(e) = cur {
                deepest = Some(e.to_string());
                cur = e.source();
            }
            match deepest {
                Some(d) if !msg.is_empty() => format!("{msg}: {d}"),
                Some(d) => d,
                None => msg.to_owned(),
            }
        } else {
            parts.join(": ")
        };
        let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
        truncate(&self.redact(&one_line), 200)
    }

    /// Removes registered secrets and anything that looks like a signature or token.
    pub(crate) fn redact(&self, text: &str) -> String {
        redact(text, &self.secrets)
    }
}

/// Whether the error (or its sources) is a failure to connect or a timeout.
fn is_connection_error(err: &opendal::Error) -> bool {
    let mut texts = vec![err.message().to_ascii_lowercase()];
    let mut cur: Option<&(dyn StdError + 'static)> = StdError::source(err);
    while let Some(e) = cur {
        texts.push(e.to_string().to_ascii_lowercase());
        cur = e.source();
    }
    texts.iter().any(|t| {
        [
            "connection refused",
            "error sending request",
            "send http request",
            "connect",
            "timeout",
            "timed out",
            "dns error",
            "connection reset",
            "broken pipe",
        ]
        .iter()
        .any(|m| t.contains(m))
    })
}

/// Extracts `name: "value"` from a Debug-formatted service error.
fn field(msg: &str, name: &str) -> Option<String> {
    let pat = format!("{name}: \"");
    let start = msg.find(&pat)? + pat.len();
    let rest = &msg[start..];
    let end = rest.find('"')?;
    let v = rest[..end].trim();
    (!v.is_empty()).then(|| v.to_owned())
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// Query parameters and fields whose values are secret (compared case-insensitively).
const SECRET_MARKERS: [&str; 12] = [
    "sig=",
    "signature=",
    "x-amz-security-token=",
    "x-amz-credential=",
    "accountkey=",
    "sharedaccesssignature=",
    "access_token=",
    "token=",
    "password=",
    "secret=",
    "authorization: ",
    "private_key\": \"",
];

/// Replaces every `secret` and the value after every [`SECRET_MARKERS`] entry by `<redacted>`.
pub(crate) fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        if !s.is_empty() {
            out = out.replace(s.as_str(), "<redacted>");
        }
    }
    for marker in SECRET_MARKERS {
        let mut from = 0;
        loop {
            let lower = out.to_ascii_lowercase();
            let Some(pos) = lower[from..].find(marker) else {
                break;
            };
            let value_start = from + pos + marker.len();
            let value_end = out[value_start..]
                .find(['&', ';', ',', '"', '\'', '}', ' ', '\n'])
                .map_or(out.len(), |i| value_start + i);
            from = if value_end > value_start && &out[value_start..value_end] != "<redacted>" {
                out.replace_range(value_start..value_end, "<redacted>");
                value_start + "<redacted>".len()
            } else {
                value_end
            };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapper() -> ErrorMapper {
        ErrorMapper {
            scheme: "s3",
            endpoint: Some("http://127.0.0.1:1".to_owned()),
            retries: 2,
            secrets: vec!["SuperSecretKey123".to_owned()],
        }
    }

    #[test]
    fn redacts_registered_secrets_and_signatures() {
        let text = "GET http://h/c/k?sv=2021&sig=abc%2Fdef&se=1 failed, key SuperSecretKey123; \
                    AccountKey=Zm9vYmFy==;token=xyz";
        let out = redact(text, &["SuperSecretKey123".to_owned()]);
        for bad in ["abc%2Fdef", "SuperSecretKey123", "Zm9vYmFy", "xyz"] {
            assert!(!out.contains(bad), "{bad} leaked in {out}");
        }
        assert!(out.contains("sv=2021"), "{out}");
    }

    #[test]
    fn maps_kinds() {
        let m = mapper();
        let cases = [
            (
                opendal::Error::new(OdKind::NotFound, "x"),
                Intent::Plain,
                StorageErrorKind::NotFound,
            ),
            (
                opendal::Error::new(
                    OdKind::ConfigInvalid,
                    "S3Error { code: \"NoSuchBucket\", message: \"The specified bucket does not exist\" }",
                ),
                Intent::Plain,
                StorageErrorKind::Config,
            ),
            (
                opendal::Error::new(
                    OdKind::NotFound,
                    "AzblobError { code: \"ContainerNotFound\", message: \"The specified container does not exist.\" }",
                ),
                Intent::Plain,
                StorageErrorKind::Config,
            ),
            (
                opendal::Error::new(OdKind::PermissionDenied, "denied"),
                Intent::Plain,
                StorageErrorKind::PermissionDenied,
            ),
            (
                opendal::Error::new(OdKind::ConditionNotMatch, "412"),
                Intent::CreateNew,
                StorageErrorKind::AlreadyExists,
            ),
            (
                opendal::Error::new(OdKind::Conflict, "409"),
                Intent::CreateNew,
                StorageErrorKind::AlreadyExists,
            ),
            (
                opendal::Error::new(OdKind::Unexpected, "send http request").set_persistent(),
                Intent::Plain,
                StorageErrorKind::Unavailable,
            ),
            (
                opendal::Error::new(OdKind::Unsupported, "nope"),
                Intent::Plain,
                StorageErrorKind::Unsupported,
            ),
            (
                opendal::Error::new(OdKind::Unexpected, "QuotaExceeded"),
                Intent::Plain,
                StorageErrorKind::StorageFull,
            ),
        ];
        for (err, intent, want) in cases {
            let e = m.map("head", "k", &err, intent);
            assert_eq!(e.kind(), want, "{err} -> {e}");
            assert!(!e.to_string().contains('\n'), "one line: {e}");
        }
        // A 404 while writing or listing means the bucket is missing, not the object.
        for op in ["write", "list"] {
            let e = m.map(
                op,
                "k",
                &opendal::Error::new(OdKind::NotFound, "Not Found"),
                Intent::Plain,
            );
            assert_eq!(e.kind(), StorageErrorKind::Config, "{e}");
            assert!(e.to_string().contains("bucket does not exist"), "{e}");
        }
        let e = m.map(
            "write",
            "k",
            &opendal::Error::new(OdKind::NotFound, "S3Error { code: \"NoSuchUpload\" }"),
            Intent::Plain,
        );
        assert_eq!(e.kind(), StorageErrorKind::NotFound, "{e}");
    }

    #[test]
    fn messages_name_the_cause_without_secrets() {
        let m = mapper();
        let err = opendal::Error::new(
            OdKind::PermissionDenied,
            "S3Error { code: \"InvalidAccessKeyId\", message: \"bad key SuperSecretKey123\" }",
        )
        .with_context("uri", "http://h/b/k?X-Amz-Signature=deadbeef");
        let e = m.map("write", "k", &err, Intent::Plain);
        let text = e.to_string();
        assert!(text.contains("access denied"), "{text}");
        assert!(text.contains("InvalidAccessKeyId"), "{text}");
        assert!(!text.contains("SuperSecretKey123"), "{text}");
        let src = StdError::source(&e).expect("source").to_string();
        assert!(
            !src.contains("deadbeef") && !src.contains("SuperSecretKey123"),
            "{src}"
        );
    }

    #[test]
    fn unreachable_endpoint_is_named() {
        let err = opendal::Error::new(OdKind::Unexpected, "send http request")
            .set_source(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "Connection refused",
            ))
            .set_persistent();
        let e = mapper().map("head", "k", &err, Intent::Plain);
        assert_eq!(e.kind(), StorageErrorKind::Unavailable);
        let text = e.to_string();
        assert!(
            text.contains("cannot reach endpoint http://127.0.0.1:1 after 2 retries"),
            "{text}"
        );
        assert!(text.contains("Connection refused"), "{text}");
    }
}
