//! Invariant 3: a register accepted by a gateway reaches the pool even if
//! the worker that read it dies before acknowledging it.

mod common;

use fred::prelude::*;
use testkit::RedisServer;
use wire::keys;

#[tokio::test]
async fn entries_read_by_a_dead_worker_are_taken_over() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let gateway = common::start(&redis.url(), "gateway", &[]).await;
    let addr = gateway.gateway_addr().unwrap();
    let (mut ann, _) = common::native_waiting(addr, "ann").await;
    let (mut bob, _) = common::native_waiting(addr, "bob").await;

    // A worker reads both entries and dies before acknowledging them: it
    // is exactly this read, then nothing.
    let doomed = service::redis_conn::connect(&redis.url()).await.unwrap();
    let _: () = doomed
        .xgroup_create(keys::register_stream(), keys::WORKER_GROUP, "0", true)
        .await
        .unwrap();
    let read: fred::types::streams::XReadResponse<String, String, String, bytes::Bytes> = doomed
        .xreadgroup_map(
            keys::WORKER_GROUP,
            "doomed-worker",
            Some(10),
            None,
            false,
            keys::register_stream(),
            ">",
        )
        .await
        .unwrap();
    let taken: usize = read.values().map(Vec::len).sum();
    assert_eq!(taken, 2, "the doomed worker holds both registrations");
    drop(doomed);

    // A healthy worker takes the pending entries over and pairs the users.
    let _worker = common::start(&redis.url(), "worker", &["--claim-idle-ms", "300"]).await;
    let a = ann.recv_event("matched").await;
    let b = bob.recv_event("matched").await;
    assert_eq!(a["room_code"], b["room_code"]);
}
