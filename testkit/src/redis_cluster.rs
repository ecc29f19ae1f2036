//! A private Redis Cluster per test: three primaries and three replicas on
//! free loopback ports, formed with `redis-cli --cluster create`.
//!
//! Each node also needs its cluster bus port (its port + 10000) free, so
//! ports are picked in pairs. Persistence is off, as in [`RedisServer`]:
//! a killed node is gone with its data, and only its replica's copy
//! survives. The node timeout is short so that a failover
//! happens within a test's patience (two seconds), and `cluster-require-full-coverage`
//! is off, as it should be in production: while one shard fails over, the
//! others keep serving.
//!
//! [`RedisServer`]: crate::RedisServer

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::redis_server::{read_reply, Reply};
use crate::TestRedis;

/// How many nodes: three primaries, each with one replica.
const NODES: usize = 6;

/// Cluster node timeout, ms: how soon a dead primary is failed over.
pub const NODE_TIMEOUT_MS: u64 = 2000;

/// A running 6-node cluster owned by one test; every node is killed on drop.
pub struct RedisCluster {
    nodes: Vec<Node>,
    dir: std::path::PathBuf,
}

struct Node {
    port: u16,
    child: Option<Child>,
}

/// A free port whose cluster bus port (port + 10000) is free too.
fn free_port_pair() -> u16 {
    loop {
        let port = crate::free_port();
        if port > 55_000 {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl RedisCluster {
    /// Start six nodes, form the cluster (one replica per primary) and wait
    /// until every node reports `cluster_state:ok` and knows all six.
    pub fn start() -> RedisCluster {
        for _ in 0..3 {
            match RedisCluster::try_start() {
                Ok(cluster) => return cluster,
                Err(e) => eprintln!("redis cluster did not form ({e}); retrying"),
            }
        }
        panic!("could not start a redis cluster (is redis-server 7 installed? scripts/test installs it)");
    }

    fn try_start() -> Result<RedisCluster, String> {
        let mut ports: Vec<u16> = Vec::new();
        while ports.len() < NODES {
            let p = free_port_pair();
            if !ports.contains(&p) && !ports.contains(&(p + 10_000)) && p >= 10_000 {
                ports.push(p);
            }
        }
        let dir =
            std::env::temp_dir().join(format!("rvc-cluster-{}-{}", ports[0], std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut cluster = RedisCluster {
            nodes: ports
                .iter()
                .map(|&port| Node { port, child: None })
                .collect(),
            dir,
        };
        for i in 0..NODES {
            cluster.spawn(i)?;
        }
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("redis-cli: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create: {}",
                String::from_utf8_lossy(&out.stdout)
            ));
        }
        cluster.wait_ok(Duration::from_secs(30))?;
        Ok(cluster)
    }

    fn spawn(&mut self, i: usize) -> Result<(), String> {
        let port = self.nodes[i].port;
        // A directory per node: replication writes its RDB files there.
        let dir = self.dir.join(port.to_string());
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
            .args(["--cluster-require-full-coverage", "no"])
            .args(["--save", "", "--appendonly", "no"])
            // Replicas sync at once (a replica that never synced cannot
            // be failed over to).
            .args(["--repl-diskless-sync-delay", "0"])
            .args(["--dir", dir.to_str().unwrap()])
            .args(["--loglevel", "notice", "--logfile", "redis.log"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server: {e}"))?;
        self.nodes[i].child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.nodes[i]
                .child
                .as_mut()
                .unwrap()
                .try_wait()
                .ok()
                .flatten()
            {
                self.nodes[i].child = None;
                return Err(format!("redis-server on {port} exited: {status}"));
            }
            if matches!(raw(port, &["PING"]), Some(Reply::Text(t)) if t == "PONG") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(format!("redis-server on {port} did not answer in 10 s"))
    }

    /// Wait until every live node says `cluster_state:ok`, knows every
    /// node, and agrees with the others on who serves each slot, and every
    /// replica has synced with its primary.
    pub fn wait_ok(&self, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        let mut last = String::new();
        while Instant::now() < deadline {
            let live: Vec<u16> = self.live_ports();
            let all_ok = live.iter().all(|&p| {
                let info = match raw(p, &["CLUSTER", "INFO"]) {
                    Some(Reply::Text(t)) => t,
                    _ => return false,
                };
                last = info.clone();
                info.contains("cluster_state:ok")
                    && info.contains(&format!("cluster_known_nodes:{NODES}"))
                    && info.contains("cluster_slots_ok:16384")
            });
            let views: Vec<Vec<(u16, u16)>> = live.iter().map(|&p| slot_owners(p)).collect();
            // Every replica has synced with its primary.
            let synced = live
                .iter()
                .all(|&p| match raw(p, &["INFO", "replication"]) {
                    Some(Reply::Text(t)) => {
                        t.contains("role:master") || t.contains("master_link_status:up")
                    }
                    _ => false,
                });
            if all_ok && synced && views.windows(2).all(|w| w[0] == w[1]) && !views.is_empty() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("cluster not ok within {limit:?}: {last}"))
    }

    fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.port)
            .collect()
    }

    /// `redis-cluster://127.0.0.1:<p1>?node=127.0.0.1:<p2>&...`, every node.
    pub fn url(&self) -> String {
        let mut url = format!("redis-cluster://127.0.0.1:{}", self.nodes[0].port);
        for (i, n) in self.nodes.iter().enumerate().skip(1) {
            url.push(if i == 1 { '?' } else { '&' });
            url.push_str(&format!("node=127.0.0.1:{}", n.port));
        }
        url
    }

    /// The ports of the nodes that serve slots now (the primaries).
    pub fn primaries(&self) -> Vec<u16> {
        let port = self.live_ports()[0];
        let mut owners: Vec<u16> = slot_owners(port).into_iter().map(|(_, p)| p).collect();
        owners.sort_unstable();
        owners.dedup();
        owners
    }

    /// The node id of the node on `port`.
    pub fn node_id(&self, port: u16) -> String {
        match raw(port, &["CLUSTER", "MYID"]) {
            Some(Reply::Text(t)) => t,
            other => panic!("CLUSTER MYID on {port}: {other:?}"),
        }
    }

    /// The port of the primary serving `key`'s slot now.
    pub fn owner_of(&self, key: &str) -> u16 {
        let slot = match self.query(&["CLUSTER", "KEYSLOT", key]) {
            Reply::Int(s) => s as u16,
            other => panic!("CLUSTER KEYSLOT: {other:?}"),
        };
        let port = self.live_ports()[0];
        slot_owners(port)
            .into_iter()
            .find(|&(start, _)| start <= slot)
            .map(|(_, p)| p)
            .expect("slot owner")
    }

    /// How many keys each primary holds (`DBSIZE`), by port.
    pub fn keys_per_primary(&self) -> Vec<(u16, i64)> {
        self.primaries()
            .into_iter()
            .map(|p| match raw(p, &["DBSIZE"]) {
                Some(Reply::Int(n)) => (p, n),
                other => panic!("DBSIZE on {p}: {other:?}"),
            })
            .collect()
    }

    /// SIGKILL the node on `port` (no goodbye to clients or to the cluster).
    pub fn kill(&mut self, port: u16) {
        for node in &mut self.nodes {
            if node.port == port {
                if let Some(mut child) = node.child.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
    }

    /// Wait until the slots `port` served are served by another live node
    /// and the cluster is ok again without it; returns how long that took.
    pub fn wait_failed_over(&self, dead: u16, limit: Duration) -> Duration {
        let start = Instant::now();
        let deadline = start + limit;
        while Instant::now() < deadline {
            let live = self.live_ports();
            let ok = live.iter().all(|&p| {
                matches!(raw(p, &["CLUSTER", "INFO"]), Some(Reply::Text(t))
                    if t.contains("cluster_state:ok") && t.contains("cluster_slots_ok:16384"))
                    && !slot_owners(p).iter().any(|&(_, owner)| owner == dead)
            });
            if ok {
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let port = self.live_ports()[0];
        panic!(
            "no failover of {dead} within {limit:?}: {:?} {:?}",
            raw(port, &["CLUSTER", "NODES"]),
            raw(port, &["CLUSTER", "INFO"])
        );
    }

    /// Move `slots` slots from the primary on `from` to the one on `to`
    /// with `redis-cli --cluster reshard` (keys and all, while clients
    /// keep running); blocks until done.
    pub fn reshard(&self, from: u16, to: u16, slots: u32) {
        let out = Command::new("redis-cli")
            .args(["--cluster", "reshard", &format!("127.0.0.1:{from}")])
            .args(["--cluster-from", &self.node_id(from)])
            .args(["--cluster-to", &self.node_id(to)])
            .args(["--cluster-slots", &slots.to_string()])
            .args(["--cluster-yes", "--cluster-pipeline", "100"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster reshard");
        assert!(
            out.status.success(),
            "reshard failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        self.wait_ok(Duration::from_secs(30))
            .expect("cluster ok after reshard");
    }

    /// Run one command on the node at `port` itself (no redirection
    /// followed), e.g. `CLUSTER SETSLOT` on one side of a migration.
    pub fn on_node(&self, port: u16, args: &[&str]) -> Reply {
        raw(port, args).unwrap_or_else(|| panic!("node {port} did not answer {args:?}"))
    }

    /// Run one command on the node serving its keys: sent to a live node,
    /// following `MOVED` and `ASK` redirections.
    pub fn query(&self, args: &[&str]) -> Reply {
        let mut port = self.live_ports()[0];
        let mut asking = false;
        for _ in 0..5 {
            let reply = if asking {
                raw_asking(port, args)
            } else {
                raw(port, args)
            }
            .unwrap_or_else(|| panic!("node {port} did not answer {args:?}"));
            match &reply {
                Reply::Error(e) if e.starts_with("MOVED ") || e.starts_with("ASK ") => {
                    asking = e.starts_with("ASK ");
                    let target = e.rsplit(' ').next().unwrap();
                    port = target.rsplit(':').next().unwrap().parse().unwrap();
                }
                _ => return reply,
            }
        }
        panic!("too many redirections for {args:?}");
    }
}

impl TestRedis for RedisCluster {
    fn url(&self) -> String {
        RedisCluster::url(self)
    }

    fn query(&self, args: &[&str]) -> Reply {
        RedisCluster::query(self, args)
    }

    fn keys(&self, pattern: &str) -> Vec<String> {
        self.primaries()
            .into_iter()
            .flat_map(|p| match raw(p, &["KEYS", pattern]) {
                Some(reply) => reply.items().iter().map(Reply::text).collect(),
                None => Vec::new(),
            })
            .collect()
    }
}

/// `(first slot of a range, port of its primary)`, sorted by slot, from
/// `CLUSTER SLOTS` on `port`.
fn slot_owners(port: u16) -> Vec<(u16, u16)> {
    let Some(Reply::Array(ranges)) = raw(port, &["CLUSTER", "SLOTS"]) else {
        return Vec::new();
    };
    let mut owners: Vec<(u16, u16)> = ranges
        .iter()
        .filter_map(|r| {
            let items = r.items();
            let start = match items.first()? {
                Reply::Int(s) => *s as u16,
                _ => return None,
            };
            let primary = items.get(2)?.items();
            let p = match primary.get(1)? {
                Reply::Int(p) => *p as u16,
                _ => return None,
            };
            Some((start, p))
        })
        .collect();
    // Sorted descending by start so that `find(start <= slot)` is right.
    owners.sort_unstable_by_key(|&(start, _)| std::cmp::Reverse(start));
    owners
}

fn send(stream: &mut TcpStream, args: &[&str]) -> std::io::Result<()> {
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{}\r\n", a.len(), a));
    }
    stream.write_all(req.as_bytes())
}

/// One command on the node at `port` over a fresh connection; `None` when
/// the node does not answer.
fn raw(port: u16, args: &[&str]) -> Option<Reply> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    send(&mut stream, args).ok()?;
    let mut reader = BufReader::new(stream);
    if reader.fill_buf().ok()?.is_empty() {
        return None;
    }
    Some(read_reply(&mut reader))
}

/// `ASKING` then one command, on one connection (for an `ASK` redirection).
fn raw_asking(port: u16, args: &[&str]) -> Option<Reply> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
    send(&mut stream, &["ASKING"]).ok()?;
    send(&mut stream, args).ok()?;
    let mut reader = BufReader::new(stream);
    let _ok = read_reply(&mut reader);
    Some(read_reply(&mut reader))
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::env::var_os("RVC_KEEP_CLUSTER").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
