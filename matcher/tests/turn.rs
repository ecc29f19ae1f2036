//! TURN: the credentials a real matcher gateway hands out (with `hello`, in
//! `ice-servers` refreshes, from `GET /ice-servers`) are accepted by a real
//! coturn `turnserver` started by the test, which relays through them; an
//! expired credential and one signed with another secret are refused.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use matcher::gateway::ice_servers::IceSettings;
use serde_json::Value;
use testkit::turn_server::Relayed;
use testkit::{RedisServer, TurnServer, WsClient};

const TURN_SECRET: &str = "turn-test-secret-0123456789";

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Held by each test whose gateway mints credentials: the metrics recorder
/// is process-wide, so exact counts need the others to wait.
static MINTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A Redis, a coturn sharing [`TURN_SECRET`], and a matcher pointed at that
/// coturn (`extra` flags added), with [`MINTING`] held.
async fn with_turn(
    extra: &[&str],
) -> (
    tokio::sync::MutexGuard<'static, ()>,
    RedisServer,
    TurnServer,
    matcher::Running,
    SocketAddr,
) {
    let serial = MINTING.lock().await;
    let turn = TurnServer::start(TURN_SECRET);
    let redis = RedisServer::start();
    let turn_url = turn.url();
    let stun_url = format!("stun:127.0.0.1:{}", turn.port());
    let mut flags = vec![
        "--turn-urls",
        turn_url.as_str(),
        "--turn-secret",
        TURN_SECRET,
        "--stun-urls",
        stun_url.as_str(),
    ];
    flags.extend_from_slice(extra);
    let m = start(&redis.url(), "all", &flags).await;
    let addr = m.gateway_addr().unwrap();
    (serial, redis, turn, m, addr)
}

/// `GET /ice-servers` with `headers`: status, headers, body.
async fn get_ice_servers(
    addr: SocketAddr,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = reqwest::Client::new()
        .get(format!("http://{addr}/ice-servers"))
        .timeout(testkit::STEP);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let resp = request.send().await.expect("GET /ice-servers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.expect("a body"))
}

/// The TURN entry of an `iceServers` list: (username, credential).
fn turn_entry(ice_servers: &Value) -> (String, String) {
    let turn = ice_servers
        .as_array()
        .expect("an iceServers list")
        .iter()
        .find(|s| s["urls"][0].as_str().unwrap().starts_with("turn:"))
        .unwrap_or_else(|| panic!("no TURN entry in {ice_servers}"));
    (
        turn["username"].as_str().unwrap().to_string(),
        turn["credential"].as_str().unwrap().to_string(),
    )
}

/// Run coturn's client off the async runtime.
async fn relay(turn: &TurnServer, username: &str, credential: &str) -> Relayed {
    let (port, u, c) = (turn.port(), username.to_string(), credential.to_string());
    tokio::task::spawn_blocking(move || testkit::turn_server::allocate_and_relay(port, &u, &c))
        .await
        .unwrap()
}

/// The expiry a REST API username names.
fn expiry(username: &str) -> u64 {
    username.split(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn coturn_relays_with_the_credentials_of_get_ice_servers_and_of_hello() {
    let _panics = testkit::panics::guard();
    let (_serial, _redis, turn, m, addr) = with_turn(&[]).await;
    let before = testkit::prometheus::scrape(addr).await;

    let (status, headers, body) = get_ice_servers(addr, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    let got: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(got["ttl"], 3600);
    let servers = &got["iceServers"];
    assert_eq!(
        servers[0]["urls"][0].as_str(),
        Some(format!("stun:127.0.0.1:{}", turn.port()).as_str())
    );
    assert!(servers[0].get("credential").is_none(), "{got}");
    assert_eq!(servers[1]["urls"][0].as_str(), Some(turn.url().as_str()));
    let (http_user, http_credential) = turn_entry(servers);
    let lifetime = expiry(&http_user) as i64 - now_secs() as i64;
    assert!((3590..=3610).contains(&lifetime), "{http_user}");

    let (ws, session) = native(addr).await;
    // `native` took the hello; a second socket shows its fields.
    let mut ws2 = WsClient::connect(&ws_url(addr, "/ws")).await.unwrap();
    let hello = ws2.recv_event("hello").await;
    assert_eq!(hello["iceTtl"], 3600);
    let (hello_user, hello_credential) = turn_entry(&hello["iceServers"]);
    assert_eq!(
        hello_user.split_once(':').unwrap().1,
        hello["session"].as_str().unwrap(),
        "the username names the session"
    );
    assert_ne!(hello["session"].as_str(), Some(session.as_str()));

    let (by_http, by_hello) = tokio::join!(
        relay(&turn, &http_user, &http_credential),
        relay(&turn, &hello_user, &hello_credential)
    );
    assert!(
        by_http.relayed_everything(),
        "GET /ice-servers credential: {by_http:?}\ncoturn: {}",
        turn.log()
    );
    assert!(
        by_hello.relayed_everything(),
        "hello credential: {by_hello:?}\ncoturn: {}",
        turn.log()
    );

    let after = testkit::prometheus::scrape(addr).await;
    let issued = |via: &str| {
        testkit::prometheus::delta(
            &before,
            &after,
            &format!("rvc_turn_credentials_issued_total{{via=\"{via}\"}}"),
        )
    };
    assert_eq!((issued("http"), issued("hello")), (1.0, 2.0));
    ws.close().await;
    ws2.close().await;
    m.kill();
}

#[tokio::test]
async fn coturn_refuses_an_expired_credential_and_one_signed_with_another_secret() {
    let turn = TurnServer::start(TURN_SECRET);
    let settings = |secret: &str| IceSettings {
        turn_urls: vec![turn.url()],
        stun_urls: vec![],
        turn_secret: Some(secret.as_bytes().into()),
        ttl_secs: 60,
    };
    let minted = |secret: &str, at: u64| {
        let ice = settings(secret).mint("01JTESTSESSION", at);
        let turn = &ice.ice_servers[0];
        (
            turn.username.clone().unwrap(),
            turn.credential.clone().unwrap(),
        )
    };
    // Expired ten seconds ago (minted 70 s ago with a 60 s lifetime).
    let (user, credential) = minted(TURN_SECRET, now_secs() - 70);
    let expired = relay(&turn, &user, &credential).await;
    assert!(
        expired.allocation_refused(),
        "expired credential: {expired:?}"
    );
    let (user, credential) = minted("another-secret-0123456789", now_secs());
    let foreign = relay(&turn, &user, &credential).await;
    assert!(
        foreign.allocation_refused(),
        "credential of another secret: {foreign:?}"
    );
    // The control: the same minting with coturn's secret, now, is taken.
    let (user, credential) = minted(TURN_SECRET, now_secs());
    let fresh = relay(&turn, &user, &credential).await;
    assert!(fresh.relayed_everything(), "fresh credential: {fresh:?}");
}

#[tokio::test]
async fn a_long_session_gets_fresh_credentials_before_they_expire() {
    let _panics = testkit::panics::guard();
    let (_serial, _redis, _turn, m, addr) = with_turn(&["--turn-ttl-secs", "2"]).await;
    let mut ws = WsClient::connect(&ws_url(addr, "/ws")).await.unwrap();
    let hello = ws.recv_event("hello").await;
    let (first, first_credential) = turn_entry(&hello["iceServers"]);
    // At 80% of 2 s, then again.
    let refresh = ws
        .recv_event_within("ice-servers", Duration::from_secs(5))
        .await;
    assert_eq!(refresh["ttl"], 2);
    let (second, credential) = turn_entry(&refresh["iceServers"]);
    assert_eq!(second.split_once(':').unwrap().1, hello["session"]);
    // Renewed, not sent again: 1.6 s later, in whole seconds, the expiry
    // is always later and the credential another.
    assert!(expiry(&second) > expiry(&first), "{first} then {second}");
    assert_ne!(credential, first_credential);
    let again = ws
        .recv_event_within("ice-servers", Duration::from_secs(5))
        .await;
    let (third, _) = turn_entry(&again["iceServers"]);
    assert!(expiry(&third) > expiry(&second));
    // A legacy socket knows no such event and gets none.
    let mut legacy = legacy_socket(addr, "ann").await;
    legacy.expect_silence(Duration::from_secs(3)).await;
    ws.close().await;
    m.kill();
}

#[tokio::test]
async fn without_turn_hello_has_no_ice_servers_and_the_endpoint_an_empty_list() {
    let _panics = testkit::panics::guard();
    let (_redis, m, addr) = redis_and_matcher().await;
    let mut ws = WsClient::connect(&ws_url(addr, "/ws")).await.unwrap();
    let hello = ws.recv_event("hello").await;
    assert!(hello.get("iceServers").is_none(), "{hello}");
    let (status, _, body) = get_ice_servers(addr, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"iceServers":[],"ttl":3600}"#);
    // The credentials metric is listed from the start (registered at zero
    // with the others; its value here is process-wide, other tests count).
    let scrape = testkit::prometheus::scrape(addr).await;
    for via in ["hello", "refresh", "http"] {
        let series = format!("rvc_turn_credentials_issued_total{{via=\"{via}\"}}");
        assert!(scrape.contains_key(&series), "{series} is not listed");
    }
    ws.close().await;
    m.kill();
}

#[tokio::test]
async fn credential_harvesting_through_get_ice_servers_is_rate_limited_per_address() {
    let _panics = testkit::panics::guard();
    let (_serial, _redis, _turn, m, addr) =
        with_turn(&["--ip-rate-limit", "1", "--ip-rate-burst", "2"]).await;
    for _ in 0..2 {
        assert_eq!(get_ice_servers(addr, &[]).await.0, 200);
    }
    let (status, headers, body) = get_ice_servers(addr, &[]).await;
    assert_eq!(status, 429, "{body}");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry));
    assert!(!body.contains("credential"), "{body}");
    m.kill();
}

#[tokio::test]
async fn a_foreign_site_cannot_read_credentials_from_get_ice_servers() {
    let _panics = testkit::panics::guard();
    let (_serial, _redis, _turn, m, addr) =
        with_turn(&["--allowed-origins", "https://chat.example"]).await;
    let (status, headers, body) =
        get_ice_servers(addr, &[("origin", "https://chat.example")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://chat.example"
    );
    let (status, headers, body) =
        get_ice_servers(addr, &[("origin", "https://evil.example")]).await;
    assert_eq!(status, 403);
    assert!(headers.get("access-control-allow-origin").is_none());
    assert!(!body.contains("credential"), "{body}");
    m.kill();
}

#[test]
fn bad_turn_settings_stop_the_start_with_one_line_naming_the_flag() {
    for (args, flag) in [
        (&["--turn-urls", "stun:127.0.0.1:3478"][..], "--turn-urls"),
        (&["--turn-urls", "turn:127.0.0.1:3478"][..], "--turn-urls"),
        (&["--stun-urls", "turn:127.0.0.1:3478"][..], "--stun-urls"),
        (
            &[
                "--turn-urls",
                "turn:127.0.0.1:3478",
                "--turn-secret-file",
                "/nonexistent/turn-secret",
            ][..],
            "--turn-secret-file",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_matcher"))
            .args(args)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--redis-url",
                "redis://127.0.0.1:1",
            ])
            .env_remove("RUST_LOG")
            .output()
            .expect("run matcher");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_matcher"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--turn-urls",
        "RVC_TURN_URLS",
        "--turn-secret ",
        "--turn-secret-file",
        "--turn-ttl-secs",
        "--stun-urls",
        "RVC_STUN_URLS",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}
