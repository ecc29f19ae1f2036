//! A Redis outage or restart is survived without restarting
//! the nodes.

use serde_json::json;
use testkit::{RedisServer, STEP};
use wire::user::Role;

use crate::common::*;

async fn status(url: &str) -> Option<u16> {
    reqwest::get(url).await.ok().map(|r| r.status().as_u16())
}

/// Redis is killed and restarts empty: `/readyz` reports 503 meanwhile,
/// nothing panics, and afterwards rooms work again across nodes (new ones,
/// and a room whose sockets stayed open, through restored subscriptions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_survive_a_redis_restart() {
    let _panics = testkit::panics::guard();
    let mut redis = RedisServer::start();
    let (n1, n2) = two_nodes(&redis).await;
    let ready = http_url(&n1, "/readyz");
    assert_eq!(status(&ready).await, Some(200));

    let room = new_room();
    let (mut a, _) = join_native(&n1, &ticket(&room, "s:A", "ann", Role::Initiator)).await;
    let (mut b, _) = join_native(&n2, &ticket(&room, "s:B", "bob", Role::Responder)).await;
    assert_eq!(a.recv().await["event"], "peer-joined");

    redis.stop();
    testkit::eventually(STEP, "/readyz 503 while Redis is down", || async {
        (status(&ready).await == Some(503)).then_some(())
    })
    .await;
    // A join now is told to retry, not left hanging.
    let mut c = testkit::WsClient::connect(&native_url(&n1)).await.unwrap();
    let room2 = new_room();
    let ticket_c = ticket(&room2, "s:C", "cy", Role::Initiator);
    c.send_json(&json!({"event":"join","ticket":ticket_c}))
        .await;
    expect_error(&mut c, "unavailable").await;

    redis.restart();
    for node in [&n1, &n2] {
        let ready = http_url(node, "/readyz");
        testkit::eventually(STEP, "/readyz 200 after the restart", || async {
            (status(&ready).await == Some(200)).then_some(())
        })
        .await;
    }

    // A new room, across nodes, including the before-join backlog.
    c.send_json(&json!({"event":"join","ticket":ticket_c}))
        .await;
    assert_eq!(c.recv().await["event"], "joined");
    c.send_json(&signal(&room2, &json!({"n":1}))).await;
    sync(&mut c).await;
    let (mut d, _) = join_native(&n2, &ticket(&room2, "s:D", "di", Role::Responder)).await;
    assert_eq!(d.recv().await["data"], json!({"n":1}));
    assert_eq!(c.recv().await["event"], "peer-joined");
    d.send_json(&signal(&room2, &json!({"n":2}))).await;
    assert_eq!(c.recv().await["data"], json!({"n":2}));

    // The room from before the restart still relays (its log is gone, but
    // both nodes subscribed to its channel again).
    a.send_json(&signal(&room, &json!({"n":3}))).await;
    let got = b.recv().await;
    assert_eq!(got["data"], json!({"n":3}), "{got}");
    b.send_json(&signal(&room, &json!({"n":4}))).await;
    assert_eq!(a.recv().await["data"], json!({"n":4}));
    for ws in [&mut a, &mut b, &mut c, &mut d] {
        ws.expect_silence(QUIET).await;
    }
}
