//! fred on a Redis Cluster slot in the middle of a migration: a command
//! for a key that has moved already is answered `ASK` by the old node and
//! sent on, after `ASKING`, to the new one. It must get its own reply, and
//! so must every other command in flight on that connection.
//!
//! fred 10.1.0 sent `ASKING` and then read "its" reply as the next frame
//! of the connection without waiting for the commands already in flight
//! there: the `ASKING` took the reply of the oldest one, which got `OK`
//! (or, with more in flight, the reply of the command after it); and it
//! sent the redirected command back to the old node, until "Too many
//! redirections.". On 10.1.0 this test sees hundreds of GETs answered
//! `OK` or with another key's value. The workspace builds fred with both
//! fixed (`vendor/fred/PATCHED.md`).
//!
//! Named `cluster_*`: `scripts/test` runs it on its own cluster pass.

use std::time::Duration;

use fred::prelude::*;
use service::redis_conn::{connect, RedisTarget};
use testkit::{RedisCluster, Reply};

/// Keys whose slot the primary on `port` serves, `n` of them.
fn keys_on(cluster: &RedisCluster, port: u16, prefix: &str, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("{prefix}{i}"))
        .filter(|k| cluster.owner_of(k) == port)
        .take(n)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_ask_redirection_keeps_every_reply_with_its_command() {
    let _panics = testkit::panics::guard();
    let cluster = RedisCluster::start();
    let primaries = cluster.primaries();
    let (source, target) = (primaries[0], primaries[1]);
    // Keys served by the target node, each holding its own name.
    let settled = keys_on(&cluster, target, "settled", 40);
    for k in &settled {
        cluster.query(&["SET", k, k]);
    }
    // One slot of the source migrating to the target, its key moved
    // already: the source answers ASK for it.
    let moving = keys_on(&cluster, source, "moving", 1).remove(0);
    let slot = match cluster.query(&["CLUSTER", "KEYSLOT", &moving]) {
        Reply::Int(s) => s.to_string(),
        other => panic!("CLUSTER KEYSLOT: {other:?}"),
    };
    let (source_id, target_id) = (cluster.node_id(source), cluster.node_id(target));
    let importing = cluster.on_node(
        target,
        &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &source_id],
    );
    assert_eq!(importing, Reply::Text("OK".into()));
    let migrating = cluster.on_node(
        source,
        &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &target_id],
    );
    assert_eq!(migrating, Reply::Text("OK".into()));
    cluster.query(&["SET", &moving, &moving]);
    assert!(
        matches!(cluster.on_node(source, &["GET", &moving]), Reply::Error(e) if e.starts_with("ASK ")),
        "the source redirects the moved key"
    );

    let redis = connect(&RedisTarget::new(&cluster.url(), None).unwrap())
        .await
        .unwrap();
    // Steady traffic to the target node from several callers (so that
    // commands are in flight on its connection at any moment) while one
    // caller reads the moved key again and again (each read answered ASK
    // by the source, then sent on to the target).
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..8 {
        let (redis, keys) = (redis.clone(), settled.clone());
        callers.spawn(async move {
            let mut wrong = Vec::new();
            for i in 0..300 {
                let key = &keys[(caller * 5 + i) % keys.len()];
                check(&redis, key, &mut wrong).await;
            }
            wrong
        });
    }
    callers.spawn(async move {
        let mut wrong = Vec::new();
        for _ in 0..100 {
            check(&redis, &moving, &mut wrong).await;
        }
        wrong
    });
    let mut wrong = Vec::new();
    while let Some(done) = callers.join_next().await {
        wrong.extend(done.unwrap());
    }
    assert!(
        wrong.is_empty(),
        "{} replies not of their own command, e.g. {:#?}",
        wrong.len(),
        &wrong[..wrong.len().min(8)]
    );
}

/// `GET key`, whose value is its own name: anything else goes to `wrong`.
async fn check(redis: &Client, key: &str, wrong: &mut Vec<String>) {
    let got: Result<Option<String>, _> =
        tokio::time::timeout(Duration::from_secs(5), redis.get(key))
            .await
            .expect("answered within 5 s");
    if got.as_ref().ok().and_then(|v| v.as_deref()) != Some(key) {
        wrong.push(format!("GET {key} -> {got:?}"));
    }
}
