//! A ClickHouse server of the test's own: Debian's `clickhouse-server`
//! (18.16) started on 127.0.0.1 with its configuration, data and logs in a
//! temporary directory, queried with `clickhouse-client` (the native
//! protocol: nothing of dynostats in the path). Tests skip, saying why,
//! where the binary is missing, unless `DYNOSTATS_REQUIRE_CLICKHOUSE=1`.
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
