//! `/metrics` scrapes as Prometheus text, and the relay counters move when
//! a signal is relayed across nodes.

use serde_json::json;
use testkit::RedisServer;
use wire::user::Role;

use crate::common::*;

/// Sum of the samples of `name` (any labels) in Prometheus text; panics on
/// a line that is not `name{labels} value`.
fn sample_sum(text: &str, name: &str) -> f64 {
    let mut sum = 0.0;
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (metric, value) = line.rsplit_once(' ').expect("`name value` line");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        if metric == name || metric.starts_with(&format!("{name}{{")) {
            sum += value;
        }
    }
    sum
}

async fn scrape(node: &signaller::RunningNode) -> String {
    reqwest::get(http_url(node, "/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn relay_counters_and_latency_move() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let (n1, n2) = (node(&redis, &[]).await, node(&redis, &[]).await);
    let room = new_room();
    let (mut a, _) = join_native(&n1, &ticket(&room, "s:A", "ann", Role::Initiator)).await;
    let (mut b, _) = join_native(&n2, &ticket(&room, "s:B", "bob", Role::Responder)).await;
    a.recv_event("peer-joined").await;

    let before = scrape(&n2).await;
    a.send_json(&signal(&room, &json!({"type":"offer","sdp":"v=0"})))
        .await;
    b.recv_event("signal").await;
    a.send_text("{broken").await;
    expect_error(&mut a, "bad_json").await;
    let after = scrape(&n2).await;

    let moved = |name: &str| sample_sum(&after, name) - sample_sum(&before, name);
    assert!(moved("rvc_signals_relayed_total") >= 1.0, "{after}");
    assert!(moved("rvc_relay_latency_seconds_count") >= 1.0, "{after}");
    assert!(sample_sum(&after, "rvc_sockets_open") >= 2.0);
    assert!(sample_sum(&scrape(&n1).await, "rvc_errors_total") >= 1.0);
}
