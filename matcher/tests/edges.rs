//! The service edges as both binaries wire them (`service::listener`,
//! `service::redis_conn`, `service::internal`): a silent client is closed
//! after the header timeout, a rediss:// URL to a plaintext Redis stops the
//! start, and the internal listener takes `/metrics` and `/readyz` off the
//! public port.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use testkit::RedisServer;
use tokio::io::AsyncReadExt;

/// Whether the server closes a connection that never sends a request
/// within `limit`.
async fn silent_client_closed(addr: SocketAddr, limit: Duration) -> bool {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(limit, tcp.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn slowloris_silent_client_is_closed_by_both_services() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let matcher = common::start(&redis.url(), "all", &["--header-timeout-secs", "1"]).await;
    let node = signaller::spawn(common::signaller_config(
        &redis,
        &["--header-timeout-secs", "1"],
    ))
    .await
    .unwrap();
    let (m, s) = tokio::join!(
        silent_client_closed(matcher.gateway_addr().unwrap(), Duration::from_secs(5)),
        silent_client_closed(node.addr(), Duration::from_secs(5)),
    );
    assert!(m, "the matcher gateway keeps a silent connection");
    assert!(s, "the signaller keeps a silent connection");
    matcher.kill();
    node.kill();
}

#[tokio::test]
async fn rediss_url_to_a_plaintext_redis_stops_both_services_at_start() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let url = format!("rediss://:hunter2@127.0.0.1:{}", redis.port());
    let e = match matcher::spawn(common::config(&url, "all", &[])).await {
        Ok(_) => panic!("the matcher started over plaintext"),
        Err(e) => e.to_string(),
    };
    assert!(e.starts_with("--redis-url") && e.contains("TLS"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    let e = match signaller::spawn(common::signaller_config(&redis, &["--redis-url", &url])).await {
        Ok(_) => panic!("the signaller started over plaintext"),
        Err(e) => e.to_string(),
    };
    assert!(e.starts_with("--redis-url") && e.contains("TLS"), "{e}");
}

#[tokio::test]
async fn metrics_scrape_on_the_public_port_is_refused_with_an_internal_listener() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let internal = ["--internal-listen", "127.0.0.1:0"];
    let matcher = common::start(&redis.url(), "all", &internal).await;
    let worker = common::start(&redis.url(), "worker", &internal).await;
    let node = signaller::spawn(common::signaller_config(&redis, &internal))
        .await
        .unwrap();
    for (public, inside) in [
        (
            matcher.gateway_addr().unwrap(),
            matcher.internal_addr().unwrap(),
        ),
        (node.addr(), node.internal_addr().unwrap()),
    ] {
        assert_eq!(common::get_status(public, "/metrics").await, 404);
        assert_eq!(common::get_status(public, "/readyz").await, 404);
        assert_eq!(common::get_status(public, "/healthz").await, 200);
        assert_eq!(common::get_status(inside, "/metrics").await, 200);
        assert_eq!(common::get_status(inside, "/readyz").await, 200);
    }
    // A worker, which has no public port, shows its metrics there too.
    let scrape = testkit::prometheus::scrape(worker.internal_addr().unwrap()).await;
    assert!(scrape.contains_key("rvc_matches_total"), "{scrape:?}");
    // Without the flag, the public port serves them as before.
    let plain = common::start(&redis.url(), "gateway", &[]).await;
    assert_eq!(
        common::get_status(plain.gateway_addr().unwrap(), "/metrics").await,
        200
    );
    assert!(plain.internal_addr().is_none());
    for running in [matcher, worker, plain] {
        running.kill();
    }
    node.kill();
}
