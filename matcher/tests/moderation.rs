//! Moderation through the public paths: reports from distinct reporters
//! ban a user on every gateway (by identity and by address) until the ban
//! lifts or the admin lifts it; a reporter counts once; blocks hold inside
//! the pairing even when the two are alone; a user banned while waiting is
//! never handed out; the admin API needs its token. Each simulated user
//! comes from its own loopback address (127.0.0.x).

mod common;

use std::net::IpAddr;
use std::time::Duration;

use serde_json::{json, Value};
use testkit::{Next, RedisServer, WsClient};

const TOKEN: &str = "admin-token-for-tests-0123";

fn ip(n: u8) -> IpAddr {
    IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, n))
}

/// A native socket from `from`, presenting `device` if given: its first frame.
async fn native_from(
    addr: std::net::SocketAddr,
    from: IpAddr,
    device: Option<&str>,
) -> (WsClient, Value) {
    let path = match device {
        Some(d) => format!("/ws?device={d}"),
        None => "/ws".to_string(),
    };
    let mut ws = WsClient::connect_from(&common::ws_url(addr, &path), from)
        .await
        .expect("connect");
    let first = ws.recv().await;
    (ws, first)
}

/// Register and wait for `queued`.
async fn register(ws: &mut WsClient, name: &str) {
    ws.send_json(&json!({"event": "register", "name": name}))
        .await;
    ws.recv_event("queued").await;
}

/// The `banned` refusal a socket gets at once, then its close (4403): the
/// `retry_after` it says.
async fn refused_as_banned(ws: &mut WsClient, first: Value) -> u64 {
    assert_eq!(first["event"], "error", "{first}");
    assert_eq!(first["code"], "banned", "{first}");
    let retry_after = first["retry_after"].as_u64().expect("retry_after");
    assert!(retry_after >= 1, "{first}");
    assert_eq!(ws.recv_close().await, Some(4403));
    retry_after
}

/// One admin API request (`token`: the bearer token, if any): status and
/// JSON body (`Null` when there is none).
async fn admin(
    at: std::net::SocketAddr,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, format!("http://{at}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the admin API answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn admin_get(at: std::net::SocketAddr, path: &str) -> Value {
    let (status, body) = admin(at, reqwest::Method::GET, path, None, Some(TOKEN)).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

async fn admin_post(at: std::net::SocketAddr, body: Value) -> (u16, Value) {
    admin(
        at,
        reqwest::Method::POST,
        "/admin/bans",
        Some(body),
        Some(TOKEN),
    )
    .await
}

async fn admin_delete(at: std::net::SocketAddr, id: &str) -> u16 {
    let path = format!("/admin/bans/{id}");
    admin(at, reqwest::Method::DELETE, &path, None, Some(TOKEN))
        .await
        .0
}

/// Pair `target` with a fresh reporter from `from` (on `gw`), who reports it.
async fn reported_by(target: &mut WsClient, gw: std::net::SocketAddr, from: IpAddr, reason: &str) {
    let (mut reporter, _) = native_from(gw, from, None).await;
    register(target, "mallory").await;
    register(&mut reporter, "reporter").await;
    common::matched_together(target, &mut reporter).await;
    reporter
        .send_json(&json!({"event": "report", "reason": reason, "note": "rude"}))
        .await;
    assert_eq!(reporter.recv().await["event"], "reported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_distinct_reporters_ban_a_user_on_every_gateway_until_the_ban_lifts() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let flags = [
        "--ban-after-reports",
        "3",
        "--ban-secs",
        "3",
        "--last-partner-secs",
        "0",
        "--admin-token",
        TOKEN,
        "--admin-listen",
        "127.0.0.1:0",
    ];
    let g1 = common::start(&redis.url(), "all", &flags).await;
    let g2 = common::start(&redis.url(), "gateway", &flags).await;
    let (a1, a2) = (g1.gateway_addr().unwrap(), g2.gateway_addr().unwrap());

    let (mut mallory, hello) = native_from(a1, ip(50), None).await;
    let device = hello["device"]
        .as_str()
        .expect("a device identity")
        .to_string();
    // Three reporters, each its own identity and address, on either gateway.
    reported_by(&mut mallory, a1, ip(51), "harassment").await;
    reported_by(&mut mallory, a2, ip(52), "harassment").await;
    // Two counts are no ban yet.
    let (_ws, first) = native_from(a2, ip(63), Some(&device)).await;
    assert_eq!(first["event"], "hello", "banned too early: {first}");
    reported_by(&mut mallory, a1, ip(53), "nudity").await;

    // Banned: the identity from another address, the address with another
    // identity, on both gateways; the legacy register from the address.
    for gw in [a1, a2] {
        let (mut ws, first) = native_from(gw, ip(60), Some(&device)).await;
        let retry = refused_as_banned(&mut ws, first).await;
        assert!(retry <= 3, "{retry}");
        let (mut ws, first) = native_from(gw, ip(50), None).await;
        refused_as_banned(&mut ws, first).await;
        let (status, body) = common::post_register_from(gw, "mallory2", ip(50)).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(body["code"], "banned");
        assert!(body["retry_after"].as_u64().unwrap() >= 1);
    }
    // Someone else from yet another address is welcome.
    let (_ok, hello) = native_from(a2, ip(61), None).await;
    assert_eq!(hello["event"], "hello");

    // The ban lifts after its time.
    testkit::eventually(Duration::from_secs(10), "the ban lifts", || async {
        let (_ws, first) = native_from(a1, ip(50), Some(&device)).await;
        (first["event"] == "hello").then_some(())
    })
    .await;

    // Three more reports within the week: banned again, twice as long.
    let (mut mallory, _) = native_from(a1, ip(50), Some(&device)).await;
    for reporter in [ip(51), ip(52), ip(53)] {
        reported_by(&mut mallory, a1, reporter, "spam").await;
    }
    let (mut ws, first) = native_from(a2, ip(62), Some(&device)).await;
    let retry = refused_as_banned(&mut ws, first).await;
    assert!(retry > 3 && retry <= 6, "a repeat ban doubles: {retry}");

    // The admin sees it, and lifts it at once.
    let admin_addr = g1.admin_addr().expect("admin API on");
    let bans = admin_get(admin_addr, "/admin/bans").await;
    let identity = format!("d:{}", device.split('.').next().unwrap());
    let ban = bans["bans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["subjects"].as_array().unwrap().contains(&json!(identity)))
        .unwrap_or_else(|| panic!("the ban is listed: {bans}"))
        .clone();
    assert_eq!(ban["by"], "reports");
    assert_eq!(
        admin_delete(admin_addr, ban["id"].as_str().unwrap()).await,
        200
    );
    let (_ws, first) = native_from(a2, ip(50), Some(&device)).await;
    assert_eq!(first["event"], "hello", "{first}");
    let reports = admin_get(admin_addr, "/admin/reports?limit=2").await;
    let newest = &reports["reports"][0];
    assert_eq!(newest["reason"], "spam", "{reports}");
    assert_eq!(newest["reported"], json!(identity));
    assert_eq!(newest["reported_address"], "a:127.0.0.50");
    assert_eq!(newest["reporter_address"], "a:127.0.0.53");
    assert_eq!(reports["reports"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mass_reporting_by_one_reporter_counts_once_and_a_report_needs_a_partner() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let m = common::start(
        &redis.url(),
        "all",
        &[
            "--ban-after-reports",
            "2",
            "--rate-limit",
            "1000",
            "--last-partner-secs",
            "0",
        ],
    )
    .await;
    let addr = m.gateway_addr().unwrap();
    let (mut target, _) = native_from(addr, ip(70), None).await;
    let (mut reporter, _) = native_from(addr, ip(71), None).await;
    // Nobody met yet: nothing to report or block; a bad report is refused.
    reporter
        .send_json(&json!({"event": "report", "reason": "spam"}))
        .await;
    assert_eq!(reporter.recv_event("error").await["code"], "no_partner");
    reporter.send_json(&json!({"event": "block"})).await;
    assert_eq!(reporter.recv_event("error").await["code"], "no_partner");
    reporter
        .send_json(&json!({"event": "report", "reason": "rude"}))
        .await;
    let e = reporter.recv_event("error").await;
    assert_eq!(e["code"], "bad_report");
    assert!(e["message"].as_str().unwrap().starts_with("reason"), "{e}");
    reporter
        .send_json(&json!({"event": "report", "reason": "other", "note": "x".repeat(501)}))
        .await;
    assert_eq!(reporter.recv_event("error").await["code"], "bad_report");

    register(&mut target, "t").await;
    register(&mut reporter, "r").await;
    common::matched_together(&mut target, &mut reporter).await;
    for _ in 0..10 {
        reporter
            .send_json(&json!({"event": "report", "reason": "spam"}))
            .await;
        assert_eq!(reporter.recv().await["event"], "reported");
    }
    // New identities from the same address (a fresh browser profile) are
    // the same reporter.
    for _ in 0..2 {
        let (mut again, _) = native_from(addr, ip(71), None).await;
        register(&mut target, "t").await;
        register(&mut again, "r2").await;
        common::matched_together(&mut target, &mut again).await;
        again
            .send_json(&json!({"event": "report", "reason": "spam"}))
            .await;
        assert_eq!(again.recv().await["event"], "reported");
    }
    // Twelve reports, one reporter: one count of the two needed, no ban.
    let (_ws, first) = native_from(addr, ip(70), None).await;
    assert_eq!(
        first["event"], "hello",
        "one reporter banned someone: {first}"
    );
    let kept = redis.command(&["XLEN", &wire::keys::reports()]);
    assert_eq!(kept.trim(), "12", "every report is kept for the admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_who_blocked_each_other_are_never_paired_even_alone() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    // No last-partner memory: only the block keeps them apart.
    let m = common::start(&redis.url(), "all", &["--last-partner-secs", "0"]).await;
    let addr = m.gateway_addr().unwrap();
    let (mut a, _) = native_from(addr, ip(80), None).await;
    let (mut b, _) = native_from(addr, ip(81), None).await;
    register(&mut a, "a").await;
    register(&mut b, "b").await;
    common::matched_together(&mut a, &mut b).await;
    a.send_json(&json!({"event": "block"})).await;
    assert_eq!(a.recv().await["event"], "blocked");

    // Alone together, both waiting: never paired (bounded observation).
    register(&mut a, "a").await;
    register(&mut b, "b").await;
    for ws in [&mut a, &mut b] {
        ws.expect_silence(Duration::from_millis(1500)).await;
    }
    // A third user is paired with one of them at once.
    let (mut c, _) = native_from(addr, ip(82), None).await;
    register(&mut c, "c").await;
    let m = c.recv_event_within("matched", Duration::from_secs(3)).await;
    let partner = m["peer_name"].as_str().unwrap().to_string();
    assert!(partner == "a" || partner == "b", "{m}");
    let other = if partner == "a" { &mut b } else { &mut a };
    other.expect_silence(Duration::from_millis(500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_banned_while_waiting_is_never_handed_out() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let m = common::start(
        &redis.url(),
        "all",
        &["--admin-token", TOKEN, "--admin-listen", "127.0.0.1:0"],
    )
    .await;
    let addr = m.gateway_addr().unwrap();
    let (mut waiting, hello) = native_from(addr, ip(90), None).await;
    let device_id = hello["device"]
        .as_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap()
        .to_string();
    register(&mut waiting, "w").await;
    // The admin bans the waiting user's identity.
    let (status, created) = admin_post(
        m.admin_addr().unwrap(),
        json!({"identity": format!("d:{device_id}"), "secs": 600, "reason": "test"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (mut other, _) = native_from(addr, ip(91), None).await;
    register(&mut other, "o").await;
    other.expect_silence(Duration::from_millis(1500)).await;
    if let Some(Next::Json(v)) = waiting.next_within(Duration::from_millis(100)).await {
        assert_ne!(v["event"], "matched", "{v}");
    }
    let user = format!("s:{}", hello["session"].as_str().unwrap());
    assert_eq!(
        redis.command(&["ZSCORE", &wire::keys::pool(), &user]),
        "",
        "the banned user left the pool"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_needs_its_token_and_is_off_without_one() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let off = common::start(&redis.url(), "gateway", &[]).await;
    assert_eq!(off.admin_addr(), None, "no token, no admin API");
    let on = common::start(
        &redis.url(),
        "all",
        &["--admin-token", TOKEN, "--admin-listen", "127.0.0.1:0"],
    )
    .await;
    let at = on.admin_addr().unwrap();
    let get = reqwest::Method::GET;
    for path in ["/admin/stats", "/admin/reports", "/admin/bans"] {
        let none = admin(at, get.clone(), path, None, None).await.0;
        assert_eq!(none, 401, "{path} without a token");
        let wrong = admin(
            at,
            get.clone(),
            path,
            None,
            Some("admin-token-for-tests-0124"),
        )
        .await
        .0;
        assert_eq!(wrong, 401, "{path} with a wrong token");
        admin_get(at, path).await;
    }
    let stats = admin_get(at, "/admin/stats").await;
    for field in [
        "waiting",
        "rooms",
        "sockets_per_gateway",
        "reports_last_hour",
        "bans_last_hour",
    ] {
        assert!(stats.get(field).is_some(), "{field} in {stats}");
    }
    let (status, created) = admin_post(
        at,
        json!({"address": "192.0.2.9", "secs": 60, "reason": "spam"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["subject"], "a:192.0.2.9");
    let (status, _) = admin_post(at, json!({"address": "not an ip", "secs": 60})).await;
    assert_eq!(status, 400);
    let (status, _) = admin_post(
        at,
        json!({"identity": "d:x", "address": "192.0.2.9", "secs": 60}),
    )
    .await;
    assert_eq!(status, 400);
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(admin_delete(at, &id).await, 200);
    assert_eq!(admin_delete(at, &id).await, 404);
    let unauthorized = admin(at, reqwest::Method::DELETE, "/admin/bans/x", None, None)
        .await
        .0;
    assert_eq!(unauthorized, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_keeps_the_rooms_last_chat_lines_and_a_reporter_is_rate_limited() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let m = common::start(
        &redis.url(),
        "all",
        &[
            "--reports-per-hour",
            "3",
            "--ban-after-reports",
            "100",
            "--rate-limit",
            "1000",
        ],
    )
    .await;
    let addr = m.gateway_addr().unwrap();
    // Legacy users chat through the matcher: the room's lines are kept.
    let mut ann = common::legacy_user_from(addr, "ann", ip(100)).await;
    let mut bob = common::legacy_user_from(addr, "bob", ip(101)).await;
    let (a, _) = common::matched_together(&mut ann, &mut bob).await;
    let room = a["room_code"].as_str().unwrap().to_string();
    for line in ["hello", "you are rude"] {
        bob.send_json(&json!({"event": "chat", "peer": "ann", "message": line}))
            .await;
        assert_eq!(ann.recv_event("chat").await["message"], line);
    }
    ann.send_json(&json!({"event": "report", "reason": "harassment"}))
        .await;
    assert_eq!(ann.recv().await["event"], "reported");
    let entry = redis.query(&["XREVRANGE", &wire::keys::reports(), "+", "-", "COUNT", "1"]);
    let fields: Vec<String> = entry.items()[0].items()[1]
        .items()
        .iter()
        .map(|r| r.text())
        .collect();
    let field = |name: &str| {
        let i = fields.iter().position(|f| f == name).unwrap();
        fields[i + 1].clone()
    };
    assert_eq!(field("room"), room);
    assert_eq!(field("reported_address"), "a:127.0.0.101");
    let chat: Vec<String> = serde_json::from_str(&field("chat")).unwrap();
    assert_eq!(
        chat,
        vec!["bob: hello".to_string(), "bob: you are rude".to_string()]
    );
    // Three reports an hour: the fourth is refused by name.
    for _ in 0..2 {
        ann.send_json(&json!({"event": "report", "reason": "spam"}))
            .await;
        assert_eq!(ann.recv().await["event"], "reported");
    }
    ann.send_json(&json!({"event": "report", "reason": "spam"}))
        .await;
    let e = ann.recv_event("error").await;
    assert_eq!(e["code"], "rate_limited", "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_user_cannot_resume_its_matching_session_from_elsewhere() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let m = common::start(
        &redis.url(),
        "all",
        &["--admin-token", TOKEN, "--admin-listen", "127.0.0.1:0"],
    )
    .await;
    let addr = m.gateway_addr().unwrap();
    let (mut ws, hello) = native_from(addr, ip(110), None).await;
    let session = hello["session"].as_str().unwrap().to_string();
    let device = hello["device"].as_str().unwrap().to_string();
    register(&mut ws, "w").await;
    ws.close().await;
    common::until_parked(&redis, &wire::user::UserKey::native(&session)).await;
    // Banned while away (by identity).
    let identity = format!("d:{}", device.split('.').next().unwrap());
    let (status, created) = admin_post(
        m.admin_addr().unwrap(),
        json!({"identity": identity, "secs": 600, "reason": "test"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    // Back with its session, but from another address and without its
    // device identity: the session's own registration names the banned
    // identity, so the resume is refused.
    let mut back = WsClient::connect_from(
        &common::ws_url(addr, &format!("/ws?resume={session}")),
        ip(111),
    )
    .await
    .unwrap();
    let first = back.recv().await;
    let first = if first["event"] == "hello" {
        back.recv().await
    } else {
        first
    };
    refused_as_banned(&mut back, first).await;
}
