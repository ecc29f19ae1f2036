//! Test support shared by every crate's integration tests.
//!
//! * [`RedisServer`]: a private `redis-server` on a free loopback port, killed
//!   when dropped. Every Redis-touching test uses one; nothing assumes 6379.
//! * [`RedisCluster`]: a private 6-node Redis Cluster (3 primaries, 3
//!   replicas) on free loopback ports, killed when dropped; with resharding
//!   and primary kills for the cluster tests. [`TestRedis`] lets a test
//!   helper take either.
//! * [`TurnServer`]: a private coturn `turnserver` on a free loopback port
//!   with REST API credentials, killed when dropped, and
//!   [`turn_server::allocate_and_relay`], a real TURN client run against it.
//! * [`WsClient`]: a real WebSocket client with bounded waits, so a missing
//!   event fails the test quickly instead of hanging it.
//! * [`panics::guard`]: fails a test when anything in the process panicked
//!   outside the test code (a server task that died silently).

pub mod panics;
pub mod prometheus;
mod redis_cluster;
mod redis_server;
pub mod turn_server;
mod ws_client;

pub use redis_cluster::RedisCluster;
pub use redis_server::{RedisServer, Reply};
pub use turn_server::TurnServer;
pub use ws_client::{handshake_from, Next, Refused, WsClient};

use std::net::{IpAddr, SocketAddr};

use std::time::Duration;

/// What a test helper needs of a Redis, single server or cluster: its URL
/// for the services, and commands for setting up and checking state (on a
/// cluster, sent to the node that serves the key).
pub trait TestRedis {
    /// The `--redis-url` of the services under test.
    fn url(&self) -> String;

    /// Run one command and return its whole reply, parsed.
    fn query(&self, args: &[&str]) -> Reply;

    /// Every key matching `pattern` (`KEYS`; on a cluster, of every primary).
    fn keys(&self, pattern: &str) -> Vec<String> {
        self.query(&["KEYS", pattern])
            .items()
            .iter()
            .map(Reply::text)
            .collect()
    }

    /// Run one command and return its reply as one line: text and integers
    /// as they are, nil as empty, an error as `-<message>`.
    fn command(&self, args: &[&str]) -> String {
        match self.query(args) {
            Reply::Text(t) => t,
            Reply::Int(i) => i.to_string(),
            Reply::Nil => String::new(),
            Reply::Error(e) => format!("-{e}"),
            Reply::Array(items) => format!("*{}", items.len()),
        }
    }
}

/// How long a test waits for anything that should happen "at once".
pub const STEP: Duration = Duration::from_secs(10);

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A TCP connection to `server` from the local address `from` (any
/// 127.x.y.z is the machine itself on Linux), so that a test can play
/// clients of several addresses; fails after [`STEP`].
pub async fn tcp_from(from: IpAddr, server: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    let socket = match from {
        IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(from, 0))?;
    tokio::time::timeout(STEP, socket.connect(server))
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connect {server} from {from}: timed out"),
            )
        })?
}

/// Poll `check` every few milliseconds until it returns `Some`, or fail after
/// `limit`. For conditions that have no event to await (a key expiring, a
/// process exiting); the poll interval only bounds how late we notice.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
