//! A Fluentd Forward protocol collector for tests, on 127.0.0.1: decodes
//! with `rmpv` (not the crate's types), checks the framing of every
//! Forward-mode message, acks, runs the shared-key handshake, and can be
//! stopped and restarted on the same port.
// Each test file uses a different part of this module.
#![allow(dead_code)]

use std::io::{BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rmpv::Value;
use sha2::{Digest, Sha512};

/// Generous bound for waits that should take milliseconds.
pub const WAIT: Duration = Duration::from_secs(20);
const COLLECTOR_HOST: &str = "test-collector";
const NONCE: &[u8] = &[0xff, 0x00, 0x10, 0x80, 7, 7, 7, 7];

#[derive(Clone, Default)]
pub struct CollectorConfig {
    /// Answer every chunk that asks for it with `{"ack": id}`.
    pub ack: bool,
    /// Require the handshake with this key.
    pub shared_key: Option<String>,
    /// Accept any PING and sign the PONG with this key instead.
    pub impostor_key: Option<String>,
    /// Read this many chunks, then close each one's connection unacked.
    pub drop_unacked: usize,
    /// While set, read every chunk and keep it (in `Log::unacked`) but
    /// answer nothing, like a frozen collector that still takes bytes in.
    pub frozen: Option<Arc<AtomicBool>>,
    /// Keep counts only (`Log::counted_records`, `Log::distinct_records`),
    /// not the messages: for long runs.
    pub count_only: bool,
}

#[derive(Clone, Debug)]
pub struct Message {
    pub tag: String,
    pub chunk: Option<String>,
    pub entries: Vec<(Value, Value)>,
}

#[derive(Default)]
pub struct Log {
    pub messages: Vec<Message>,
    pub unacked: Vec<Message>,
    pub errors: Vec<String>,
    pub handshakes_ok: usize,
    pub handshakes_rejected: usize,
    /// With `count_only`: records of every acked message, repeats included.
    pub counted_records: u64,
    /// With `count_only`: records of acked messages whose chunk id differs
    /// from the previous message's (a sink sends one chunk at a time, so a
    /// repeat is always of the last chunk it sent).
    pub distinct_records: u64,
    /// With `count_only`: messages that repeated the previous chunk id.
    pub repeated_chunks: u64,
    pub last_chunk: Option<String>,
}

impl Log {
    pub fn records(&self) -> Vec<(Value, Value)> {
        self.messages
            .iter()
            .flat_map(|m| m.entries.iter().cloned())
            .collect()
    }
}

pub struct Collector {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    handlers: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Collector {
    pub fn start(config: CollectorConfig, log: Arc<Mutex<Log>>) -> Collector {
        Collector::start_at("127.0.0.1:0".parse().unwrap(), config, log)
    }

    pub fn start_at(addr: SocketAddr, config: CollectorConfig, log: Arc<Mutex<Log>>) -> Collector {
        let started = Instant::now();
        let listener = loop {
            match TcpListener::bind(addr) {
                Ok(l) => break l,
                Err(e) if started.elapsed() < WAIT => {
                    eprintln!("bind {addr}: {e}; retrying");
                    thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("cannot bind the collector to {addr}: {e}"),
            }
        };
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let handlers = Arc::new(Mutex::new(Vec::new()));
        let drop_unacked = Arc::new(Mutex::new(config.drop_unacked));
        let accept = {
            let (stop, conns, handlers) = (stop.clone(), conns.clone(), handlers.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            stream.set_nonblocking(false).unwrap();
                            conns.lock().unwrap().push(stream.try_clone().unwrap());
                            let (config, log, drop_unacked) =
                                (config.clone(), log.clone(), drop_unacked.clone());
                            let h = thread::spawn(move || serve(stream, config, log, drop_unacked));
                            handlers.lock().unwrap().push(h);
                        }
                        Err(_) => thread::sleep(Duration::from_millis(2)),
                    }
                }
            })
        };
        Collector {
            addr,
            stop,
            accept: Some(accept),
            conns,
            handlers,
        }
    }

    /// Closes the listening socket and every connection.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.accept.take().unwrap().join().unwrap();
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
        let handlers: Vec<_> = self.handlers.lock().unwrap().drain(..).collect();
        for h in handlers {
            h.join().unwrap();
        }
    }
}

fn sha512_hex(parts: &[&[u8]]) -> String {
    let mut h = Sha512::new();
    for p in parts {
        h.update(p);
    }
    hex::encode(h.finalize())
}

fn send(stream: &mut TcpStream, v: &Value) {
    let mut buf = Vec::new();
    rmpv::encode::write_value(&mut buf, v).unwrap();
    let _ = stream.write_all(&buf);
}

pub fn get<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    map.as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

/// The collector's side of HELO / PING / PONG.
fn handshake(
    stream: &mut TcpStream,
    reader: &mut BufReader<TcpStream>,
    config: &CollectorConfig,
    log: &Mutex<Log>,
) -> bool {
    let key = config.shared_key.as_deref().unwrap();
    send(
        stream,
        &Value::Array(vec![
            "HELO".into(),
            Value::Map(vec![
                ("nonce".into(), Value::Binary(NONCE.to_vec())),
                ("auth".into(), "".into()),
                ("keepalive".into(), true.into()),
            ]),
        ]),
    );
    let Ok(ping) = rmpv::decode::read_value(reader) else {
        return false;
    };
    let fields: Vec<Vec<u8>> = ping
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| v.as_slice().unwrap_or(b"?").to_vec())
                .collect()
        })
        .unwrap_or_default();
    if fields.len() != 6 || fields[0] != b"PING" {
        log.lock()
            .unwrap()
            .errors
            .push(format!("expected PING, got {ping}"));
        return false;
    }
    let (hostname, salt, digest) = (&fields[1], &fields[2], &fields[3]);
    let pong_key = config.impostor_key.as_deref().unwrap_or(key);
    let good = config.impostor_key.is_some()
        || digest[..] == *sha512_hex(&[salt, hostname, NONCE, key.as_bytes()]).as_bytes();
    let pong_digest = sha512_hex(&[salt, COLLECTOR_HOST.as_bytes(), NONCE, pong_key.as_bytes()]);
    let reason = if good { "" } else { "shared_key mismatch" };
    send(
        stream,
        &Value::Array(vec![
            "PONG".into(),
            good.into(),
            reason.into(),
            COLLECTOR_HOST.into(),
            if good { pong_digest.into() } else { "".into() },
        ]),
    );
    let mut log = log.lock().unwrap();
    if good {
        log.handshakes_ok += 1;
    } else {
        log.handshakes_rejected += 1;
    }
    good
}

/// Checks one Forward-mode message; every departure is a framing error.
pub fn check_framing(v: &Value, want_chunk: bool) -> Result<Message, String> {
    let parts = v.as_array().ok_or(format!("not an array: {v}"))?;
    if parts.len() != 3 {
        return Err(format!("expected [tag, entries, option], got {v}"));
    }
    let tag = parts[0].as_str().ok_or("tag is not a string")?.to_string();
    let entries = parts[1].as_array().ok_or("entries is not an array")?;
    let option = &parts[2];
    let size = get(option, "size")
        .and_then(Value::as_u64)
        .ok_or(format!("option {option} has no integer size"))?;
    if size != entries.len() as u64 {
        return Err(format!("size {size} but {} entries", entries.len()));
    }
    let chunk = get(option, "chunk").map(|c| c.as_str().unwrap_or("?").to_string());
    if want_chunk && chunk.is_none() {
        return Err(format!("option {option} has no chunk"));
    }
    let mut out = Vec::new();
    for e in entries {
        match e.as_array().map(Vec::as_slice) {
            Some([time, record]) if record.is_map() => out.push((time.clone(), record.clone())),
            _ => return Err(format!("entry is not [time, map]: {e}")),
        }
    }
    Ok(Message {
        tag,
        chunk,
        entries: out,
    })
}

fn serve(
    mut stream: TcpStream,
    config: CollectorConfig,
    log: Arc<Mutex<Log>>,
    drop_unacked: Arc<Mutex<usize>>,
) {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    if config.shared_key.is_some() && !handshake(&mut stream, &mut reader, &config, &log) {
        let _ = stream.shutdown(Shutdown::Both);
        return;
    }
    while let Ok(v) = rmpv::decode::read_value(&mut reader) {
        let msg = match check_framing(&v, config.ack) {
            Ok(m) => m,
            Err(e) => {
                log.lock().unwrap().errors.push(e);
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
        };
        {
            let mut left = drop_unacked.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                log.lock().unwrap().unacked.push(msg);
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
        }
        if config
            .frozen
            .as_ref()
            .is_some_and(|f| f.load(Ordering::SeqCst))
        {
            log.lock().unwrap().unacked.push(msg);
            continue;
        }
        let chunk = msg.chunk.clone();
        if config.count_only {
            let mut log = log.lock().unwrap();
            let n = msg.entries.len() as u64;
            log.counted_records += n;
            if msg.chunk.is_some() && log.last_chunk == msg.chunk {
                log.repeated_chunks += 1;
            } else {
                log.distinct_records += n;
                log.last_chunk = msg.chunk;
            }
        } else {
            log.lock().unwrap().messages.push(msg);
        }
        if config.ack {
            let id = chunk.unwrap_or_default();
            send(&mut stream, &Value::Map(vec![("ack".into(), id.into())]));
        }
    }
}

/// Polls `cond` until it holds; fails the test after [`WAIT`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < WAIT, "gave up waiting for {what}");
        thread::sleep(Duration::from_millis(5));
    }
}
