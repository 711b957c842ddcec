//! A ClickHouse server of the test's own: Debian's `clickhouse-server`
//! (18.16) started on 127.0.0.1 with its configuration, data and logs in a
//! temporary directory, queried with `clickhouse-client` (the native
//! protocol: nothing of dynostats in the path); and current ClickHouse,
//! chdb behind the HTTP stand-in `tests/clickhouse/chdb_http.py`
//! ([`Standin`]). Tests skip, saying why, where the binary or chdb is
//! missing, unless `DYNOSTATS_REQUIRE_CLICKHOUSE=1`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const REQUIRE: &str = "DYNOSTATS_REQUIRE_CLICKHOUSE";

/// Skips (prints why, returns false) or, when [`REQUIRE`] is 1, fails.
pub fn skip(test: &str, reason: &str) -> bool {
    if std::env::var(REQUIRE).as_deref() == Ok("1") {
        panic!("{REQUIRE}=1, but {test} would skip: {reason}");
    }
    eprintln!("SKIP {test}: {reason}");
    false
}

fn spawn(binary: &std::path::Path, dir: &std::path::Path) -> Child {
    Command::new(binary)
        .arg(format!("--config-file={}/config.xml", dir.display()))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", binary.display()))
}

pub fn server_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/bin".into()])
        .map(|d| d.join("clickhouse-server"))
        .find(|p| p.is_file())
}

/// A free TCP port on 127.0.0.1 (free when asked; the server binds it
/// right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A ClickHouse server of its own: config, data and logs in a temporary
/// directory, ports on 127.0.0.1, killed when dropped.
pub struct Server {
    child: Child,
    binary: PathBuf,
    dir: tempfile::TempDir,
    pub http: u16,
    pub tcp: u16,
}

impl Server {
    /// Starts a server; `shards` (TCP ports) puts a cluster `two` with
    /// one shard per port into its `remote_servers`.
    pub fn start(test: &str, tcp: u16, shards: &[u16]) -> Option<Server> {
        Server::start_at(test, free_port(), tcp, shards)
    }

    /// [`Server::start`] with its HTTP interface on `http`.
    pub fn start_at(test: &str, http: u16, tcp: u16, shards: &[u16]) -> Option<Server> {
        let Some(binary) = server_binary() else {
            skip(test, "no clickhouse-server in PATH, /usr/sbin or /usr/bin");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let cluster: String = shards
            .iter()
            .map(|p| {
                format!("<shard><replica><host>127.0.0.1</host><port>{p}</port></replica></shard>")
            })
            .collect();
        let config = format!(
            r#"<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/error.log</errorlog><console>0</console></logger>
  <http_port>{http}</http_port>
  <tcp_port>{tcp}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>{d}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>53687091</mark_cache_size>
  <uncompressed_cache_size>53687091</uncompressed_cache_size>
  <max_concurrent_queries>20</max_concurrent_queries>
  <remote_servers><two>{cluster}</two></remote_servers>
</yandex>
"#
        );
        let users = r#"<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users>
    <default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default>
    <loader><password>s3cret-pw</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></loader>
  </users>
  <quotas><default></default></quotas>
</yandex>
"#;
        std::fs::write(dir.path().join("config.xml"), config).unwrap();
        std::fs::write(dir.path().join("users.xml"), users).unwrap();
        let child = spawn(&binary, dir.path());
        let mut server = Server {
            child,
            binary,
            dir,
            http,
            tcp,
        };
        server.wait_ready();
        Some(server)
    }

    /// Kills the server at once (SIGKILL: no flush, no goodbye).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on its ports and data.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn(&self.binary, self.dir.path());
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "clickhouse-server exited ({status}): {}",
                    std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
                );
            }
            if self.ping() {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "clickhouse-server did not answer /ping in 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.http)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        if s.write_all(b"GET /ping HTTP/1.0\r\n\r\n").is_err() {
            return false;
        }
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer.ends_with("Ok.\n")
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.http)
    }

    /// Runs `sql` with Debian's `clickhouse-client` (the native TCP
    /// protocol: nothing of dynostats in the path), rows as TSV.
    pub fn query(&self, sql: &str) -> Vec<Vec<String>> {
        let out = Command::new("clickhouse-client")
            .args(["--host", "127.0.0.1", "--port", &self.tcp.to_string()])
            .args(["--query", sql])
            .output()
            .expect("clickhouse-client");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut rows: Vec<Vec<String>> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect();
        rows.sort();
        rows
    }

    /// Runs each statement (e.g. `Schema::statements`), failing on the
    /// first the server refuses.
    pub fn apply<'a>(&self, statements: impl IntoIterator<Item = &'a str>) {
        for sql in statements {
            self.query(sql);
        }
    }

    pub fn count(&self, table: &str) -> u64 {
        self.query(&format!("SELECT count() FROM {table}"))[0][0]
            .parse()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether python3 can import chdb (the current ClickHouse engine, in
/// process); skips (or fails under [`REQUIRE`]) when not.
pub fn chdb_available(test: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import chdb"])
        .status()
        .is_ok_and(|s| s.success());
    ok || skip(test, "python3 cannot import chdb (pip install chdb)")
}

/// Current ClickHouse over HTTP: chdb behind the stand-in
/// `tests/clickhouse/chdb_http.py` (the query's URL settings applied by
/// the engine; a record of the requests; answers it can be told to lose),
/// killed when dropped.
pub struct Standin {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl Standin {
    /// Starts the stand-in on a fresh database, or skips (returns `None`)
    /// where chdb is missing.
    pub fn start(test: &str) -> Option<Standin> {
        if !chdb_available(test) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("port");
        let child = Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/clickhouse/chdb_http.py"
            ))
            .arg(dir.path().join("data"))
            .arg(&port_file)
            .spawn()
            .expect("python3");
        let mut standin = Standin {
            child,
            dir,
            port: 0,
        };
        let started = Instant::now();
        standin.port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                break p.trim().parse().expect("the stand-in's port");
            }
            if let Ok(Some(status)) = standin.child.try_wait() {
                panic!("the chdb stand-in exited ({status})");
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the chdb stand-in did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Some(standin)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Runs `sql` over a bare HTTP/1.0 request (nothing of dynostats in
    /// the path), rows as TSV, sorted; panics on an error.
    pub fn query(&self, sql: &str) -> Vec<Vec<String>> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("the stand-in");
        let request = format!(
            "POST / HTTP/1.0\r\nContent-Length: {}\r\n\r\n{sql}",
            sql.len()
        );
        s.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        assert!(head.starts_with("HTTP/1.0 200"), "{sql}: {answer}");
        let mut rows: Vec<Vec<String>> = body
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect();
        rows.sort();
        rows
    }

    pub fn count(&self, table: &str) -> u64 {
        self.query(&format!("SELECT count() FROM {table}"))[0][0]
            .parse()
            .unwrap()
    }

    /// The requests so far, as the stand-in recorded them: `statement`,
    /// `settings` (name to value), `status`, `lost`, and for an insert
    /// `rows` (the lines of its body).
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The recorded requests that inserted into `table` (e.g.
    /// `dynostats.records`), in order.
    pub fn inserts_into(&self, table: &str) -> Vec<serde_json::Value> {
        let prefix = format!("INSERT INTO {table} ");
        self.requests()
            .into_iter()
            .filter(|r| {
                r["statement"]
                    .as_str()
                    .is_some_and(|s| s.starts_with(&prefix))
            })
            .collect()
    }

    /// The `n`th INSERT from now (1: the next) is executed and its answer
    /// lost: the connection closes without one.
    pub fn lose_answer_of_insert(&self, n: u32) {
        std::fs::write(self.dir.path().join("lose"), n.to_string()).unwrap();
    }
}

impl Drop for Standin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
