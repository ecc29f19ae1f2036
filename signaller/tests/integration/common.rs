//! What every signaller integration test needs: nodes on ephemeral ports
//! against a private Redis, tickets, legacy room records, joined clients.

use std::time::Duration;

use clap::Parser;
use serde_json::{json, Value};
use signaller::{Config, RunningNode};
use testkit::{TestRedis, WsClient};
use wire::ticket::Ticket;
use wire::user::Role;

/// The ticket secret of every test node (at least 32 bytes).
pub const SECRET: &str = "signaller-tests-secret-0123456789abcdef";

/// Fast liveness for tests: a dead node is noticed within ~600 ms.
pub const HEARTBEAT_MS: &str = "100";
pub const NODE_TTL_MS: &str = "500";

/// A node's command line (program name first): loopback, port 0, this
/// Redis, the test secret, fast liveness, per-address limits off (every
/// simulated user of a test comes from 127.0.0.1), each unless `extra`
/// sets it; plus `extra` flags.
pub fn args(redis: &impl TestRedis, extra: &[&str]) -> Vec<String> {
    let url = redis.url();
    let mut args = vec!["signaller".to_string()];
    for (flag, value) in [
        ("--listen", "127.0.0.1:0"),
        ("--redis-url", url.as_str()),
        ("--ticket-secret", SECRET),
        ("--heartbeat-ms", HEARTBEAT_MS),
        ("--node-ttl-ms", NODE_TTL_MS),
        ("--ip-rate-limit", "0"),
        ("--max-sockets-per-ip", "0"),
        // Every test client connects from 127.0.0.1.
        ("--max-connections-per-ip", "0"),
    ] {
        if !extra.contains(&flag) {
            args.extend([flag.to_string(), value.to_string()]);
        }
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    args
}

/// A node's configuration: [`args`], parsed.
pub fn config(redis: &impl TestRedis, extra: &[&str]) -> Config {
    Config::parse_from(args(redis, extra))
}

/// Start a node.
pub async fn node(redis: &impl TestRedis, extra: &[&str]) -> RunningNode {
    // Logs show with RUST_LOG=... and --nocapture.
    if std::env::var_os("RUST_LOG").is_some() {
        service::logging::init(service::logging::LogFormat::Text);
    }
    signaller::spawn(config(redis, extra))
        .await
        .expect("signaller starts")
}

/// Two nodes on `redis` with the default test flags, for peers on
/// different nodes.
pub async fn two_nodes(redis: &impl TestRedis) -> (RunningNode, RunningNode) {
    (node(redis, &[]).await, node(redis, &[]).await)
}

pub fn native_url(node: &RunningNode) -> String {
    format!("ws://{}/ws", node.addr())
}

pub fn legacy_url(node: &RunningNode, name: &str) -> String {
    format!("ws://{}/ws/{}", node.addr(), name)
}

pub fn http_url(node: &RunningNode, path: &str) -> String {
    format!("http://{}{}", node.addr(), path)
}

/// A fresh room code, as the matcher makes them.
pub fn new_room() -> String {
    ulid::Ulid::new().to_string()
}

/// A ticket as the matcher gateway signs it, valid for a minute.
pub fn ticket(room: &str, user: &str, name: &str, role: Role) -> String {
    ticket_with(SECRET.as_bytes(), room, user, name, role, 60_000)
}

pub fn ticket_with(
    secret: &[u8],
    room: &str,
    user: &str,
    name: &str,
    role: Role,
    valid_ms: i64,
) -> String {
    let now = service::clock::now_ms() as i64;
    wire::ticket::sign(
        secret,
        &Ticket {
            room: room.into(),
            user: user.into(),
            name: name.into(),
            role,
            exp_ms: (now + valid_ms).max(0) as u64,
        },
    )
}

/// Write a room record as the matcher's pairing script does, for two
/// legacy users.
pub fn legacy_room(redis: &impl TestRedis, room: &str, initiator: &str, responder: &str) {
    let key = wire::keys::room(room);
    let (ki, kr) = (
        wire::user::UserKey::legacy(initiator).to_string(),
        wire::user::UserKey::legacy(responder).to_string(),
    );
    let (ni, nr) = (format!("name:{ki}"), format!("name:{kr}"));
    redis.command(&[
        "HSET",
        &key,
        &ki,
        "initiator",
        &ni,
        initiator,
        &kr,
        "responder",
        &nr,
        responder,
    ]);
    redis.command(&["EXPIRE", &key, "300"]);
}

/// Open a native socket and join with `ticket`; returns the socket and the
/// `joined` event.
pub async fn join_native(node: &RunningNode, ticket: &str) -> (WsClient, Value) {
    let mut ws = WsClient::connect(&native_url(node)).await.expect("connect");
    ws.send_json(&json!({"event":"join","ticket":ticket})).await;
    let joined = ws.recv().await;
    assert_eq!(joined["event"], "joined", "{joined}");
    (ws, joined)
}

/// Open a legacy socket as `name` and join `room` as the React client does.
pub async fn join_legacy(node: &RunningNode, name: &str, room: &str, role: &str) -> WsClient {
    let mut ws = WsClient::connect(&legacy_url(node, name))
        .await
        .expect("connect");
    ws.send_json(&json!({"event":"join","room_code":room,"target":"","role":role}))
        .await;
    let verified = ws.recv().await;
    assert_eq!(verified["event"], "verified", "{verified}");
    ws
}

/// A signal frame as the clients send it, with a misleading `from` and
/// `target` the server must ignore.
pub fn signal(room: &str, data: &Value) -> Value {
    json!({"event":"signal","room_code":room,"target":"nobody","from":"mallory",
           "type":"signal","data":data})
}

/// Send a ping and wait for its pong: every frame sent before has been
/// handled by the server (a socket's frames are handled in order).
pub async fn sync(ws: &mut WsClient) {
    ws.send_json(&json!({"event":"ping"})).await;
    let pong = ws.recv().await;
    assert_eq!(pong["event"], "pong", "{pong}");
}

/// The next frame, which must be an `error` with `code`.
pub async fn expect_error(ws: &mut WsClient, code: &str) -> Value {
    let frame = ws.recv().await;
    assert_eq!(frame["event"], "error", "{frame}");
    assert_eq!(frame["code"], code, "{frame}");
    assert!(frame["message"].as_str().is_some_and(|m| !m.is_empty()));
    frame
}

/// How long a test waits to be sure nothing more arrives.
pub const QUIET: Duration = Duration::from_millis(300);

/// `frame` without the resume bookkeeping of native events (`resume`,
/// `last_id`), for comparing the rest exactly.
pub fn bare(mut frame: Value) -> Value {
    if let Some(map) = frame.as_object_mut() {
        map.remove("resume");
        map.remove("last_id");
    }
    frame
}

/// The room-log id a native event carries (`last_id`).
pub fn last_id(frame: &Value) -> wire::internal::StreamId {
    frame["last_id"]
        .as_str()
        .and_then(wire::internal::StreamId::parse)
        .unwrap_or_else(|| panic!("no last_id in {frame}"))
}
