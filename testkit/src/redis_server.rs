//! A private `redis-server` per test, on a free loopback port.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server` owned by one test. Killed on drop. Persistence is
/// off, as in a cache deployment: a restart comes back empty, which is the
/// harder case for the services.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    dir: std::path::PathBuf,
}

impl RedisServer {
    /// Start a server on a free port and wait until it answers `PING`.
    pub fn start() -> RedisServer {
        // A port can be taken between the probe and redis binding it; retry.
        for _ in 0..5 {
            let port = crate::free_port();
            let mut server = RedisServer {
                port,
                child: None,
                dir: std::env::temp_dir().join(format!("rvc-redis-{port}-{}", std::process::id())),
            };
            if server.spawn().is_ok() {
                return server;
            }
        }
        panic!("could not start redis-server (is it installed? scripts/test installs it)");
    }

    fn spawn(&mut self) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir.to_str().unwrap(),
                "--loglevel",
                "warning",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().ok().flatten() {
                self.child = None;
                return Err(format!("redis-server exited: {status}"));
            }
            if ping(self.port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err("redis-server did not answer in 10 s".into())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kill the server (SIGKILL: no goodbye to the clients), as in a crash.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the server again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!("restart failed: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Send one command over a fresh raw connection; the reply is read from
    /// what is returned.
    fn send(&self, args: &[&str]) -> BufReader<TcpStream> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect redis");
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{}\r\n", a.len(), a));
        }
        stream.write_all(req.as_bytes()).expect("write redis");
        BufReader::new(stream)
    }

    /// Run one command synchronously over a raw connection and return the
    /// first line of the reply: for test assertions that need no client.
    pub fn command(&self, args: &[&str]) -> String {
        let mut reader = self.send(args);
        let mut line = String::new();
        reader.read_line(&mut line).expect("read redis");
        if let Some(len) = line.strip_prefix('$') {
            let len: i64 = len.trim().parse().unwrap_or(-1);
            if len < 0 {
                return String::new();
            }
            let mut value = String::new();
            reader.read_line(&mut value).expect("read bulk");
            return value.trim_end_matches("\r\n").to_string();
        }
        line.trim_end().trim_start_matches([':', '+']).to_string()
    }

    /// Run one command and return its whole reply, parsed: for read-only
    /// assertions on replies of more than one line (`CLIENT LIST`,
    /// `XPENDING`, `ZRANGE`, ...).
    pub fn query(&self, args: &[&str]) -> Reply {
        read_reply(&mut self.send(args))
    }

    /// The clients connected to this server, one `CLIENT LIST` line each
    /// (`id=.. addr=.. age=.. idle=.. flags=.. cmd=..`).
    pub fn clients(&self) -> Vec<String> {
        match self.query(&["CLIENT", "LIST"]) {
            Reply::Text(t) => t.lines().map(str::to_string).collect(),
            other => panic!("CLIENT LIST: {other:?}"),
        }
    }
}

/// A Redis reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Nil,
    Int(i64),
    Text(String),
    Error(String),
    Array(Vec<Reply>),
}

impl Reply {
    /// The reply as text (integers too), or panic.
    pub fn text(&self) -> String {
        match self {
            Reply::Text(t) => t.clone(),
            Reply::Int(i) => i.to_string(),
            other => panic!("expected a text reply, got {other:?}"),
        }
    }

    /// The elements of an array reply (nil: none), or panic.
    pub fn items(&self) -> Vec<Reply> {
        match self {
            Reply::Array(v) => v.clone(),
            Reply::Nil => Vec::new(),
            other => panic!("expected an array reply, got {other:?}"),
        }
    }
}

pub(crate) fn read_reply(r: &mut impl BufRead) -> Reply {
    let mut line = String::new();
    r.read_line(&mut line).expect("read redis");
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at(1);
    match kind {
        "+" => Reply::Text(rest.to_string()),
        "-" => Reply::Error(rest.to_string()),
        ":" => Reply::Int(rest.parse().expect("integer reply")),
        "$" => {
            let len: i64 = rest.parse().expect("bulk length");
            if len < 0 {
                return Reply::Nil;
            }
            let mut buf = vec![0u8; len as usize + 2];
            r.read_exact(&mut buf).expect("read bulk");
            buf.truncate(len as usize);
            Reply::Text(String::from_utf8_lossy(&buf).into_owned())
        }
        "*" => {
            let n: i64 = rest.parse().expect("array length");
            if n < 0 {
                return Reply::Nil;
            }
            Reply::Array((0..n).map(|_| read_reply(r)).collect())
        }
        _ => panic!("unexpected reply line {line:?}"),
    }
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_millis(500))).ok();
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with("+PONG")
}

impl crate::TestRedis for RedisServer {
    fn url(&self) -> String {
        RedisServer::url(self)
    }

    fn query(&self, args: &[&str]) -> Reply {
        RedisServer::query(self, args)
    }

    fn command(&self, args: &[&str]) -> String {
        RedisServer::command(self, args)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
