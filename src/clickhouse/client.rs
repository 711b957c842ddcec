//! A client for ClickHouse's HTTP interface: statements, queries and
//! inserts, over a small blocking HTTP client (`ureq`).
//!
//! Credentials come from the URL (`http://user:password@host:8123/`) or
//! from `CLICKHOUSE_USER` and `CLICKHOUSE_PASSWORD`, travel as HTTP basic
//! authentication, and appear in no message: [`Server`]'s `Display` and
//! every [`ClickHouseError`] leave the password out.

use std::fmt;
use std::io::Read as _;
use std::time::Duration;

use base64::Engine as _;

/// Where a ClickHouse server's HTTP interface is, and who we are to it.
#[derive(Clone)]
pub struct Server {
    /// `scheme://host:port/path`, without credentials or query.
    base: String,
    user: Option<String>,
    password: Option<String>,
    /// The URL's own query parameters (settings such as `database`).
    params: Vec<(String, String)>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Server({self})")
    }
}

impl fmt::Display for Server {
    /// The URL without the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.user {
            Some(user) => {
                let (scheme, rest) = self.base.split_once("://").unwrap_or(("http", &self.base));
                write!(f, "{scheme}://{user}@{rest}")
            }
            None => f.write_str(&self.base),
        }
    }
}

impl Server {
    /// Parses `http://[user[:password]@]host[:port][/][?setting=value&...]`
    /// (`https` too, where the client is built with TLS). User and password
    /// missing from the URL are taken from `CLICKHOUSE_USER` and
    /// `CLICKHOUSE_PASSWORD` when set.
    pub fn parse(url: &str) -> Result<Server, ClickHouseError> {
        let bad = |why: &str| {
            ClickHouseError::Url(format!(
                "{why} (expected http://[user[:password]@]host:port/)"
            ))
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        if scheme != "http" && scheme != "https" {
            return Err(bad(&format!("scheme {scheme:?} is not http or https")));
        }
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let (path, query) = match tail.split_once('?') {
            Some((p, q)) => (p, q),
            None => (tail, ""),
        };
        let path = if path.is_empty() { "/" } else { path };
        let mut user = None;
        let mut password = None;
        if let Some(info) = userinfo {
            let (u, p) = match info.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (info, None),
            };
            user = Some(percent_decode(u));
            password = p.map(percent_decode);
        }
        if user.is_none() {
            user = std::env::var("CLICKHOUSE_USER")
                .ok()
                .filter(|u| !u.is_empty());
        }
        if password.is_none() {
            password = std::env::var("CLICKHOUSE_PASSWORD").ok();
        }
        let params = query
            .split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (percent_decode(k), percent_decode(v)),
                None => (percent_decode(kv), String::new()),
            })
            .collect();
        Ok(Server {
            base: format!("{scheme}://{host}{path}"),
            user,
            password,
            params,
        })
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What went wrong talking to ClickHouse.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClickHouseError {
    /// The URL could not be parsed.
    Url(String),
    /// The server could not be reached, or the connection broke: worth
    /// retrying.
    Connect(String),
    /// The server answered with an error: its HTTP status, its error code
    /// (`Code: 60` is an unknown table, `516` or `192` a refused user or
    /// password) and its message.
    Server {
        /// HTTP status.
        status: u16,
        /// ClickHouse's error code, when the message carries one.
        code: Option<u32>,
        /// The server's message, first line.
        message: String,
    },
    /// The server's answer was longer than this many bytes
    /// ([`Client::MAX_ANSWER_BYTES`]): it was not read.
    TooLarge(u64),
}

impl ClickHouseError {
    /// Whether trying again may help: a connection that failed or broke,
    /// or a server that says it is overloaded or shutting down.
    pub fn is_transient(&self) -> bool {
        match self {
            ClickHouseError::Connect(_) => true,
            // TOO_MANY_SIMULTANEOUS_QUERIES, TIMEOUT_EXCEEDED,
            // SOCKET_TIMEOUT, NETWORK_ERROR, ABORTED, TOO_MANY_PARTS.
            ClickHouseError::Server { status, code, .. } => {
                *status == 503 || matches!(code, Some(202 | 159 | 209 | 210 | 236 | 252))
            }
            ClickHouseError::Url(_) | ClickHouseError::TooLarge(_) => false,
        }
    }
}

impl fmt::Display for ClickHouseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClickHouseError::Url(why) => write!(f, "bad ClickHouse URL: {why}"),
            ClickHouseError::Connect(why) => write!(f, "cannot reach ClickHouse: {why}"),
            ClickHouseError::TooLarge(limit) => {
                write!(f, "ClickHouse's answer is larger than {} MiB", limit >> 20)
            }
            ClickHouseError::Server {
                status, message, ..
            } => {
                write!(f, "ClickHouse refused (HTTP {status}): {message}")
            }
        }
    }
}

impl std::error::Error for ClickHouseError {}

/// A blocking client for one server's HTTP interface.
///
/// ```no_run
/// use dynostats::clickhouse::{Client, Server};
///
/// let client = Client::new(Server::parse("http://127.0.0.1:8123/")?);
/// let n = client.query("SELECT count() FROM dynostats.records")?;
/// println!("{} records", n.trim());
/// # Ok::<(), dynostats::clickhouse::ClickHouseError>(())
/// ```
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    server: Server,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Client({})", self.server)
    }
}

impl Client {
    /// How long one request may take before it counts as a broken
    /// connection, unless set with [`Client::with_timeout`].
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

    /// The largest response read: a larger one is an error
    /// ([`ClickHouseError::TooLarge`]), never cut short silently.
    pub const MAX_ANSWER_BYTES: u64 = 64 << 20;

    /// A client for `server`.
    pub fn new(server: Server) -> Client {
        Client::with_timeout(server, Client::DEFAULT_TIMEOUT)
    }

    /// A client for `server` whose requests end after `timeout`
    /// (connecting takes at most 10 s of it).
    pub fn with_timeout(server: Server, timeout: Duration) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout.min(Duration::from_secs(10))))
            .http_status_as_error(false)
            .build()
            .into();
        Client { agent, server }
    }

    /// The server, for messages (without its password).
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Runs `sql` (a statement or a query) and returns the response body.
    pub fn query(&self, sql: &str) -> Result<String, ClickHouseError> {
        self.post(&[], sql.as_bytes())
    }

    /// Runs `sql` with query `settings` (name, value) added to the URL.
    pub fn query_with(
        &self,
        sql: &str,
        settings: &[(&str, &str)],
    ) -> Result<String, ClickHouseError> {
        self.post(settings, sql.as_bytes())
    }

    /// Inserts `data` with `insert` (e.g. `INSERT INTO db.t FORMAT
    /// JSONEachRow`), with query `settings` added to the URL.
    pub fn insert(
        &self,
        insert: &str,
        settings: &[(&str, &str)],
        data: &[u8],
    ) -> Result<(), ClickHouseError> {
        let mut all: Vec<(&str, &str)> = settings.to_vec();
        all.push(("query", insert));
        self.post(&all, data).map(drop)
    }

    /// The names of the columns of each table of `database` on the server
    /// (`system.columns`), by table; empty for a database that is not
    /// there.
    pub fn columns(
        &self,
        database: &str,
    ) -> Result<std::collections::BTreeMap<String, Vec<String>>, ClickHouseError> {
        // A string literal (18.16 has no query parameters).
        let literal = database.replace('\\', "\\\\").replace('\'', "\\'");
        let text = self.query(&format!(
            "SELECT table, name FROM system.columns WHERE database = '{literal}' \
             FORMAT TabSeparated"
        ))?;
        let mut out = std::collections::BTreeMap::<String, Vec<String>>::new();
        for line in text.lines() {
            if let Some((table, column)) = line.split_once('\t') {
                out.entry(table.to_string())
                    .or_default()
                    .push(column.to_string());
            }
        }
        Ok(out)
    }

    /// Whether `database`'s `profile_nodes` has the columns of schema
    /// version 4 (`scope_first`, `scope_inclusive`). A writer into a table
    /// without them (a database not yet upgraded) has the server skip
    /// them: `input_format_skip_unknown_fields`.
    pub fn has_scope_columns(&self, database: &str) -> Result<bool, ClickHouseError> {
        let columns = self.columns(database)?;
        Ok(columns.get("profile_nodes").is_some_and(|c| {
            super::schema::ADDED_IN_4
                .iter()
                .all(|a| c.iter().any(|h| h == a))
        }))
    }

    /// The server's version, `(major, minor)`.
    pub fn version(&self) -> Result<(u32, u32), ClickHouseError> {
        let text = self.query("SELECT version()")?;
        let mut parts = text.trim().split('.').map(|p| p.parse::<u32>().ok());
        match (parts.next().flatten(), parts.next().flatten()) {
            (Some(major), Some(minor)) => Ok((major, minor)),
            _ => Err(ClickHouseError::Server {
                status: 200,
                code: None,
                message: format!("unexpected version {:?}", text.trim()),
            }),
        }
    }

    fn post(&self, settings: &[(&str, &str)], body: &[u8]) -> Result<String, ClickHouseError> {
        let mut request = self.agent.post(&self.server.base);
        for (k, v) in &self.server.params {
            request = request.query(k, v);
        }
        for (k, v) in settings {
            request = request.query(*k, *v);
        }
        if let Some(user) = &self.server.user {
            let pair = format!("{user}:{}", self.server.password.as_deref().unwrap_or(""));
            let token = base64::engine::general_purpose::STANDARD.encode(pair);
            request = request.header("Authorization", format!("Basic {token}"));
        }
        let mut response = match request.send(body) {
            Ok(r) => r,
            Err(e) => return Err(ClickHouseError::Connect(self.scrub(&e.to_string()))),
        };
        let status = response.status().as_u16();
        let mut text = String::new();
        if let Err(e) = response
            .body_mut()
            .as_reader()
            .take(Client::MAX_ANSWER_BYTES + 1)
            .read_to_string(&mut text)
        {
            return Err(ClickHouseError::Connect(
                self.scrub(&format!("the response broke off: {e}")),
            ));
        }
        if text.len() as u64 > Client::MAX_ANSWER_BYTES {
            // Never a cut answer taken for a whole one.
            return Err(ClickHouseError::TooLarge(Client::MAX_ANSWER_BYTES));
        }
        if status == 200 {
            return Ok(text);
        }
        Err(server_error(status, &self.scrub(&text)))
    }

    /// `text` without the password, should a message ever echo it.
    fn scrub(&self, text: &str) -> String {
        match &self.server.password {
            Some(p) if !p.is_empty() => text.replace(p.as_str(), "<password>"),
            _ => text.to_string(),
        }
    }
}

/// The error of a non-200 answer: ClickHouse writes `Code: N, e.displayText()
/// = DB::Exception: ...` (old) or `Code: N. DB::Exception: ...` (current).
fn server_error(status: u16, text: &str) -> ClickHouseError {
    let text = text.trim();
    let code = text
        .strip_prefix("Code: ")
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok());
    let first = text
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(2000)
        .collect();
    ClickHouseError::Server {
        status,
        code,
        message: first,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_display_without_the_password() {
        let s = Server::parse("http://ann:s%40cret@ch.example:8123/?database=perf&x=1").unwrap();
        assert_eq!(s.base, "http://ch.example:8123/");
        assert_eq!(s.user.as_deref(), Some("ann"));
        assert_eq!(s.password.as_deref(), Some("s@cret"));
        assert_eq!(
            s.params,
            [("database".into(), "perf".into()), ("x".into(), "1".into())]
        );
        assert_eq!(s.to_string(), "http://ann@ch.example:8123/");
        assert!(!format!("{s:?}").contains("cret"));
        assert!(Server::parse("ch.example:8123").is_err());
        assert!(Server::parse("ftp://h/").is_err());
        assert!(Server::parse("http:///").is_err());
    }

    #[test]
    fn server_errors_keep_the_code() {
        let e = server_error(
            404,
            "Code: 60, e.displayText() = DB::Exception: Table x.y doesn't exist., e.what() = DB::Exception\n",
        );
        assert!(
            matches!(
                e,
                ClickHouseError::Server {
                    status: 404,
                    code: Some(60),
                    ..
                }
            ),
            "{e:?}"
        );
        let e = server_error(
            500,
            "Code: 516. DB::Exception: default: Authentication failed. (AUTHENTICATION_FAILED)",
        );
        assert!(matches!(
            e,
            ClickHouseError::Server {
                code: Some(516),
                ..
            }
        ));
        assert!(!e.is_transient());
        assert!(ClickHouseError::Connect("refused".into()).is_transient());
    }
}
