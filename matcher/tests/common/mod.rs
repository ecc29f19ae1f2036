//! Shared set-up for the matcher's integration tests: real Redis (one
//! private server per test), in-process gateways and workers on free ports,
//! real WebSocket and HTTP clients.
#![allow(dead_code)]

use std::net::SocketAddr;

use clap::Parser;
use matcher::{Config, Running};
use serde_json::{json, Value};
use testkit::WsClient;

pub const SECRET: &str = "test-secret-0123456789abcdef0123456789";

/// A config for tests: short heartbeats and purges so bounds are quick to
/// check (3 s gateway TTL: a loaded CI machine must not look dead); `extra`
/// flags override.
pub fn config(redis_url: &str, role: &str, extra: &[&str]) -> Config {
    let mut args = vec![
        "matcher",
        "--role",
        role,
        "--listen",
        "127.0.0.1:0",
        "--redis-url",
        redis_url,
        "--ticket-secret",
        SECRET,
        "--signaller-url",
        "ws://127.0.0.1:4000/ws",
        "--heartbeat-ms",
        "200",
        "--gateway-ttl-ms",
        "3000",
        "--purge-interval-ms",
        "200",
        "--backoff-max-ms",
        "500",
    ];
    args.extend_from_slice(extra);
    Config::parse_from(args)
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

/// Legacy `POST /registerForMatching`; returns (HTTP status, JSON body).
pub async fn post_register(addr: SocketAddr, name: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/registerForMatching"))
        .json(&json!({ "name": name }))
        .timeout(testkit::STEP)
        .send()
        .await
        .expect("POST /registerForMatching");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON reply"))
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
