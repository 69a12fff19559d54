//! Connection settings parsed from a `postgres://` URL, with the password kept out of argv.

use std::fmt;

/// A database connection: a libpq URL without its password, plus the password on the side.
///
/// The password reaches child processes only through their environment (`PGPASSWORD`), never
/// argv; `Debug` and [`ConnConfig::redacted`] never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnConfig {
    scheme: String,
    user: Option<String>,
    password: Option<String>,
    /// `host[:port][,host2[:port2]]`, percent-encoded as given.
    hosts: String,
    dbname: Option<String>,
    /// Query parameters other than `password`, as given.
    params: Vec<(String, String)>,
}

/// A connection URL that did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid database URL: {0}")]
pub struct InvalidUrl(String);

fn pct_decode(s: &str) -> Result<String, InvalidUrl> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| InvalidUrl("bad percent-encoding".to_owned()))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| InvalidUrl("percent-encoding is not UTF-8".to_owned()))
}

fn pct_encode(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

impl ConnConfig {
    /// Parses `postgres://[user[:password]@][host[:port]][/dbname][?param=value&...]`.
    ///
    /// # Errors
    /// [`InvalidUrl`] for another scheme or malformed encoding. The message never includes the
    /// password.
    pub fn parse(url: &str) -> Result<Self, InvalidUrl> {
        let (scheme, rest) = url
            .split_once("://")
            .filter(|(s, _)| *s == "postgres" || *s == "postgresql")
            .ok_or_else(|| InvalidUrl("expected postgres://user@host:port/dbname".to_owned()))?;
        let (main, query) = match rest.split_once('?') {
            Some((m, q)) => (m, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match main.find('/') {
            Some(i) => (&main[..i], Some(&main[i + 1..])),
            None => (main, None),
        };
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, mut password) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((u, p)) => (Some(pct_decode(u)?), Some(pct_decode(p)?)),
                None => (Some(pct_decode(u)?), None),
            },
            None => (None, None),
        };
        let dbname = match path {
            Some(p) if !p.is_empty() => Some(pct_decode(p)?),
            _ => None,
        };
        let mut params = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if k == "password" {
                password = Some(pct_decode(v)?);
            } else {
                params.push((k.to_owned(), v.to_owned()));
            }
        }
        Ok(Self {
            scheme: scheme.to_owned(),
            user: user.filter(|u| !u.is_empty()),
            password: password.filter(|p| !p.is_empty()),
            hosts: hosts.to_owned(),
            dbname,
            params,
        })
    }

    /// Whether the URL carried a password.
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// The password, for handing to a child process's environment (`PGPASSWORD`, as a
    /// `post_restore` hook gets it); never for argv or logs.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// Sets the password (from `PGPASSWORD`, a file, a secret store...).
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into()).filter(|p| !p.is_empty());
        self
    }

    /// The database name, if the URL names one.
    pub fn dbname(&self) -> Option<&str> {
        self.dbname.as_deref()
    }

    /// The same server and credentials, another database.
    pub fn with_dbname(&self, dbname: &str) -> Self {
        let mut c = self.clone();
        c.dbname = Some(dbname.to_owned());
        c
    }

    /// The same connection as a physical replication connection (`replication=true`), which
    /// accepts replication commands such as `IDENTIFY_SYSTEM`.
    pub(crate) fn replication(&self) -> Self {
        let mut c = self.clone();
        c.params.retain(|(k, _)| k != "replication");
        c.params.push(("replication".to_owned(), "true".to_owned()));
        c
    }

    /// Whether the URL names a host (otherwise libpq's PGHOST or the local socket applies).
    pub fn has_host(&self) -> bool {
        !self.hosts.is_empty()
    }

    /// `host:port` for display (`local socket` when the URL names no host).
    pub fn server(&self) -> String {
        if self.hosts.is_empty() {
            "local socket".to_owned()
        } else {
            pct_decode(&self.hosts).unwrap_or_else(|_| self.hosts.clone())
        }
    }

    /// The URL without the password, safe for argv and logs.
    pub fn redacted(&self) -> String {
        let mut s = format!("{}://", self.scheme);
        if let Some(u) = &self.user {
            s.push_str(&pct_encode(u));
            s.push('@');
        }
        s.push_str(&self.hosts);
        if let Some(d) = &self.dbname {
            s.push('/');
            s.push_str(&pct_encode(d));
        }
        if !self.params.is_empty() {
            s.push('?');
            let q: Vec<String> = self
                .params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            s.push_str(&q.join("&"));
        }
        s
    }

    /// Environment for a child process: the password, and a connect timeout unless the URL
    /// sets one (so an unreachable host fails in seconds, not minutes).
    pub(crate) fn child_env(&self) -> Vec<(&'static str, String)> {
        let mut env = Vec::new();
        if let Some(p) = &self.password {
            env.push(("PGPASSWORD", p.clone()));
        }
        if !self.params.iter().any(|(k, _)| k == "connect_timeout") {
            env.push(("PGCONNECT_TIMEOUT", "10".to_owned()));
        }
        env
    }
}

impl fmt::Debug for ConnConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnConfig")
            .field("url", &self.redacted())
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_redacts() {
        let c =
            ConnConfig::parse("postgres://bob:s%40cret@db.example:5433/app%20db?sslmode=require")
                .unwrap();
        assert_eq!(c.dbname(), Some("app db"));
        assert_eq!(c.server(), "db.example:5433");
        assert_eq!(
            c.redacted(),
            "postgres://bob@db.example:5433/app%20db?sslmode=require"
        );
        assert!(!format!("{c:?}").contains("s@cret"));
        assert!(c.child_env().contains(&("PGPASSWORD", "s@cret".to_owned())));
    }

    #[test]
    fn password_in_query_is_moved_out() {
        let c = ConnConfig::parse("postgresql://h/db?password=hunter2&application_name=x").unwrap();
        assert!(c.has_password());
        assert!(!c.redacted().contains("hunter2"));
    }

    #[test]
    fn other_schemes_are_refused_without_echoing_the_url() {
        let e = ConnConfig::parse("mysql://u:topsecret@h/db").unwrap_err();
        assert!(!e.to_string().contains("topsecret"));
    }
}
