//! Shared set-up for the matcher's integration tests: real Redis (one
//! private server per test), in-process gateways and workers on free ports,
//! real WebSocket and HTTP clients.
#![allow(dead_code)]

pub mod atomicity;
pub mod restart;

use std::net::{IpAddr, SocketAddr};

use clap::Parser;
use matcher::{Config, Running};
use serde_json::{json, Value};
use testkit::{RedisServer, TestRedis, WsClient};

pub const SECRET: &str = "test-secret-0123456789abcdef0123456789";

/// The flags every test process gets unless `extra` sets them: short
/// heartbeats and purges so bounds are quick to check (3 s gateway TTL: a
/// loaded CI machine must not look dead), a 500 ms back-off cap, and the
/// per-address limits off: every simulated user of a test comes from
/// 127.0.0.1 (the tests of those limits turn them on).
fn default_flags(redis_url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("--listen", "127.0.0.1:0".into()),
        ("--redis-url", redis_url.into()),
        ("--ticket-secret", SECRET.into()),
        ("--signaller-url", "ws://127.0.0.1:4000/ws".into()),
        ("--heartbeat-ms", "200".into()),
        ("--gateway-ttl-ms", "3000".into()),
        ("--purge-interval-ms", "200".into()),
        ("--backoff-max-ms", "500".into()),
        ("--ip-rate-limit", "0".into()),
        ("--max-sockets-per-ip", "0".into()),
        // Every test user connects from 127.0.0.1.
        ("--max-connections-per-ip", "0".into()),
    ]
}

/// Command-line arguments for `role`: the test defaults, each unless
/// `extra` sets it, then `extra`.
pub fn args(redis_url: &str, role: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["--role".to_string(), role.to_string()];
    for (flag, value) in default_flags(redis_url) {
        if !extra.contains(&flag) {
            args.push(flag.to_string());
            args.push(value);
        }
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

/// A config for tests (see [`args`]).
pub fn config(redis_url: &str, role: &str, extra: &[&str]) -> Config {
    Config::parse_from(std::iter::once("matcher".to_string()).chain(args(redis_url, role, extra)))
}

pub async fn start(redis_url: &str, role: &str, extra: &[&str]) -> Running {
    // Logs show with RUST_LOG=... and --nocapture.
    if std::env::var_os("RUST_LOG").is_some() {
        service::logging::init(service::logging::LogFormat::Text);
    }
    matcher::spawn(config(redis_url, role, extra))
        .await
        .expect("matcher starts")
}

/// A gateway and a worker in one process.
pub async fn start_all(redis_url: &str) -> Running {
    start(redis_url, "all", &[]).await
}

/// A private Redis and a gateway-and-worker process on it, with the
/// gateway's address: the set-up of most tests.
pub async fn redis_and_matcher() -> (RedisServer, Running, SocketAddr) {
    let redis = RedisServer::start();
    let m = start_all(&redis.url()).await;
    let addr = m.gateway_addr().unwrap();
    (redis, m, addr)
}

/// A signaller configuration on `redis` with the test secret; `extra` flags
/// replace the defaults they name.
pub fn signaller_config(redis: &RedisServer, extra: &[&str]) -> signaller::Config {
    let url = redis.url();
    let mut args = vec!["signaller"];
    for (flag, value) in [
        ("--listen", "127.0.0.1:0"),
        ("--redis-url", url.as_str()),
        ("--ticket-secret", SECRET),
    ] {
        if !extra.contains(&flag) {
            args.extend([flag, value]);
        }
    }
    args.extend_from_slice(extra);
    signaller::Config::parse_from(args)
}

pub fn ws_url(addr: SocketAddr, path: &str) -> String {
    format!("ws://{addr}{path}")
}

/// A native client that has said hello; returns it with its session id.
pub async fn native(addr: SocketAddr) -> (WsClient, String) {
    let mut ws = WsClient::connect(&ws_url(addr, "/ws"))
        .await
        .expect("connect");
    let hello = ws.recv_event("hello").await;
    assert_eq!(hello["protocol"], 1);
    let session = hello["session"].as_str().unwrap().to_string();
    (ws, session)
}

/// A native client that has registered and is waiting.
pub async fn native_waiting(addr: SocketAddr, name: &str) -> (WsClient, String) {
    let (mut ws, session) = native(addr).await;
    ws.send_json(&json!({"event": "register", "name": name}))
        .await;
    ws.recv_event("queued").await;
    (ws, session)
}

/// The loopback address every test user has unless it plays another.
pub const LOCALHOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// An HTTP answer: status, `Retry-After` if any, body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub body: String,
}

impl Answer {
    /// The body as JSON; panics if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("JSON body: {self:?}"))
    }
}

/// Legacy `POST /registerForMatching` for `name` from the local address
/// `from` (any 127.x.y.z), with extra `headers`, on a connection of its own.
pub async fn register_answer(
    addr: SocketAddr,
    name: &str,
    from: IpAddr,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = reqwest::Client::builder()
        .local_address(from)
        .build()
        .expect("an HTTP client")
        .post(format!("http://{addr}/registerForMatching"))
        .json(&json!({ "name": name }))
        .timeout(testkit::STEP);
    for (header, value) in headers {
        request = request.header(*header, *value);
    }
    let resp = request.send().await.expect("POST /registerForMatching");
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().expect("Retry-After in seconds"));
    let body = resp.text().await.expect("a body");
    Answer {
        status,
        retry_after,
        body,
    }
}

/// Legacy `POST /registerForMatching` from `from`; returns (HTTP status,
/// JSON body).
pub async fn post_register_from(addr: SocketAddr, name: &str, from: IpAddr) -> (u16, Value) {
    let answer = register_answer(addr, name, from, &[]).await;
    (answer.status, answer.json())
}

/// Legacy `POST /registerForMatching`; returns (HTTP status, JSON body).
pub async fn post_register(addr: SocketAddr, name: &str) -> (u16, Value) {
    post_register_from(addr, name, LOCALHOST).await
}

/// A legacy matching socket `/ws/<name>` from the local address `from`.
pub async fn legacy_socket_from(addr: SocketAddr, name: &str, from: IpAddr) -> WsClient {
    WsClient::connect_from(&ws_url(addr, &format!("/ws/{}", encode(name))), from)
        .await
        .expect("legacy socket")
}

/// A legacy matching socket `/ws/<name>`.
pub async fn legacy_socket(addr: SocketAddr, name: &str) -> WsClient {
    legacy_socket_from(addr, name, LOCALHOST).await
}

/// A legacy user of address `from`, as the React client does it: the
/// matching socket, then the register POST, answered `queued`.
pub async fn legacy_user_from(addr: SocketAddr, name: &str, from: IpAddr) -> WsClient {
    let ws = legacy_socket_from(addr, name, from).await;
    let (status, body) = post_register_from(addr, name, from).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("queued")),
        "{body}"
    );
    ws
}

/// A legacy user (see [`legacy_user_from`]).
pub async fn legacy_user(addr: SocketAddr, name: &str) -> WsClient {
    legacy_user_from(addr, name, LOCALHOST).await
}

/// How the React client derives its peer's name from the room code: it
/// splits the code on `_` and shows the first part that is not its own
/// name (a code without `_` is shown whole).
pub fn peer_from_code(code: &str, me: &str) -> String {
    code.split('_')
        .find(|p| *p != me)
        .unwrap_or(code)
        .to_string()
}

/// `a` and `b` are each told `matched`, into the same room; returns both
/// notices.
pub async fn matched_together(a: &mut WsClient, b: &mut WsClient) -> (Value, Value) {
    let ma = a.recv_event("matched").await;
    let mb = b.recv_event("matched").await;
    assert_eq!(ma["room_code"], mb["room_code"], "one room: {ma} / {mb}");
    (ma, mb)
}

/// `user` is in the pool (a worker moved its registration there).
pub fn in_pool(redis: &impl TestRedis, user: &wire::user::UserKey) -> bool {
    !redis
        .command(&["ZSCORE", &wire::keys::pool(), user.as_str()])
        .is_empty()
}

/// Wait (bounded) until `user` is in the pool.
pub async fn until_in_pool(redis: &impl TestRedis, user: &wire::user::UserKey) {
    testkit::eventually(testkit::STEP, "the user enters the pool", || async {
        in_pool(redis, user).then_some(())
    })
    .await;
}

/// Wait (bounded) until `user`'s session is parked (its socket dropped and
/// the gateway kept its place for the grace window).
pub async fn until_parked(redis: &impl TestRedis, user: &wire::user::UserKey) {
    let parked = wire::keys::parked(user);
    testkit::eventually(testkit::STEP, "the session is parked", || async {
        (redis.command(&["EXISTS", &parked]) == "1").then_some(())
    })
    .await;
}

/// A free address on 127.0.0.1 for a process's `--listen`.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], testkit::free_port()))
}

/// Wait until the gateway at `addr` answers `/readyz` with 200.
pub async fn until_ready(addr: SocketAddr) {
    testkit::eventually(testkit::STEP, "the gateway is ready", || async {
        (get_status(addr, "/readyz").await == 200).then_some(())
    })
    .await;
}

pub async fn get_status(addr: SocketAddr, path: &str) -> u16 {
    match reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .timeout(std::time::Duration::from_secs(3))
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// URL-encode a path segment (names may hold spaces and other characters).
pub fn encode(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A real `matcher` process (the binary), killed when dropped. Lets a test
/// pause a worker (SIGSTOP) so that several registrations reach the stream
/// before it reads them, and kill it outright (SIGKILL) in the middle of its
/// work, as a crash would.
pub struct MatcherProcess {
    child: std::process::Child,
}

impl MatcherProcess {
    /// Start `matcher --role <role>` with the test defaults and `extra`.
    pub fn start(redis_url: &str, role: &str, extra: &[&str]) -> MatcherProcess {
        MatcherProcess::run(args(redis_url, role, extra))
    }

    /// Start the binary with exactly `args` (no `RVC_` variable inherited).
    pub fn run(args: Vec<String>) -> MatcherProcess {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_matcher"))
            .args(args)
            .env_remove("RVC_TICKET_SECRET")
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("run the matcher binary");
        MatcherProcess { child }
    }

    /// Start a worker process and wait until it reads the register stream
    /// (it has created the group).
    pub async fn worker(redis: &testkit::RedisServer, extra: &[&str]) -> MatcherProcess {
        let before = stream_readers(redis);
        let worker = MatcherProcess::start(&redis.url(), "worker", extra);
        testkit::eventually(
            testkit::STEP,
            "the worker process reads the stream",
            || async { (stream_readers(redis) > before).then_some(()) },
        )
        .await;
        worker
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill {sig} {}", self.pid());
    }

    /// The process state letter from /proc (`T`: stopped).
    fn state(&self) -> char {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
            .expect("read /proc/<pid>/stat");
        // `pid (comm) S ...`: the state follows the last ')'.
        stat[stat.rfind(')').unwrap() + 2..].chars().next().unwrap()
    }

    /// SIGSTOP, and wait until every thread of the process is stopped.
    pub async fn pause(&self) {
        self.signal("-STOP");
        testkit::eventually(testkit::STEP, "the process is stopped", || async {
            (self.state() == 'T').then_some(())
        })
        .await;
    }

    /// SIGCONT.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// SIGTERM: the graceful drain.
    pub fn terminate(&self) {
        self.signal("-TERM");
    }

    /// SIGKILL: no clean-up of any kind, as a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Exit status, if the process has exited.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }
}

impl Drop for MatcherProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How many clients of this Redis last ran `XREADGROUP`: the workers'
/// stream readers.
fn stream_readers(redis: &testkit::RedisServer) -> usize {
    redis
        .clients()
        .iter()
        .filter(|c| c.contains(" cmd=xreadgroup"))
        .count()
}

/// A `key=value` field of a `CLIENT LIST` line.
pub fn field<'a>(client: &'a str, key: &str) -> &'a str {
    client
        .split(' ')
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap_or("")
}
