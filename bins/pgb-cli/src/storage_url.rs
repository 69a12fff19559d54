//! Repository URLs → storage backends. The binary reads the environment and passes what it
//! read here; the storage crates only ever see typed configs.
//!
//! | URL | Credentials and settings (environment) |
//! |---|---|
//! | `file:///path`, `path` | — |
//! | `s3://bucket/prefix` | `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`), or `AWS_PROFILE`, or `PGB_S3_CREDENTIALS=default-chain`; `AWS_REGION` / `AWS_DEFAULT_REGION`; `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`; `PGB_S3_FORCE_PATH_STYLE`, `PGB_S3_SSE`, `PGB_S3_SSE_KMS_KEY_ID`, `PGB_S3_STORAGE_CLASS`, `PGB_S3_PART_SIZE_MIB`, `PGB_S3_CONDITIONAL_WRITES` |
//! | `gs://bucket/prefix` | `GOOGLE_APPLICATION_CREDENTIALS`, or `PGB_GCS_CREDENTIALS=application-default`; `STORAGE_EMULATOR_HOST` (an emulator: no credentials) |
//! | `az://container/prefix` | `AZURE_STORAGE_CONNECTION_STRING`, or `AZURE_STORAGE_ACCOUNT` with `AZURE_STORAGE_KEY` or `AZURE_STORAGE_SAS_TOKEN`; `PGB_AZURE_ENDPOINT` |
//!
//! Every object store also takes `PGB_STORAGE_RETRIES`, `PGB_STORAGE_RETRY_BUDGET_SECS`,
//! `PGB_STORAGE_TIMEOUT_SECS` and `PGB_STORAGE_IO_TIMEOUT_SECS` (retries and time limits of
//! single requests; docs/configuration.md).

use std::sync::Arc;

use pgb_core::Storage;
use pgb_storage_azure::{AzureConfig, AzureCredentials};
use pgb_storage_gcs::{GcsConfig, GcsCredentials};
use pgb_storage_s3::{
    AddressingStyle, RetryOptions, S3Config, S3Credentials, S3Encryption, Timeouts,
};

/// Looks up an environment variable (the binary passes `std::env::var`; tests pass a map).
pub(crate) type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Why a repository URL cannot be opened. One line, never containing a secret.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UrlError {
    /// The URL is malformed or names an unknown scheme.
    #[error("invalid repository URL {url}: {reason}")]
    Invalid { url: String, reason: String },
    /// The backend refused its configuration (e.g. missing credentials).
    #[error("repository {url}: {reason}")]
    Config { url: String, reason: String },
}

/// Opens the storage a repository URL names: `file:///path` (or a plain path),
/// `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`.
pub(crate) fn open_storage(url: &str, env: EnvLookup<'_>) -> Result<Arc<dyn Storage>, UrlError> {
    let _ = env;
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(UrlError::Invalid {
                url: url.to_owned(),
                reason: "file URLs need an absolute path: file:///var/backups/pgb".to_owned(),
            });
        }
        return open_local(url, path);
    }
    match url.split_once("://") {
        None => {
            let abs = std::path::absolute(url).map_err(|e| UrlError::Invalid {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
            open_local(url, &abs.to_string_lossy())
        }
        Some(("s3", rest)) => open_s3(url, rest, env),
        Some(("gs", rest)) => open_gcs(url, rest, env),
        Some(("az", rest)) => open_azure(url, rest, env),
        Some((scheme, _)) => Err(UrlError::Invalid {
            url: redact_url(url),
            reason: format!("unknown scheme {scheme:?}: use file://, s3://, gs:// or az://"),
        }),
    }
}

/// `bucket/prefix` of an object-store URL. Credentials and options never go in the URL
/// (it is printed and logged): they come from the environment.
fn bucket_and_prefix(url: &str, rest: &str, what: &str) -> Result<(String, String), UrlError> {
    let invalid = |reason: String| UrlError::Invalid {
        url: redact_url(url),
        reason,
    };
    if rest.contains(['?', '#']) {
        return Err(invalid(
            "query strings are not supported (credentials and options come from the environment)"
                .to_owned(),
        ));
    }
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.contains('@') {
        return Err(invalid(
            "credentials do not belong in the URL; set them in the environment".to_owned(),
        ));
    }
    if bucket.is_empty() {
        return Err(invalid(format!("missing {what} name")));
    }
    Ok((bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}

/// The first of `names` that is set to a non-empty value.
fn first(env: EnvLookup<'_>, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| {
        env(n)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    })
}

fn config_err(url: &str, reason: impl Into<String>) -> UrlError {
    UrlError::Config {
        url: redact_url(url),
        reason: reason.into(),
    }
}

fn parse_bool(url: &str, name: &str, value: &str) -> Result<bool, UrlError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(config_err(url, format!("{name} must be true or false"))),
    }
}

/// Retries and time limits of single requests, from `PGB_STORAGE_*` (the same for every
/// object store).
fn network(url: &str, env: EnvLookup<'_>) -> Result<(RetryOptions, Timeouts), UrlError> {
    let number = |name: &str| -> Result<Option<u64>, UrlError> {
        first(env, &[name])
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| config_err(url, format!("{name} must be a whole number")))
            })
            .transpose()
    };
    let mut retry = RetryOptions::default();
    let mut timeouts = Timeouts::default();
    if let Some(n) = number("PGB_STORAGE_RETRIES")? {
        retry = retry.with_max_retries(usize::try_from(n).unwrap_or(usize::MAX));
    }
    if let Some(s) = number("PGB_STORAGE_RETRY_BUDGET_SECS")? {
        retry = retry.with_budget(std::time::Duration::from_secs(s.max(1)));
    }
    if let Some(s) = number("PGB_STORAGE_TIMEOUT_SECS")? {
        timeouts = Timeouts::new(std::time::Duration::from_secs(s.max(1)), timeouts.io);
    }
    if let Some(s) = number("PGB_STORAGE_IO_TIMEOUT_SECS")? {
        timeouts = Timeouts::new(timeouts.request, std::time::Duration::from_secs(s.max(1)));
    }
    Ok((retry, timeouts))
}

fn built<S: Storage>(
    url: &str,
    res: Result<S, pgb_core::StorageError>,
) -> Result<Arc<dyn Storage>, UrlError> {
    res.map(|s| Arc::new(s) as Arc<dyn Storage>)
        .map_err(|e| config_err(url, e.to_string()))
}

fn open_s3(url: &str, rest: &str, env: EnvLookup<'_>) -> Result<Arc<dyn Storage>, UrlError> {
    let (bucket, prefix) = bucket_and_prefix(url, rest, "bucket")?;
    let mut cfg = S3Config::new(bucket).with_prefix(prefix).with_region(
        first(env, &["AWS_REGION", "AWS_DEFAULT_REGION"]).unwrap_or_else(|| "us-east-1".to_owned()),
    );
    if let Some(endpoint) = first(env, &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]) {
        cfg = cfg.with_endpoint(endpoint);
    }
    if let Some(v) = first(env, &["PGB_S3_FORCE_PATH_STYLE"]) {
        cfg = cfg.with_addressing(if parse_bool(url, "PGB_S3_FORCE_PATH_STYLE", &v)? {
            AddressingStyle::Path
        } else {
            AddressingStyle::VirtualHost
        });
    }
    let key_id = first(env, &["AWS_ACCESS_KEY_ID"]);
    let secret = first(env, &["AWS_SECRET_ACCESS_KEY"]);
    let mode = first(env, &["PGB_S3_CREDENTIALS"]).map(|m| m.to_ascii_lowercase());
    let creds = match (key_id, secret, mode.as_deref()) {
        (_, _, Some("default-chain")) => S3Credentials::DefaultChain,
        (_, _, Some("anonymous")) => S3Credentials::Anonymous,
        (_, _, Some(other)) if other != "static" => {
            return Err(config_err(
                url,
                "PGB_S3_CREDENTIALS must be static, default-chain or anonymous",
            ));
        }
        (Some(id), Some(secret), _) => {
            let c = S3Credentials::static_keys(id, secret);
            match first(env, &["AWS_SESSION_TOKEN"]) {
                Some(t) => c.with_session_token(t),
                None => c,
            }
        }
        (Some(_), None, _) => {
            return Err(config_err(
                url,
                "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not",
            ));
        }
        (None, Some(_), _) => {
            return Err(config_err(
                url,
                "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not",
            ));
        }
        (None, None, _) => match first(env, &["AWS_PROFILE"]) {
            Some(profile) => S3Credentials::Profile(profile),
            None => {
                return Err(config_err(
                    url,
                    "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or PGB_S3_CREDENTIALS=default-chain to use instance or pod roles)",
                ));
            }
        },
    };
    cfg = cfg.with_credentials(creds);
    let kms_key = first(env, &["PGB_S3_SSE_KMS_KEY_ID"]);
    match first(env, &["PGB_S3_SSE"])
        .map(|v| v.to_ascii_lowercase())
        .as_deref()
    {
        None if kms_key.is_some() => {
            cfg = cfg.with_encryption(S3Encryption::Kms { key_id: kms_key })
        }
        None => {}
        Some("aes256" | "s3" | "sse-s3") => {
            if kms_key.is_some() {
                return Err(config_err(
                    url,
                    "PGB_S3_SSE_KMS_KEY_ID needs PGB_S3_SSE=aws:kms, not AES256",
                ));
            }
            cfg = cfg.with_encryption(S3Encryption::S3Managed);
        }
        Some("aws:kms" | "kms" | "sse-kms") => {
            cfg = cfg.with_encryption(S3Encryption::Kms { key_id: kms_key })
        }
        Some("none" | "") => {}
        Some(_) => {
            return Err(config_err(
                url,
                "PGB_S3_SSE must be AES256 (SSE-S3) or aws:kms (SSE-KMS)",
            ));
        }
    }
    if let Some(class) = first(env, &["PGB_S3_STORAGE_CLASS"]) {
        cfg = cfg.with_storage_class(class);
    }
    if let Some(mib) = first(env, &["PGB_S3_PART_SIZE_MIB"]) {
        let mib: u64 = mib
            .parse()
            .ok()
            .filter(|m| (5..=5120).contains(m))
            .ok_or_else(|| {
                config_err(url, "PGB_S3_PART_SIZE_MIB must be a number from 5 to 5120")
            })?;
        cfg = cfg.with_part_size(mib * 1024 * 1024);
    }
    if let Some(v) = first(env, &["PGB_S3_CONDITIONAL_WRITES"]) {
        cfg = cfg.with_create_new_enforced(parse_bool(url, "PGB_S3_CONDITIONAL_WRITES", &v)?);
    }
    let (retry, timeouts) = network(url, env)?;
    built(url, cfg.with_retry(retry).with_timeouts(timeouts).build())
}

fn open_gcs(url: &str, rest: &str, env: EnvLookup<'_>) -> Result<Arc<dyn Storage>, UrlError> {
    let (bucket, prefix) = bucket_and_prefix(url, rest, "bucket")?;
    let mut cfg = GcsConfig::new(bucket).with_prefix(prefix);
    if let Some(host) = first(env, &["STORAGE_EMULATOR_HOST"]) {
        // The Google SDKs' convention: an emulator, reached without credentials. Emulators do
        // not enforce ifGenerationMatch, so create-only is declared as not enforced.
        let endpoint = if host.contains("://") {
            host
        } else {
            format!("http://{host}")
        };
        cfg = cfg
            .with_endpoint(endpoint)
            .with_credentials(GcsCredentials::Anonymous)
            .with_create_new_enforced(false);
    } else if let Some(path) = first(env, &["GOOGLE_APPLICATION_CREDENTIALS"]) {
        cfg = cfg.with_credentials(GcsCredentials::ServiceAccountFile(path.into()));
    } else {
        match first(env, &["PGB_GCS_CREDENTIALS"])
            .map(|m| m.to_ascii_lowercase())
            .as_deref()
        {
            Some("application-default") => {
                cfg = cfg.with_credentials(GcsCredentials::ApplicationDefault);
            }
            Some("anonymous") => cfg = cfg.with_credentials(GcsCredentials::Anonymous),
            Some(_) => {
                return Err(config_err(
                    url,
                    "PGB_GCS_CREDENTIALS must be application-default or anonymous",
                ));
            }
            None => {
                return Err(config_err(
                    url,
                    "no GCS credentials: set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file (or PGB_GCS_CREDENTIALS=application-default on GCE/GKE)",
                ));
            }
        }
    }
    let (retry, timeouts) = network(url, env)?;
    built(url, cfg.with_retry(retry).with_timeouts(timeouts).build())
}

fn open_azure(url: &str, rest: &str, env: EnvLookup<'_>) -> Result<Arc<dyn Storage>, UrlError> {
    let (container, prefix) = bucket_and_prefix(url, rest, "container")?;
    let account = first(env, &["AZURE_STORAGE_ACCOUNT"]).unwrap_or_default();
    let creds = if let Some(conn) = first(env, &["AZURE_STORAGE_CONNECTION_STRING"]) {
        AzureCredentials::ConnectionString(conn)
    } else {
        if account.is_empty() {
            return Err(config_err(
                url,
                "no Azure storage account: set AZURE_STORAGE_ACCOUNT (with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN), or AZURE_STORAGE_CONNECTION_STRING",
            ));
        }
        if let Some(key) = first(env, &["AZURE_STORAGE_KEY"]) {
            AzureCredentials::AccountKey(key)
        } else if let Some(sas) = first(env, &["AZURE_STORAGE_SAS_TOKEN"]) {
            AzureCredentials::SasToken(sas)
        } else {
            return Err(config_err(
                url,
                "no Azure credentials: set AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN (or AZURE_STORAGE_CONNECTION_STRING)",
            ));
        }
    };
    let mut cfg = AzureConfig::new(account, container)
        .with_prefix(prefix)
        .with_credentials(creds);
    if let Some(endpoint) = first(env, &["PGB_AZURE_ENDPOINT"]) {
        cfg = cfg.with_endpoint(endpoint);
    }
    let (retry, timeouts) = network(url, env)?;
    built(url, cfg.with_retry(retry).with_timeouts(timeouts).build())
}

fn open_local(url: &str, path: &str) -> Result<Arc<dyn Storage>, UrlError> {
    pgb_storage_local::FsStorage::open(path)
        .map(|s| Arc::new(s) as Arc<dyn Storage>)
        .map_err(|e| UrlError::Config {
            url: url.to_owned(),
            reason: e.to_string(),
        })
}

/// A URL safe to print: any `user:password@` part is replaced, and any query string (an Azure
/// SAS, a presigned signature) is cut off.
pub(crate) fn redact_url(url: &str) -> String {
    if let Some((base, _)) = url.split_once(['?', '#']) {
        return format!("{}?<redacted>", redact_url(base));
    }
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://***@{host}{path}"),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn with_env<T>(vars: &[(&str, &str)], f: impl FnOnce(EnvLookup<'_>) -> T) -> T {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let lookup = move |k: &str| map.get(k).cloned();
        f(&lookup)
    }

    fn open(url: &str, vars: &[(&str, &str)]) -> Result<Arc<dyn Storage>, UrlError> {
        with_env(vars, |env| open_storage(url, env))
    }

    fn config_reason(res: Result<Arc<dyn Storage>, UrlError>) -> String {
        match res {
            Err(UrlError::Config { reason, .. }) => reason,
            Err(e) => panic!("expected a config error, got {e}"),
            Ok(s) => panic!("expected a config error, got {s:?}"),
        }
    }

    #[test]
    fn bucket_and_prefix_are_parsed() {
        let p = |u: &str| {
            let (_, rest) = u.split_once("://").unwrap();
            bucket_and_prefix(u, rest, "bucket")
        };
        assert_eq!(p("s3://b").unwrap(), ("b".to_owned(), String::new()));
        assert_eq!(p("s3://b/").unwrap(), ("b".to_owned(), String::new()));
        assert_eq!(
            p("s3://b/x/y/").unwrap(),
            ("b".to_owned(), "x/y".to_owned())
        );
        assert!(matches!(p("s3://"), Err(UrlError::Invalid { .. })));
        assert!(matches!(p("s3:///x"), Err(UrlError::Invalid { .. })));
        assert!(matches!(
            p("s3://id:secret@b/x"),
            Err(UrlError::Invalid { .. })
        ));
        assert!(matches!(
            p("s3://b/x?versionId=1"),
            Err(UrlError::Invalid { .. })
        ));
    }

    #[test]
    fn s3_opens_with_static_keys() {
        let s = open(
            "s3://backups/prod/db1",
            &[
                ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
                ("AWS_SECRET_ACCESS_KEY", SECRET),
                ("AWS_SESSION_TOKEN", "token-token-token"),
                ("AWS_DEFAULT_REGION", "eu-west-1"),
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000"),
                ("PGB_S3_FORCE_PATH_STYLE", "true"),
                ("PGB_S3_SSE", "aws:kms"),
                ("PGB_S3_SSE_KMS_KEY_ID", "alias/pgb"),
                ("PGB_S3_STORAGE_CLASS", "STANDARD_IA"),
            ],
        )
        .expect("open");
        assert_eq!(s.info().scheme, "s3");
        assert_eq!(s.info().location, "s3://backups/prod/db1");
        let dbg = format!("{s:?}");
        assert!(
            !dbg.contains(SECRET) && !dbg.contains("token-token-token"),
            "{dbg}"
        );
    }

    #[test]
    fn s3_missing_credentials_name_the_variable() {
        let reason = config_reason(open("s3://b/p", &[]));
        assert!(
            reason.contains("AWS_ACCESS_KEY_ID") && reason.contains("AWS_SECRET_ACCESS_KEY"),
            "{reason}"
        );
        let reason = config_reason(open("s3://b/p", &[("AWS_ACCESS_KEY_ID", "AKID")]));
        assert!(reason.contains("AWS_SECRET_ACCESS_KEY is not"), "{reason}");
        let res = open("s3://b/p", &[("AWS_SECRET_ACCESS_KEY", SECRET)]);
        let text = match res {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a secret without a key id must not open"),
        };
        assert!(text.contains("AWS_ACCESS_KEY_ID is not"), "{text}");
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains('\n'), "{text}");
    }

    #[test]
    fn network_limits_come_from_the_environment() {
        let got = with_env(
            &[
                ("PGB_STORAGE_RETRIES", "7"),
                ("PGB_STORAGE_RETRY_BUDGET_SECS", "30"),
                ("PGB_STORAGE_TIMEOUT_SECS", "5"),
                ("PGB_STORAGE_IO_TIMEOUT_SECS", "9"),
            ],
            |env| network("s3://b", env),
        )
        .expect("valid");
        assert_eq!(got.0.max_retries, 7);
        assert_eq!(got.0.budget, std::time::Duration::from_secs(30));
        assert_eq!(got.1.request, std::time::Duration::from_secs(5));
        assert_eq!(got.1.io, std::time::Duration::from_secs(9));
        let defaults = with_env(&[], |env| network("s3://b", env)).expect("defaults");
        assert_eq!(defaults, (RetryOptions::default(), Timeouts::default()));
        let reason = config_reason(open(
            "gs://b",
            &[
                ("STORAGE_EMULATOR_HOST", "127.0.0.1:1"),
                ("PGB_STORAGE_RETRY_BUDGET_SECS", "soon"),
            ],
        ));
        assert!(
            reason.contains("PGB_STORAGE_RETRY_BUDGET_SECS must be a whole number"),
            "{reason}"
        );
    }

    #[test]
    fn s3_profile_and_default_chain_are_opt_in() {
        open("s3://b", &[("AWS_PROFILE", "backup")]).expect("profile");
        open("s3://b", &[("PGB_S3_CREDENTIALS", "default-chain")]).expect("default chain");
        let reason = config_reason(open("s3://b", &[("PGB_S3_CREDENTIALS", "magic")]));
        assert!(reason.contains("PGB_S3_CREDENTIALS"), "{reason}");
    }

    #[test]
    fn s3_bad_knobs_are_config_errors() {
        let keys = [
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
        ];
        for (name, value) in [
            ("PGB_S3_SSE", "rot13"),
            ("PGB_S3_FORCE_PATH_STYLE", "maybe"),
            ("PGB_S3_PART_SIZE_MIB", "1"),
            ("AWS_ENDPOINT_URL", "127.0.0.1:9000"),
        ] {
            let mut vars = keys.to_vec();
            vars.push((name, value));
            let res = open("s3://b", &vars);
            let text = match res {
                Err(e) => e.to_string(),
                Ok(_) => panic!("{name}={value} must be refused"),
            };
            assert!(!text.contains(SECRET), "{text}");
        }
    }

    #[test]
    fn gcs_needs_credentials_or_an_emulator() {
        let reason = config_reason(open("gs://b/p", &[]));
        assert!(
            reason.contains("GOOGLE_APPLICATION_CREDENTIALS"),
            "{reason}"
        );
        let s = open("gs://b/p", &[("STORAGE_EMULATOR_HOST", "127.0.0.1:4443")]).expect("emulator");
        assert_eq!(s.info().location, "gs://b/p");
        assert!(
            !s.info().capabilities.create_new,
            "emulators do not enforce create-only"
        );
        let reason = config_reason(open(
            "gs://b",
            &[("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/sa.json")],
        ));
        assert!(reason.contains("/nonexistent/sa.json"), "{reason}");
    }

    #[test]
    fn azure_needs_an_account_and_credentials() {
        let reason = config_reason(open("az://c/p", &[]));
        assert!(reason.contains("AZURE_STORAGE_ACCOUNT"), "{reason}");
        let reason = config_reason(open("az://c/p", &[("AZURE_STORAGE_ACCOUNT", "acct")]));
        assert!(
            reason.contains("AZURE_STORAGE_KEY") && reason.contains("AZURE_STORAGE_SAS_TOKEN"),
            "{reason}"
        );
        let key = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS1ub3QtcmVhbA==";
        let s = open(
            "az://c/p",
            &[
                ("AZURE_STORAGE_ACCOUNT", "acct"),
                ("AZURE_STORAGE_KEY", key),
            ],
        )
        .expect("account key");
        assert_eq!(s.info().location, "az://c/p");
        assert!(!format!("{s:?}").contains(key));
        let conn = format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={key};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
        );
        open("az://c", &[("AZURE_STORAGE_CONNECTION_STRING", &conn)]).expect("connection string");
        open(
            "az://c",
            &[
                ("AZURE_STORAGE_ACCOUNT", "acct"),
                ("AZURE_STORAGE_SAS_TOKEN", "?sv=1&sig=abc"),
            ],
        )
        .expect("sas");
    }

    #[test]
    fn urls_with_secrets_are_redacted() {
        let res = open("az://c/p?sv=2022-11-02&sig=SECRETSIG", &[]);
        let text = match res {
            Err(e) => e.to_string(),
            Ok(_) => panic!("query strings are refused"),
        };
        assert!(!text.contains("SECRETSIG"), "{text}");
        assert_eq!(redact_url("s3://id:pw@b/p"), "s3://***@b/p");
        assert_eq!(redact_url("az://c/p?sig=x"), "az://c/p?<redacted>");
        assert_eq!(redact_url("s3://b/p"), "s3://b/p");
        let res = open("s3://id:SECRETPW@b/p", &[]);
        let text = match res {
            Err(e) => e.to_string(),
            Ok(_) => panic!("credentials in the URL are refused"),
        };
        assert!(!text.contains("SECRETPW"), "{text}");
    }

    #[test]
    fn unknown_schemes_are_refused() {
        assert!(matches!(
            open("ftp://h/x", &[]),
            Err(UrlError::Invalid { .. })
        ));
    }
}
