//! Per-client-address limits on the matcher gateway, against a real Redis,
//! with clients on distinct loopback addresses (any 127.x.y.z is the
//! machine itself on Linux): the client socket is bound to its address
//! before it connects.

mod common;

use std::net::SocketAddr;

use clap::{CommandFactory, Parser};
use common::*;
use matcher::Running;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite;

/// `POST /registerForMatching` from `from`, with extra headers.
async fn post_from(from: &str, server: SocketAddr, name: &str, headers: &[(&str, &str)]) -> Answer {
    register_answer(server, name, from.parse().unwrap(), headers).await
}

/// A WebSocket handshake to `server`'s `path` from loopback address `from`.
async fn ws_from(
    from: &str,
    server: SocketAddr,
    path: &str,
) -> Result<tokio_tungstenite::WebSocketStream<TcpStream>, testkit::Refused> {
    testkit::handshake_from(from, &format!("ws://{server}{path}")).await
}

/// Two gateways on one Redis with these per-address flags.
async fn two_gateways(redis: &testkit::RedisServer, flags: &[&str]) -> (Running, Running) {
    (
        start(&redis.url(), "gateway", flags).await,
        start(&redis.url(), "gateway", flags).await,
    )
}

/// Two gateways on one Redis where an address may make `burst` requests
/// (registrations and socket opens together) at once, then one a second;
/// no cap on sockets held.
async fn two_rate_limited_gateways(
    redis: &testkit::RedisServer,
    burst: &str,
) -> (Running, Running) {
    two_gateways(
        redis,
        &[
            "--ip-rate-limit",
            "1",
            "--ip-rate-burst",
            burst,
            "--max-sockets-per-ip",
            "0",
        ],
    )
    .await
}

fn addr(r: &Running) -> SocketAddr {
    r.gateway_addr().unwrap()
}

#[test]
fn per_address_limits_are_on_by_default() {
    let c = matcher::Config::parse_from(["matcher"]);
    assert!(c.shared.ip_rate_limit > 0 && c.shared.ip_rate_burst > 0);
    assert!(c.shared.max_sockets_per_ip > 0);
    assert!(c.shared.trusted_proxies.is_empty());
    let help = matcher::Config::command().render_long_help().to_string();
    for flag in [
        "--trusted-proxies",
        "RVC_TRUSTED_PROXIES",
        "--ip-rate-limit",
        "RVC_IP_RATE_LIMIT",
        "--ip-rate-burst",
        "RVC_IP_RATE_BURST",
        "--max-sockets-per-ip",
        "RVC_MAX_SOCKETS_PER_IP",
    ] {
        assert!(help.contains(flag), "{flag} in --help");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_flood_registrations_through_two_gateways() {
    let _panics = testkit::panics::guard();
    let redis = testkit::RedisServer::start();
    let (g1, g2) = two_rate_limited_gateways(&redis, "4").await;
    // Alternating gateways: the burst is spent once, not once per gateway.
    let mut answers = Vec::new();
    for i in 0..6 {
        let gw = if i % 2 == 0 { &g1 } else { &g2 };
        answers.push(post_from("127.0.0.2", addr(gw), &format!("flood{i}"), &[]).await);
    }
    let statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 429, 429], "{answers:?}");
    let refused = &answers[4];
    assert_eq!(refused.json()["status"], "error", "{refused:?}");
    assert!(refused.json()["message"]
        .as_str()
        .unwrap()
        .contains("retry"));
    assert!(
        matches!(refused.retry_after, Some(1..=2)),
        "Retry-After at 1/s: {refused:?}"
    );
    // Socket opens count against the same budget.
    assert_eq!(
        ws_from("127.0.0.2", addr(&g1), "/ws")
            .await
            .err()
            .map(|e| e.0),
        Some(429)
    );
    // Another address is unaffected, on either gateway.
    assert_eq!(
        post_from("127.0.0.3", addr(&g2), "other", &[]).await.status,
        200
    );
    assert!(ws_from("127.0.0.3", addr(&g1), "/ws").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_open_sockets_past_its_rate_through_two_gateways() {
    let _panics = testkit::panics::guard();
    let redis = testkit::RedisServer::start();
    let (g1, g2) = two_rate_limited_gateways(&redis, "3").await;
    let mut held = Vec::new();
    for (gw, path) in [(&g1, "/ws"), (&g2, "/ws/ann"), (&g1, "/ws/bob")] {
        held.push(
            ws_from("127.0.0.4", addr(gw), path)
                .await
                .expect("within the burst"),
        );
    }
    let refused = ws_from("127.0.0.4", addr(&g2), "/ws").await.err();
    assert!(
        matches!(refused, Some((429, Some(1..=2)))),
        "refused before the upgrade, with Retry-After: {refused:?}"
    );
    assert!(ws_from("127.0.0.5", addr(&g2), "/ws").await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_more_sockets_than_the_cap_across_two_gateways() {
    let _panics = testkit::panics::guard();
    let redis = testkit::RedisServer::start();
    let (g1, g2) = two_gateways(
        &redis,
        &["--ip-rate-limit", "0", "--max-sockets-per-ip", "3"],
    )
    .await;
    let mut first = ws_from("127.0.0.6", addr(&g1), "/ws").await.unwrap();
    let _second = ws_from("127.0.0.6", addr(&g2), "/ws").await.unwrap();
    let _third = ws_from("127.0.0.6", addr(&g2), "/ws/cy").await.unwrap();
    for gw in [&g1, &g2] {
        let refused = ws_from("127.0.0.6", addr(gw), "/ws").await.err();
        assert!(matches!(refused, Some((429, Some(_)))), "{refused:?}");
    }
    // Another address is unaffected.
    let _other = ws_from("127.0.0.7", addr(&g1), "/ws").await.unwrap();
    // Closing one frees a place.
    first.close(None).await.unwrap();
    drop(first);
    testkit::eventually(testkit::STEP, "a closed socket frees a place", || async {
        ws_from("127.0.0.6", addr(&g1), "/ws").await.ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_escape_its_budget_with_a_forged_x_forwarded_for() {
    let _panics = testkit::panics::guard();
    let redis = testkit::RedisServer::start();
    let gw = start(
        &redis.url(),
        "gateway",
        &[
            "--ip-rate-limit",
            "1",
            "--ip-rate-burst",
            "2",
            "--trusted-proxies",
            "127.0.0.8/32",
        ],
    )
    .await;
    let a = addr(&gw);
    // Not a trusted proxy: each forged header is ignored, one budget.
    let mut statuses = Vec::new();
    for i in 0..3 {
        let forged = format!("203.0.113.{i}");
        statuses.push(
            post_from(
                "127.0.0.9",
                a,
                &format!("f{i}"),
                &[("X-Forwarded-For", forged.as_str())],
            )
            .await
            .status,
        );
    }
    assert_eq!(statuses, [200, 200, 429]);
    // Through the trusted proxy: each client has its own budget, and the
    // proxy's own address is not what is counted.
    for i in 0..3 {
        for n in 0..2 {
            let via = format!("198.51.100.{i}");
            let answer = post_from(
                "127.0.0.8",
                a,
                &format!("p{i}-{n}"),
                &[("X-Forwarded-For", via.as_str())],
            )
            .await;
            assert_eq!(answer.status, 200, "client {i} #{n}: {answer:?}");
        }
    }
    let via = [("X-Forwarded-For", "198.51.100.0")];
    assert_eq!(post_from("127.0.0.8", a, "p0-2", &via).await.status, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_zero_the_per_address_limits_are_off() {
    let _panics = testkit::panics::guard();
    let redis = testkit::RedisServer::start();
    let gw = start(
        &redis.url(),
        "gateway",
        &[
            "--ip-rate-limit",
            "0",
            "--ip-rate-burst",
            "1",
            "--max-sockets-per-ip",
            "0",
        ],
    )
    .await;
    let mut held = Vec::new();
    for i in 0..20 {
        assert_eq!(
            post_from("127.0.0.10", addr(&gw), &format!("z{i}"), &[])
                .await
                .status,
            200
        );
        held.push(
            ws_from("127.0.0.10", addr(&gw), "/ws")
                .await
                .expect("no limit"),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_flood_native_registrations_through_two_gateways() {
    use futures_util::{SinkExt, StreamExt};
    let _panics = testkit::panics::guard();
    let redis = testkit::RedisServer::start();
    // A burst of 3: two socket opens and one register, then nothing more.
    let (g1, g2) = two_rate_limited_gateways(&redis, "3").await;
    let mut sockets = Vec::new();
    for gw in [&g1, &g2] {
        sockets.push(ws_from("127.0.0.4", addr(gw), "/ws").await.expect("open"));
    }
    let mut codes = Vec::new();
    for ws in sockets.iter_mut() {
        ws.send(tungstenite::Message::text(r#"{"event":"register"}"#))
            .await
            .unwrap();
        let answer = loop {
            let frame = tokio::time::timeout(testkit::STEP, ws.next())
                .await
                .expect("an answer in time")
                .expect("open")
                .unwrap();
            let v: Value = serde_json::from_str(frame.to_text().unwrap()).unwrap();
            if v["event"] != "hello" {
                break v;
            }
        };
        codes.push(match answer["event"].as_str() {
            Some("error") => answer["code"].as_str().unwrap().to_string(),
            other => other.unwrap().to_string(),
        });
    }
    assert_eq!(codes, ["queued", "rate_limited"]);
}
