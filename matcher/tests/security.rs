//! Attacks on the matcher, each stopped: a test per attack, named after it.
//! Clients of different addresses are played from distinct loopback
//! addresses (127.0.0.x).

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::*;
use serde_json::json;
use testkit::{Next, RedisServer, WsClient};

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// The socket's next frame is its close, with `code`: it was told nothing
/// before it.
async fn closed_having_got_nothing(ws: &mut WsClient, code: u16) {
    match ws.next_within(testkit::STEP).await {
        Some(Next::Closed(c)) => assert_eq!(c, Some(code)),
        other => panic!("expected the close {code} and nothing before it, got {other:?}"),
    }
}

/// Wait until a socket for the legacy `name` is located (its gateway
/// holds it in Redis).
async fn until_located(redis: &RedisServer, name: &str) {
    let location = wire::keys::location(&wire::user::UserKey::legacy(name));
    testkit::eventually(testkit::STEP, "the socket is located", || async {
        (redis.command(&["EXISTS", &location]).trim() == "1").then_some(())
    })
    .await;
}

const QUIET: Duration = Duration::from_millis(400);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_take_a_registered_legacy_name_from_another_address() {
    let _panics = testkit::panics::guard();
    let (_redis, _m, addr) = redis_and_matcher().await;

    // Alice registers over HTTP; her socket is a few moments late.
    let (status, _) = post_register_from(addr, "alice", ip(3)).await;
    assert_eq!(status, 200);
    // A stranger opens /ws/alice from another address meanwhile: refused.
    let mut stranger = legacy_socket_from(addr, "alice", ip(2)).await;
    assert_eq!(stranger.recv_event("error").await["code"], "name_taken");
    assert_eq!(stranger.recv_close().await, Some(4409));
    // Nor can the stranger register the name.
    let (status, body) = post_register_from(addr, "alice", ip(2)).await;
    assert_eq!(status, 409, "{body}");

    // Alice's own socket comes and she is matched as usual.
    let mut alice = legacy_socket_from(addr, "alice", ip(3)).await;
    let mut bob = legacy_user_from(addr, "bob", ip(4)).await;
    matched_together(&mut alice, &mut bob).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_opening_the_socket_first_gets_nothing_and_is_replaced() {
    let _panics = testkit::panics::guard();
    let (redis, _m, addr) = redis_and_matcher().await;

    // The stranger is first on /ws/alice, before alice registers.
    let mut stranger = legacy_socket_from(addr, "alice", ip(2)).await;
    until_located(&redis, "alice").await;
    // Alice's socket takes the name over; the stranger's is closed, having
    // been told nothing.
    let mut alice = legacy_user_from(addr, "alice", ip(3)).await;
    closed_having_got_nothing(&mut stranger, 4410).await;
    let mut bob = legacy_user_from(addr, "bob", ip(4)).await;
    matched_together(&mut alice, &mut bob).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_take_a_notice_by_holding_the_socket_before_the_registrant_connects() {
    let _panics = testkit::panics::guard();
    let (redis, _m, addr) = redis_and_matcher().await;

    // The stranger holds /ws/alice; alice registers over HTTP from her own
    // address, and is matched before her socket comes.
    let mut stranger = legacy_socket_from(addr, "alice", ip(2)).await;
    until_located(&redis, "alice").await;
    assert_eq!(post_register_from(addr, "alice", ip(3)).await.0, 200);
    let mut bob = legacy_user_from(addr, "bob", ip(4)).await;
    let code = bob.recv_event("matched").await["room_code"].clone();
    // The notice for alice waits for her own socket, which replaces the
    // stranger's and takes it; the stranger is closed, never having
    // received it (nor anything else).
    let mut alice = legacy_socket_from(addr, "alice", ip(3)).await;
    assert_eq!(alice.recv_event("matched").await["room_code"], code);
    closed_having_got_nothing(&mut stranger, 4410).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_socket_for_the_name_inherits_no_partner() {
    let _panics = testkit::panics::guard();
    let (_redis, _m, addr) = redis_and_matcher().await;

    let mut alice = legacy_user_from(addr, "alice", ip(3)).await;
    let mut bob = legacy_user_from(addr, "bob", ip(4)).await;
    matched_together(&mut alice, &mut bob).await;
    alice.close().await;
    // Someone opens /ws/alice once alice is gone, and writes to "her" partner.
    let mut later = testkit::eventually(Duration::from_secs(5), "the name is free", || async {
        let mut ws = legacy_socket_from(addr, "alice", ip(2)).await;
        match ws.next_within(QUIET).await {
            None => Some(ws),
            Some(_) => None,
        }
    })
    .await;
    later
        .send_json(&json!({"event":"chat","peer":"bob","message":"it's me, alice"}))
        .await;
    assert_eq!(later.recv_event("error").await["code"], "no_partner");
    bob.expect_silence(QUIET).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_previous_partner_cannot_write_into_the_next_room() {
    let _panics = testkit::panics::guard();
    let (_redis, _m, addr) = redis_and_matcher().await;

    let mut ann = legacy_user_from(addr, "ann", ip(3)).await;
    let mut bob = legacy_user_from(addr, "bob", ip(4)).await;
    matched_together(&mut ann, &mut bob).await;
    // Ann moves on to carol; bob stays behind with his old partner state.
    let mut carol = legacy_user_from(addr, "carol", ip(5)).await;
    assert_eq!(post_register_from(addr, "ann", ip(3)).await.0, 200);
    matched_together(&mut ann, &mut carol).await;

    bob.send_json(&json!({"event":"chat","peer":"ann","message":"injected"}))
        .await;
    assert_eq!(bob.recv_event("error").await["code"], "no_partner");
    ann.expect_silence(QUIET).await;
    // The current partners still talk.
    carol
        .send_json(&json!({"event":"chat","peer":"ann","message":"hi ann"}))
        .await;
    let got = ann.recv_event("chat").await;
    assert_eq!(
        (got["sender"].as_str(), got["message"].as_str()),
        (Some("carol"), Some("hi ann"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_site_form_cannot_register_names() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let m = start(
        &redis.url(),
        "all",
        &["--allowed-origins", "https://chat.example"],
    )
    .await;
    let addr = m.gateway_addr().unwrap();
    let post = |content_type: &'static str, origin: Option<&'static str>| {
        let mut req = reqwest::Client::new()
            .post(format!("http://{addr}/registerForMatching"))
            .header("content-type", content_type)
            .body(r#"{"name":"victim"}"#)
            .timeout(testkit::STEP);
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        async move { req.send().await.expect("POST").status().as_u16() }
    };
    // A text/plain form needs no CORS preflight: refused.
    assert_eq!(post("text/plain", None).await, 415);
    // Another site's page: refused whatever the content type.
    assert_eq!(
        post("application/json", Some("https://evil.example")).await,
        403
    );
    // The page's own origin, as JSON: accepted.
    assert_eq!(
        post(
            "application/json; charset=utf-8",
            Some("https://chat.example")
        )
        .await,
        200
    );
    let waiting = redis.command(&[
        "EXISTS",
        &wire::keys::waiting(&wire::user::UserKey::legacy("victim")),
    ]);
    assert_eq!(waiting.trim(), "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_site_cannot_frame_the_page_or_run_its_scripts_in_it() {
    let _panics = testkit::panics::guard();
    let (_redis, _m, addr) = redis_and_matcher().await;
    let resp = reqwest::get(format!("http://{addr}/"))
        .await
        .expect("GET /");
    let csp = resp
        .headers()
        .get("content-security-policy")
        .expect("a CSP")
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    // Nothing but the page's own files is served.
    for path in ["/package.json", "/test/state.test.js", "/e2e/package.json"] {
        assert_eq!(get_status(addr, path).await, 404, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_legacy_api_off_its_weaker_identity_is_not_offered() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let m = start(&redis.url(), "all", &["--legacy-api", "off"]).await;
    let addr = m.gateway_addr().unwrap();
    assert_eq!(register_answer(addr, "alice", ip(3), &[]).await.status, 404);
    assert!(WsClient::connect(&ws_url(addr, "/ws/alice")).await.is_err());
    // The native API works.
    native_waiting(addr, "Zoë").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_registration_expires_instead_of_blocking_its_user() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    // A gateway with no worker: registrations stay unread on the stream.
    let m = start(&redis.url(), "gateway", &[]).await;
    let addr = m.gateway_addr().unwrap();
    let mut users = Vec::new();
    for i in 0..5 {
        users.push(native_waiting(addr, &format!("u{i}")).await);
    }
    // Nothing unread is trimmed away...
    let len = redis.command(&["XLEN", &wire::keys::register_stream()]);
    assert_eq!(len.trim(), "5");
    // ...and a waiting key lives a minute at most (its socket refreshes it),
    // never a day: a registration whose socket is gone cannot keep its user
    // "already waiting".
    let key = wire::keys::waiting(&wire::user::UserKey::native(&users[0].1));
    let ttl: i64 = redis.command(&["PTTL", &key]).trim().parse().unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "PTTL {ttl}");
    // Once a worker has moved them into the pool, the entries are gone.
    let _w = start(&redis.url(), "worker", &[]).await;
    testkit::eventually(Duration::from_secs(5), "entries handled", || async {
        (redis
            .command(&["XLEN", &wire::keys::register_stream()])
            .trim()
            == "0")
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_racing_a_pairing_never_matches_a_user_twice() {
    use matcher::store::register_reader::RegisterReader;
    use matcher::store::{Located, PairSettings, Registered, Store};
    use wire::stored::Location;
    use wire::user::UserKey;

    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let target = service::redis_conn::RedisTarget::new(&redis.url(), None).unwrap();
    let client = service::redis_conn::connect(&target).await.unwrap();
    let reader_client = service::redis_conn::connect_blocking(&target)
        .await
        .unwrap();
    let store = Store::new(client);
    store.ensure_group().await.unwrap();
    store.heartbeat("gw1", Duration::from_secs(30)).await;
    let (a, b) = (UserKey::native("A"), UserKey::native("B"));
    let who = wire::moderation::Who::address("127.0.0.1");
    for (user, socket) in [(&a, "S1"), (&b, "S2")] {
        let here = Location {
            addr: "127.0.0.1".into(),
            gateway: "gw1".into(),
            socket: socket.into(),
        };
        assert_eq!(
            store.locate(user, &here, false).await.unwrap(),
            Located::Here(None)
        );
    }
    assert_eq!(
        store
            .register(&a, "RA", "127.0.0.1", "a", &who, None, false, None)
            .await
            .unwrap(),
        Registered::Queued
    );
    assert_eq!(
        store
            .register(&b, "RB", "127.0.0.1", "b", &who, None, false, None)
            .await
            .unwrap(),
        Registered::Queued
    );
    let reader = RegisterReader::new(reader_client, "c1", 10);
    let entries = reader.read(Duration::from_millis(100)).await.unwrap();
    let settings = PairSettings {
        pairs_per_call: 1,
        room_ttl: Duration::from_secs(60),
        last_partner: Duration::ZERO,
        rematch_after: Duration::ZERO,
        interest_wait: Duration::from_secs(5),
        region_wait: Duration::from_secs(1),
        socket_grace: Duration::from_secs(10),
        notice_ttl: Duration::from_secs(60),
    };
    let run = store.enqueue_and_pair(&entries, &settings).await.unwrap();
    assert_eq!(run.pairs.len(), 1);
    // The gateway's restore now registers A again with the same registration
    // (it had not seen the notice yet): refused, the notice waits instead.
    assert_eq!(
        store
            .register(&a, "RA", "127.0.0.1", "a", &who, None, true, None)
            .await
            .unwrap(),
        Registered::AlreadyMatched
    );
    assert!(store.take_notice(&a, "127.0.0.1").await.unwrap().is_some());
    // A fresh registration after the match is fine.
    assert_eq!(
        store
            .register(&a, "RA2", "127.0.0.1", "a", &who, None, false, None)
            .await
            .unwrap(),
        Registered::Queued
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_without_a_socket_is_never_handed_to_a_real_user() {
    let _panics = testkit::panics::guard();
    let (_redis, _m, addr) = redis_and_matcher().await;

    // A script registers a name over HTTP and never opens its socket.
    assert_eq!(post_register_from(addr, "ghost", ip(2)).await.0, 200);
    let (mut real, _) = native_waiting(addr, "real").await;
    real.expect_silence(Duration::from_millis(1500)).await;

    // A legacy user whose socket comes moments after its register is
    // paired as soon as the socket is there.
    let (status, _) = post_register_from(addr, "late", ip(3)).await;
    assert_eq!(status, 200);
    let mut late = legacy_socket_from(addr, "late", ip(3)).await;
    let code = late
        .recv_event_within("matched", Duration::from_secs(2))
        .await["room_code"]
        .clone();
    assert_eq!(real.recv_event("matched").await["room_code"], code);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_redis_missed_does_not_keep_a_name_taken() {
    let _panics = testkit::panics::guard();
    let (mut redis, m, addr) = redis_and_matcher().await;
    let location = wire::keys::location(&wire::user::UserKey::legacy("alice"));

    let alice = legacy_socket_from(addr, "alice", ip(3)).await;
    until_located(&redis, "alice").await;
    // Redis goes away while the socket closes, so the release fails, and
    // comes back with its data (saved just before). The gateway is alive, so
    // no purge would ever free the name; the gateway itself must retry.
    assert_eq!(redis.command(&["SAVE"]).trim(), "OK");
    redis.stop();
    alice.close().await;
    // The gateway lets go of the socket once its release attempt is over
    // (failed: Redis is away); only then does Redis come back.
    testkit::eventually(
        service::redis_conn::COMMAND_TIMEOUT + testkit::STEP,
        "the release attempt is over",
        || async { (m.sockets() == 0).then_some(()) },
    )
    .await;
    redis.restart();
    assert_eq!(
        redis.command(&["EXISTS", &location]).trim(),
        "1",
        "Redis came back with the location the release could not delete"
    );
    testkit::eventually(Duration::from_secs(10), "the release retried", || async {
        (redis.command(&["EXISTS", &location]).trim() == "0").then_some(())
    })
    .await;
    // The name is free again, from any address.
    let mut again = legacy_socket_from(addr, "alice", ip(4)).await;
    again.expect_silence(QUIET).await;
}
