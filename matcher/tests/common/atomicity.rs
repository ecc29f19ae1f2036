//! The atomicity scenario, shared by the single-server and cluster tests.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures_util::future::join_all;
use futures_util::{stream, StreamExt};
use serde_json::json;
use testkit::TestRedis;

const USERS: usize = 2000;

/// 2,000 users register at once through two gateways while four workers
/// pair them: each is matched exactly once, one initiator per room, one
/// room record per pair, the pool empty after. On any Redis (the matcher's
/// `atomicity` test runs it on one server, its `cluster` test on a
/// cluster).
pub async fn two_thousand_users(redis: &impl TestRedis) {
    let gateways = [
        super::start(&redis.url(), "gateway", &[]).await,
        super::start(&redis.url(), "gateway", &[]).await,
    ];
    let mut workers = Vec::new();
    for _ in 0..4 {
        workers.push(super::start(&redis.url(), "worker", &[]).await);
    }
    let addrs: Vec<_> = gateways.iter().map(|g| g.gateway_addr().unwrap()).collect();

    // Every user connects (a hundred handshakes at a time), then all
    // register at once and wait for `matched`.
    let mut sockets: Vec<(usize, testkit::WsClient, String)> = stream::iter(0..USERS)
        .map(|i| {
            let addr = addrs[i % 2];
            async move {
                let (ws, session) = super::native(addr).await;
                (i, ws, session)
            }
        })
        .buffer_unordered(100)
        .collect()
        .await;
    let started = std::time::Instant::now();
    let redis_ref = redis;
    let users = sockets.drain(..).map(|(i, mut ws, session)| async move {
        ws.send_json(&json!({"event": "register", "name": format!("u{i}")}))
            .await;
        let matched = loop {
            match ws.next_within(Duration::from_secs(30)).await {
                Some(testkit::Next::Json(v)) if v["event"] == "matched" => break v,
                Some(testkit::Next::Json(v)) if v["event"] == "queued" => continue,
                other => {
                    let user = wire::user::UserKey::native(&session);
                    panic!(
                        "user {i}: expected matched, got {other:?}; pool size {}, waiting {:?}, notice {:?}, loc {:?}, pending {:?}",
                        redis_ref.command(&["ZCARD", &wire::keys::pool()]),
                        redis_ref.command(&["GET", &wire::keys::waiting(&user)]),
                        redis_ref.command(&["EXISTS", &wire::keys::notice(&user)]),
                        redis_ref.command(&["GET", &wire::keys::location(&user)]),
                        redis_ref.command(&["XLEN", &wire::keys::register_stream()]),
                    )
                }
            }
        };
        (ws, session, matched)
    });
    let results = join_all(users).await;
    println!("{USERS} users matched in {:?}", started.elapsed());

    let mut rooms: HashMap<String, Vec<(String, bool)>> = HashMap::new();
    let mut sessions = HashSet::new();
    for (_, session, matched) in &results {
        assert!(sessions.insert(session.clone()), "session ids are unique");
        rooms
            .entry(matched["room_code"].as_str().unwrap().to_string())
            .or_default()
            .push((session.clone(), matched["initiator"].as_bool().unwrap()));
    }
    assert_eq!(rooms.len(), USERS / 2, "every user is in exactly one room");
    for (room, members) in &rooms {
        // Two distinct users: every session above is unique.
        assert_eq!(members.len(), 2, "room {room} has two users");
        assert_eq!(
            members.iter().filter(|(_, init)| *init).count(),
            1,
            "room {room} has exactly one initiator"
        );
    }
    // Redis holds exactly one room record per pair, naming its two members
    // with the roles they were told.
    let room_keys = redis.keys(&wire::keys::room("*")).len();
    assert_eq!(room_keys, USERS / 2, "one room record per pair, no more");
    for (room, members) in &rooms {
        let key = wire::keys::room(room);
        for (session, init) in members {
            let user = wire::user::UserKey::native(session);
            let role = redis.command(&["HGET", &key, user.as_str()]);
            let want = if *init { "initiator" } else { "responder" };
            assert_eq!(role, want, "room {room}: {session}'s role in Redis");
        }
    }
    // Nobody gets a second `matched`: every socket is watched at once.
    let mut sockets: Vec<_> = results.into_iter().map(|(ws, _, _)| ws).collect();
    join_all(
        sockets
            .iter_mut()
            .map(|ws| ws.expect_silence(Duration::from_millis(500))),
    )
    .await;
    assert_eq!(redis.command(&["ZCARD", &wire::keys::pool()]), "0");
}
