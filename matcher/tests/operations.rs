//! Operations: metrics, graceful drain on SIGTERM (the real binary), and
//! clear start-up errors for bad configuration.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::{RedisServer, WsClient};
use wire::keys;

/// A matcher process of its own (gateway and worker), so its `/metrics`
/// moves only with what this test does.
async fn own_process(redis: &RedisServer) -> (common::MatcherProcess, std::net::SocketAddr) {
    let addr = common::free_addr();
    let listen = addr.to_string();
    let process = common::MatcherProcess::start(&redis.url(), "all", &["--listen", &listen]);
    common::until_ready(addr).await;
    (process, addr)
}

#[tokio::test]
async fn metrics_move_by_exactly_what_a_match_does() {
    let _panics = testkit::panics::guard();
    use testkit::prometheus::{delta, scrape, series};
    let redis = RedisServer::start();
    let (_process, addr) = own_process(&redis).await;
    let before = scrape(addr).await;
    assert_eq!(series(&before, r#"rvc_sockets_open{role="matcher"}"#), 0.0);
    let (mut a, _) = common::native_waiting(addr, "ann").await;
    let (mut b, _) = common::native_waiting(addr, "bob").await;
    common::matched_together(&mut a, &mut b).await;
    a.send_text("not json").await;
    assert_eq!(a.recv_event("error").await["code"], "bad_json");
    // The worker counts its pair after the script ran, and a socket times
    // its delivery after the write: wait for both.
    let deliver = r#"rvc_stage_seconds_count{stage="deliver"}"#;
    let after = testkit::eventually(testkit::STEP, "the match is counted", || async {
        let after = scrape(addr).await;
        (delta(&before, &after, "rvc_matches_total") > 0.0
            && delta(&before, &after, deliver) == 2.0)
            .then_some(after)
    })
    .await;
    // At least one pairing run (the worker also runs when nobody pairs).
    let pairing = r#"rvc_stage_seconds_count{stage="pairing"}"#;
    assert!(delta(&before, &after, pairing) >= 1.0, "{pairing}");
    for (name, moved) in [
        ("rvc_matches_total", 1.0),
        ("rvc_registrations_total", 2.0),
        ("rvc_matched_delivered_total", 2.0),
        ("rvc_time_to_match_seconds_count", 2.0),
        (r#"rvc_stage_seconds_count{stage="register"}"#, 2.0),
        (r#"rvc_stage_seconds_count{stage="stream_wait"}"#, 2.0),
        (r#"rvc_stage_seconds_count{stage="inbox"}"#, 2.0),
        (deliver, 2.0),
        (r#"rvc_errors_total{kind="bad_input"}"#, 1.0),
        (r#"rvc_errors_total{kind="redis"}"#, 0.0),
        (r#"rvc_errors_total{kind="rate_limited"}"#, 0.0),
    ] {
        assert_eq!(delta(&before, &after, name), moved, "{name}");
    }
    assert_eq!(series(&after, r#"rvc_sockets_open{role="matcher"}"#), 2.0);
    a.close().await;
    testkit::eventually(testkit::STEP, "a closed socket is counted out", || async {
        (series(&scrape(addr).await, r#"rvc_sockets_open{role="matcher"}"#) == 1.0).then_some(())
    })
    .await;
}

/// Run the binary to its exit; returns (exit code, stderr).
fn run_to_exit(args: &[&str]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_matcher"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run matcher");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status.code().unwrap_or(-1), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("matcher did not exit: {args:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bad_configuration_fails_at_start_with_one_clear_line() {
    let _panics = testkit::panics::guard();
    let (code, err) = run_to_exit(&["--redis-url", "nonsense://x"]);
    assert_ne!(code, 0);
    assert!(err.contains("--redis-url"), "{err}");

    let (code, err) = run_to_exit(&["--ticket-secret", "short", "--listen", "127.0.0.1:0"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("--ticket-secret") && err.contains("32"),
        "{err}"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, err) = run_to_exit(&["--listen", &addr]);
    assert_ne!(code, 0);
    assert!(err.contains("--listen") && err.contains(&addr), "{err}");

    let (code, err) = run_to_exit(&["--role", "everything"]);
    assert_ne!(code, 0);
    assert!(err.contains("--role"), "{err}");

    // Out-of-range values are refused by name with exit code 2, never
    // clamped into something else.
    for (flag, value) in [
        ("--rate-limit", "0"),
        ("--pairs-per-call", "0"),
        ("--heartbeat-ms", "1"),
        ("--gateway-id", "has space"),
        ("--resume-grace-secs", "0"),
    ] {
        let (code, err) = run_to_exit(&[flag, value, "--listen", "127.0.0.1:0"]);
        assert_eq!(code, 2, "{flag} {value}: {err}");
        assert!(err.contains(flag), "{flag} {value}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_gateway() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    common::restart::sigterm_drains_the_gateway(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_secret_two_processes_share_one_through_redis() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let mut gateways = Vec::new();
    for role in ["all", "gateway"] {
        let addr = common::free_addr();
        let listen = addr.to_string();
        // The test defaults, without --ticket-secret.
        let mut args = common::args(&redis.url(), role, &["--listen", &listen]);
        let at = args.iter().position(|a| a == "--ticket-secret").unwrap();
        args.drain(at..at + 2);
        let process = common::MatcherProcess::run(args);
        common::until_ready(addr).await;
        gateways.push((process, addr));
    }
    assert_eq!(redis.command(&["EXISTS", &keys::ticket_secret()]), "1");
    // Ann on one process, Bob on the other: each ticket is signed by its
    // own process.
    let (mut ann, _) = common::native_waiting(gateways[0].1, "ann").await;
    let (mut bob, _) = common::native_waiting(gateways[1].1, "bob").await;
    let (a, b) = common::matched_together(&mut ann, &mut bob).await;
    // A signaller, also without a configured secret, accepts both.
    let url = redis.url();
    let node = signaller::spawn(
        <signaller::Config as clap::Parser>::try_parse_from([
            "signaller",
            "--listen",
            "127.0.0.1:0",
            "--redis-url",
            &url,
        ])
        .unwrap(),
    )
    .await
    .expect("signaller starts");
    let mut joined_sockets = Vec::new();
    for m in [&a, &b] {
        let mut ws = WsClient::connect(&format!("ws://{}/ws", node.addr()))
            .await
            .unwrap();
        ws.send_json(&serde_json::json!({"event": "join", "ticket": m["ticket"]}))
            .await;
        let joined = ws.recv().await;
        assert_eq!(joined["event"], "joined", "{joined}");
        joined_sockets.push(ws);
    }
}
