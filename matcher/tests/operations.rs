//! Operations: metrics, graceful drain on SIGTERM (the real binary), and
//! clear start-up errors for bad configuration.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testkit::{Next, RedisServer, WsClient};
use wire::keys;

/// Parse Prometheus text: metric line → value, skipping comments. Panics on
/// a line that is not `name{labels} value`.
fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').expect("`name value` line");
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {l:?}"));
            assert!(
                name.chars().next().unwrap().is_ascii_alphabetic(),
                "bad metric name in {l:?}"
            );
            (name.to_string(), value)
        })
        .collect()
}

fn value(metrics: &[(String, f64)], name: &str) -> f64 {
    metrics
        .iter()
        .filter(|(n, _)| n == name || n.starts_with(&format!("{name}{{")))
        .map(|(_, v)| *v)
        .sum()
}

async fn scrape(addr: std::net::SocketAddr) -> Vec<(String, f64)> {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    parse_prometheus(&text)
}

#[tokio::test]
async fn metrics_parse_and_move_when_a_match_happens() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let m = common::start_all(&redis.url()).await;
    let addr = m.gateway_addr().unwrap();
    let before = scrape(addr).await;
    let (mut a, _) = common::native_waiting(addr, "ann").await;
    let (mut b, _) = common::native_waiting(addr, "bob").await;
    a.recv_event("matched").await;
    b.recv_event("matched").await;
    a.send_text("not json").await;
    a.recv_event("error").await;
    let after = testkit::eventually(testkit::STEP, "counters move", || async {
        let after = scrape(addr).await;
        (value(&after, "rvc_matches_total") >= value(&before, "rvc_matches_total") + 1.0)
            .then_some(after)
    })
    .await;
    for name in [
        "rvc_registrations_total",
        "rvc_matched_delivered_total",
        "rvc_time_to_match_seconds_count",
    ] {
        assert!(
            value(&after, name) >= value(&before, name) + 2.0,
            "{name} moved by two"
        );
    }
    assert!(value(&after, "rvc_errors_total") >= 1.0);
    assert!(value(&after, "rvc_sockets_open") >= 2.0);
}

/// The real `matcher` binary, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn matcher_bin(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_matcher"));
    cmd.args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Run the binary to its exit; returns (exit code, stderr).
fn run_to_exit(args: &[&str]) -> (i32, String) {
    let mut child = matcher_bin(args).spawn().expect("run matcher");
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_gateway() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let port = testkit::free_port();
    let listen = format!("127.0.0.1:{port}");
    let url = redis.url();
    let _proc = Process(
        matcher_bin(&[
            "--role",
            "gateway",
            "--listen",
            &listen,
            "--redis-url",
            &url,
            "--ticket-secret",
            common::SECRET,
            "--drain-grace-secs",
            "3",
        ])
        .spawn()
        .unwrap(),
    );
    let addr: std::net::SocketAddr = listen.parse().unwrap();
    testkit::eventually(testkit::STEP, "gateway ready", || async {
        (common::get_status(addr, "/readyz").await == 200).then_some(())
    })
    .await;
    let other = common::start_all(&url).await;
    let other_addr = other.gateway_addr().unwrap();

    // Ann waits on the draining gateway; a legacy user is connected too.
    let (mut ann, ann_session) = common::native_waiting(addr, "ann").await;
    let mut legacy = WsClient::connect(&common::ws_url(addr, "/ws/leo"))
        .await
        .unwrap();
    let pid = _proc.0.id().to_string();
    let term_sent = Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());

    // Not ready at once; native clients are told to move.
    testkit::eventually(Duration::from_secs(2), "/readyz fails", || async {
        (common::get_status(addr, "/readyz").await != 200).then_some(())
    })
    .await;
    let moved = ann.recv_event("reconnect").await;
    assert_eq!(moved["reason"], "draining");
    // Ann was withdrawn cleanly: not in the pool, not waiting.
    let ann_key = wire::user::UserKey::native(&ann_session);
    testkit::eventually(testkit::STEP, "ann withdrawn", || async {
        (redis.command(&["EXISTS", &keys::waiting(&ann_key)]) == "0").then_some(())
    })
    .await;
    assert_eq!(
        redis.command(&["ZSCORE", &keys::pool(), ann_key.as_str()]),
        ""
    );
    ann.close().await;

    // Ann moves to the other gateway and is matched there exactly once.
    let (mut ann2, _) = common::native_waiting(other_addr, "ann").await;
    let (mut bob, _) = common::native_waiting(other_addr, "bob").await;
    let a = ann2.recv_event("matched").await;
    assert_eq!(a["room_code"], bob.recv_event("matched").await["room_code"]);
    ann2.expect_silence(Duration::from_millis(200)).await;

    // The legacy socket is closed when the grace period ends, and the
    // process exits within it (plus a little).
    match legacy.next_within(Duration::from_secs(6)).await {
        Some(Next::Closed(code)) => assert_eq!(code, Some(1001)),
        other => panic!("legacy socket not closed at grace end: {other:?}"),
    }
    let mut proc = _proc;
    let deadline = Instant::now() + Duration::from_secs(8);
    let status = loop {
        if let Some(s) = proc.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "gateway did not exit after the grace period"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "clean exit: {status:?}");
    let took = term_sent.elapsed();
    assert!(took < Duration::from_secs(7), "exited after {took:?}");
}
