//! Bad configuration fails at start, with one clear line and a non-zero exit.

use std::process::Command;

use crate::common::*;

async fn start_error(extra: &[&str]) -> String {
    let redis = testkit::RedisServer::start();
    match signaller::spawn(config(&redis, extra)).await {
        Ok(_) => panic!("started with {extra:?}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn bad_configuration_fails_at_start_with_a_clear_error() {
    let _panics = testkit::panics::guard();
    let e = start_error(&["--redis-url", "http://nope"]).await;
    assert!(e.starts_with("--redis-url"), "{e}");
    let e = start_error(&["--ticket-secret", "short"]).await;
    assert!(e.starts_with("--ticket-secret") && e.contains("32"), "{e}");
    let e = start_error(&["--heartbeat-ms", "1000", "--node-ttl-ms", "1000"]).await;
    assert!(e.contains("--node-ttl-ms"), "{e}");
    let e = start_error(&["--room-log-budget-bytes", "1000"]).await;
    assert!(
        e.starts_with("--room-log-budget-bytes") && e.contains("32768"),
        "{e}"
    );
    let e = start_error(&["--closed-room-ttl-secs", "0"]).await;
    assert!(e.starts_with("--closed-room-ttl-secs"), "{e}");
    let e = start_error(&["--room-log-ttl-secs", "30", "--closed-room-ttl-secs", "60"]).await;
    assert!(e.starts_with("--closed-room-ttl-secs"), "{e}");
    let e = start_error(&["--max-rooms-per-user", "0"]).await;
    assert!(e.starts_with("--max-rooms-per-user"), "{e}");
    let e = start_error(&["--resume-grace-secs", "0"]).await;
    assert!(e.starts_with("--resume-grace-secs"), "{e}");
    let e = start_error(&[
        "--room-log-ttl-secs",
        "60",
        "--closed-room-ttl-secs",
        "60",
        "--resume-grace-secs",
        "60",
    ])
    .await;
    assert!(e.starts_with("--resume-grace-secs"), "{e}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let e = start_error(&["--listen", &addr]).await;
    assert!(e.starts_with("--listen") && e.contains(&addr), "{e}");

    // The binary prints one line and exits non-zero.
    let out = Command::new(env!("CARGO_BIN_EXE_signaller"))
        .args(["--listen", &addr, "--ticket-secret", "short"])
        .env_remove("RVC_TICKET_SECRET")
        .output()
        .expect("run the binary");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("signaller: --ticket-secret"), "{stderr}");
}
