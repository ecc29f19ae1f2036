//! Matchmaking filters through the public paths (native sockets, the legacy
//! POST, real gateways and workers on a real Redis): a shared interest is
//! picked uniformly among those who share one, interests and language fall
//! back to anyone after their window (never for strict users, and wishes
//! are mutual), the same region is preferred for a shorter window, and
//! many users with Zipf-distributed interests churning leave nobody waiting
//! who could be paired.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::{Next, RedisServer, WsClient};

/// Register `ws` with `prefs` (JSON fields merged into the frame) and
/// return the `queued` answer.
async fn register(ws: &mut WsClient, name: &str, prefs: Value) -> Value {
    let mut frame = json!({"event": "register", "name": name});
    frame
        .as_object_mut()
        .unwrap()
        .extend(prefs.as_object().unwrap().clone());
    ws.send_json(&frame).await;
    ws.recv_event("queued").await
}

/// The members of the array reply to `args`, sorted.
fn members(redis: &RedisServer, args: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = redis.query(args).items().iter().map(|r| r.text()).collect();
    v.sort();
    v
}

/// The pool's indexes hold exactly the `waiting` users: no wishes, interest
/// entries, fresh marks or relax times are left behind by those who left.
fn indexes_hold_only(redis: &RedisServer, waiting: &[String]) {
    let mut want: Vec<String> = waiting.to_vec();
    want.sort();
    assert_eq!(
        members(redis, &["ZRANGE", &wire::keys::pool(), "0", "-1"]),
        want,
        "pool"
    );
    let prefs_prefix = wire::keys::prefs(&wire::user::UserKey::from_raw(""));
    for key in members(redis, &["KEYS", &format!("{prefs_prefix}*")]) {
        let user = key[prefs_prefix.len()..].to_string();
        assert!(
            want.contains(&user),
            "the wishes of {user}, who is gone, are kept"
        );
    }
    let tag_prefix = wire::keys::interest("");
    for key in members(redis, &["KEYS", &format!("{tag_prefix}*")]) {
        for user in members(redis, &["ZRANGE", &key, "0", "-1"]) {
            assert!(want.contains(&user), "{user} is gone but still in {key}");
        }
    }
    for user in members(redis, &["ZRANGE", &wire::keys::pool_fresh(), "0", "-1"]) {
        assert!(want.contains(&user), "{user} is gone but still fresh");
    }
    for member in members(redis, &["ZRANGE", &wire::keys::pool_relax(), "0", "-1"]) {
        assert!(
            want.contains(&member[2..].to_string()),
            "{member}: relax time of a user gone"
        );
    }
}

/// No `matched` arrives on any of `sockets` for `quiet`.
async fn none_matched(sockets: &mut [&mut WsClient], quiet: Duration) {
    let deadline = tokio::time::Instant::now() + quiet;
    for ws in sockets.iter_mut() {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if let Some(Next::Json(v)) = ws.next_within(left).await {
            panic!("expected no match yet, got {v}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_interest_is_picked_uniformly_among_those_who_share_one() {
    let _panics = testkit::panics::guard();
    const K: usize = 20;
    const ROUNDS: usize = 10_000;
    // Chi-square with 19 degrees of freedom: P(X < 3.97) = P(X > 50.8) =
    // 1e-4. A picker that favours some candidates (the first in a set, or
    // those in two of the picker's sets counted twice) goes over the upper
    // bound; a fixed rotation under the lower.
    const LOW: f64 = 3.97;
    const HIGH: f64 = 50.8;
    let redis = RedisServer::start();
    // Nobody's window ends during the test; the picker meets the same
    // users again and again: no last-partner memory. The candidates' sockets
    // sit unread for the whole run (over a minute on a loaded machine): the
    // idle timeout is not what this test is about.
    let m = common::start(
        &redis.url(),
        "all",
        &[
            "--rate-limit",
            "100000",
            "--interest-wait-ms",
            "600000",
            "--last-partner-secs",
            "0",
            "--idle-timeout-secs",
            "600",
        ],
    )
    .await;
    let addr = m.gateway_addr().unwrap();
    // K candidates share "x" with the picker; half of them also share "z"
    // (in two of the picker's sets: they must not be picked twice as
    // often). Each is strict with a language of its own, so no two of them
    // can be paired together; the picker gives no language.
    let mut candidates = Vec::new();
    for i in 0..K {
        let (mut ws, _) = common::native(addr).await;
        let lang = format!(
            "{}{}",
            (b'a' + (i / 26) as u8) as char,
            (b'a' + (i % 26) as u8) as char
        );
        let tags = if i.is_multiple_of(2) {
            json!(["x", "z"])
        } else {
            json!(["x"])
        };
        let prefs = json!({"interests": tags, "language": lang, "strict": true});
        register(&mut ws, &format!("u{i}"), prefs.clone()).await;
        candidates.push((ws, prefs));
    }
    // Others who share nothing with the picker, strict, each its own tag:
    // never eligible for anyone here.
    let mut others = Vec::new();
    for j in 0..10 {
        let (mut ws, _) = common::native(addr).await;
        register(
            &mut ws,
            &format!("o{j}"),
            json!({"interests": [format!("y{j}")], "strict": true}),
        )
        .await;
        others.push(ws);
    }
    let (mut picker, _) = common::native(addr).await;
    let picker_prefs = json!({"interests": ["x", "z"]});
    let mut counts = vec![0u64; K];
    let started = Instant::now();
    for round in 0..ROUNDS {
        register(&mut picker, "p", picker_prefs.clone()).await;
        let m = picker.recv_event("matched").await;
        let peer = m["peer_name"].as_str().unwrap();
        let i: usize = peer
            .strip_prefix('u')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("round {round}: picker paired with {peer}"));
        counts[i] += 1;
        let (ws, prefs) = &mut candidates[i];
        let theirs = ws.recv_event("matched").await;
        assert_eq!(theirs["room_code"], m["room_code"]);
        let common_tags = if i.is_multiple_of(2) {
            json!(["x", "z"])
        } else {
            json!(["x"])
        };
        assert_eq!(m["common_interests"], common_tags, "round {round}");
        // Back in the pool (its entry precedes the picker's next one).
        register(ws, peer, prefs.clone()).await;
    }
    let expected = ROUNDS as f64 / K as f64;
    let stat: f64 = counts
        .iter()
        .map(|&o| (o as f64 - expected).powi(2) / expected)
        .sum();
    println!(
        "{ROUNDS} pairings among {K} eligible in {:?}: chi-square {stat:.1} (df 19); counts {counts:?}",
        started.elapsed()
    );
    assert!(
        stat < HIGH,
        "some candidates are favoured: chi-square {stat:.1}; {counts:?}"
    );
    assert!(
        stat > LOW,
        "too regular to be random: chi-square {stat:.1}; {counts:?}"
    );
    for ws in others.iter_mut() {
        ws.expect_silence(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interests_nobody_shares_fall_back_to_anyone_after_the_window_not_before() {
    let _panics = testkit::panics::guard();
    const WINDOW_MS: u64 = 1000;
    // The worker wakes when a window ends (not on its next back-off): the
    // slack is scheduling and a round trip, far below this bound.
    const SLACK: Duration = Duration::from_millis(1500);
    let redis = RedisServer::start();
    let m = common::start(
        &redis.url(),
        "all",
        &[
            "--interest-wait-ms",
            &WINDOW_MS.to_string(),
            "--backoff-max-ms",
            "5000",
        ],
    )
    .await;
    let addr = m.gateway_addr().unwrap();
    for (mine, theirs) in [
        // Interests nobody shares, with someone who gave none.
        (json!({"interests": ["rare"]}), json!({})),
        // A language nobody speaks here, with someone of another language.
        (json!({"language": "fi"}), json!({"language": "pt"})),
    ] {
        let (mut a, _) = common::native(addr).await;
        let (mut b, _) = common::native(addr).await;
        let sent = Instant::now();
        let queued = register(&mut a, "a", mine.clone()).await;
        assert_eq!(queued["interest_wait_ms"], WINDOW_MS, "{mine}");
        register(&mut b, "b", theirs).await;
        let matched = a.recv_event("matched").await;
        let waited = sent.elapsed();
        assert_eq!(
            b.recv_event("matched").await["room_code"],
            matched["room_code"]
        );
        assert!(
            waited >= Duration::from_millis(WINDOW_MS),
            "{mine}: paired after {waited:?}, inside the window"
        );
        assert!(
            waited < Duration::from_millis(WINDOW_MS) + SLACK,
            "{mine}: paired only after {waited:?}"
        );
        assert_eq!(matched["common_interests"], json!([]));
    }
    indexes_hold_only(&redis, &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_users_never_fall_back_and_wishes_are_mutual() {
    let _panics = testkit::panics::guard();
    const WINDOW_MS: u64 = 200;
    let redis = RedisServer::start();
    let m = common::start(
        &redis.url(),
        "all",
        &["--interest-wait-ms", &WINDOW_MS.to_string()],
    )
    .await;
    let addr = m.gateway_addr().unwrap();
    // A strict user with an interest, and one who wants anyone: the second
    // would take the first, the first refuses, for six windows.
    let (mut strict, _) = common::native(addr).await;
    let queued = register(
        &mut strict,
        "s",
        json!({"interests": ["chess"], "strict": true}),
    )
    .await;
    assert!(queued.get("interest_wait_ms").is_none(), "{queued}");
    let (mut anyone, _) = common::native(addr).await;
    register(&mut anyone, "n", json!({})).await;
    none_matched(
        &mut [&mut strict, &mut anyone],
        Duration::from_millis(6 * WINDOW_MS),
    )
    .await;
    // Someone who shares the interest comes: paired with the strict user
    // at once (it still looks for a shared interest, so not with the other).
    let (mut chess, _) = common::native(addr).await;
    register(&mut chess, "c", json!({"interests": ["Chess"]})).await;
    let m = chess.recv_event("matched").await;
    assert_eq!(m["peer_name"], "s");
    assert_eq!(m["common_interests"], json!(["chess"]));
    assert_eq!(
        strict.recv_event("matched").await["room_code"],
        m["room_code"]
    );
    anyone.close().await;

    // A strict user's language stays required: an interest in common and
    // the other's window long over do not make a French speaker acceptable
    // to a strict English speaker.
    let (mut strict_en, _) = common::native(addr).await;
    register(
        &mut strict_en,
        "se",
        json!({"interests": ["go"], "language": "en", "strict": true}),
    )
    .await;
    let (mut relaxed_fr, _) = common::native(addr).await;
    register(
        &mut relaxed_fr,
        "rf",
        json!({"interests": ["go"], "language": "fr"}),
    )
    .await;
    none_matched(
        &mut [&mut strict_en, &mut relaxed_fr],
        Duration::from_millis(6 * WINDOW_MS),
    )
    .await;
    // An English speaker sharing the interest, strict too: the two strict
    // users are paired; the French speaker is not theirs.
    let (mut go_en, _) = common::native(addr).await;
    register(
        &mut go_en,
        "ge",
        json!({"interests": ["go"], "language": "en", "strict": true}),
    )
    .await;
    let m = go_en.recv_event("matched").await;
    assert_eq!(m["peer_name"], "se");
    assert_eq!(
        strict_en.recv_event("matched").await["room_code"],
        m["room_code"]
    );
    relaxed_fr
        .expect_silence(Duration::from_millis(2 * WINDOW_MS))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_region_is_preferred_for_its_window() {
    let _panics = testkit::panics::guard();
    const REGION_MS: u64 = 800;
    let redis = RedisServer::start();
    let worker = common::start(
        &redis.url(),
        "worker",
        &["--region-wait-ms", &REGION_MS.to_string()],
    )
    .await;
    let eu = common::start(&redis.url(), "gateway", &["--region", "eu"]).await;
    let us = common::start(&redis.url(), "gateway", &["--region", "us"]).await;
    let (eu, us) = (eu.gateway_addr().unwrap(), us.gateway_addr().unwrap());
    let (mut e1, _) = common::native(eu).await;
    let (mut u1, _) = common::native(us).await;
    let (mut e2, _) = common::native(eu).await;
    register(&mut e1, "e1", json!({})).await;
    register(&mut u1, "u1", json!({})).await;
    register(&mut e2, "e2", json!({})).await;
    let m = e1.recv_event("matched").await;
    assert_eq!(m["peer_name"], "e2", "the same region first");
    e2.recv_event("matched").await;
    // Another region only once the window is over.
    let (mut e3, _) = common::native(eu).await;
    let sent = Instant::now();
    register(&mut e3, "e3", json!({})).await;
    let m = e3.recv_event("matched").await;
    assert_eq!(m["peer_name"], "u1");
    assert!(
        sent.elapsed() >= Duration::from_millis(REGION_MS),
        "paired across regions after {:?}",
        sent.elapsed()
    );
    u1.recv_event("matched").await;
    drop(worker);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_register_takes_preferences_and_bad_ones_are_refused_by_name() {
    let _panics = testkit::panics::guard();
    let (_redis, _m, addr) = common::redis_and_matcher().await;
    let http = reqwest::Client::new();
    let post = |body: Value| {
        let http = http.clone();
        async move {
            let r = http
                .post(format!("http://{addr}/registerForMatching"))
                .json(&body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    for (body, field) in [
        (json!({"name": "lee", "interests": ["ok", ""]}), "interests"),
        (
            json!({"name": "lee", "interests": (0..11).map(|i| format!("t{i}")).collect::<Vec<_>>()}),
            "interests",
        ),
        (json!({"name": "lee", "language": "english"}), "language"),
    ] {
        let (status, reply) = post(body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(reply["status"], "error");
        assert!(
            reply["message"].as_str().unwrap().starts_with(field),
            "{reply}"
        );
    }
    let (status, _) = post(json!({"name": "lee", "strict": "yes"})).await;
    assert_eq!(status, 400);
    // A native client is told the same, as an error event.
    let (mut ws, _) = common::native(addr).await;
    ws.send_json(&json!({"event": "register", "language": "e"}))
        .await;
    let e = ws.recv_event("error").await;
    assert_eq!(e["code"], "bad_preferences");
    assert!(
        e["message"].as_str().unwrap().starts_with("language"),
        "{e}"
    );

    // A legacy user with interests meets a native user sharing one; both
    // are told what they share.
    let mut lee = common::legacy_socket(addr, "lee").await;
    let (status, reply) =
        post(json!({"name": "lee", "interests": [" Chess "], "language": "EN"})).await;
    assert_eq!(
        (status, reply["status"].as_str()),
        (200, Some("queued")),
        "{reply}"
    );
    register(
        &mut ws,
        "nat",
        json!({"interests": ["chess"], "language": "en", "strict": true}),
    )
    .await;
    let l = lee.recv_event("matched").await;
    assert_eq!(l["common_interests"], json!(["chess"]));
    assert_eq!(
        ws.recv_event("matched").await["common_interests"],
        json!(["chess"])
    );
}

/// Zipf-distributed tag ranks in 0..n (s = 1).
fn zipf(rng: &mut impl rand::Rng, n: usize) -> usize {
    let h: f64 = (1..=n).map(|k| 1.0 / k as f64).sum();
    let mut u = rng.random::<f64>() * h;
    for k in 1..=n {
        u -= 1.0 / k as f64;
        if u <= 0.0 {
            return k - 1;
        }
    }
    n - 1
}

#[derive(Clone, Debug)]
struct Wish {
    tags: Vec<String>,
    lang: Option<String>,
    strict: bool,
}

impl Wish {
    fn random(rng: &mut impl rand::Rng) -> Wish {
        let count = rng.random_range(1..=3);
        let mut tags: Vec<String> = (0..count).map(|_| format!("t{}", zipf(rng, 200))).collect();
        tags.dedup();
        let lang = match rng.random_range(0..10) {
            0 => Some("en".to_string()),
            1 => Some("de".to_string()),
            2 => Some("fr".to_string()),
            _ => None,
        };
        Wish {
            tags,
            lang,
            strict: rng.random_range(0..10) == 0,
        }
    }

    fn json(&self) -> Value {
        let mut v = json!({"interests": self.tags, "strict": self.strict});
        if let Some(l) = &self.lang {
            v["language"] = json!(l);
        }
        v
    }

    /// Whether two users, both past their windows, may be paired.
    fn compatible(&self, other: &Wish) -> bool {
        let accepts = |x: &Wish, y: &Wish| {
            !x.strict
                || (x.tags.iter().any(|t| y.tags.contains(t))
                    && (x.lang.is_none() || y.lang.is_none() || x.lang == y.lang))
        };
        accepts(self, other) && accepts(other, self)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_users_with_zipf_interests_churning_leave_nobody_who_could_be_paired() {
    let _panics = testkit::panics::guard();
    const USERS: usize = 10_000;
    const TASKS: usize = 250;
    const WINDOW_MS: u64 = 300;
    // A user not matched by then is kept waiting (its socket open) for the
    // final check rather than given up.
    const PATIENCE: Duration = Duration::from_secs(2);
    let redis = RedisServer::start();
    let m = common::start(
        &redis.url(),
        "all",
        &[
            "--interest-wait-ms",
            &WINDOW_MS.to_string(),
            "--last-partner-secs",
            "0",
        ],
    )
    .await;
    let addr = m.gateway_addr().unwrap();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        tasks.push(tokio::spawn(async move {
            use rand::SeedableRng;
            let mut rng = rand::rngs::StdRng::seed_from_u64(t as u64);
            let mut waits: Vec<(bool, Duration)> = Vec::new();
            let mut left: Vec<(WsClient, Wish)> = Vec::new();
            for u in 0..USERS / TASKS {
                let wish = Wish::random(&mut rng);
                let (mut ws, _) = common::native(addr).await;
                let since = Instant::now();
                register(&mut ws, &format!("{t}-{u}"), wish.json()).await;
                match ws.next_within(PATIENCE).await {
                    Some(Next::Json(v)) if v["event"] == "matched" => {
                        waits.push((wish.strict, since.elapsed()));
                        ws.close().await;
                    }
                    None => left.push((ws, wish)),
                    other => panic!("unexpected {other:?}"),
                }
            }
            (waits, left)
        }));
    }
    let mut waits = Vec::new();
    let mut left = Vec::new();
    for task in tasks {
        let (w, l) = task.await.unwrap();
        waits.extend(w);
        left.extend(l);
    }
    let elapsed = started.elapsed();
    // Those kept waiting may still be paired with each other: wait for
    // the pool to settle (ten windows, and a retry of sampled searches),
    // all at once, then keep who remains.
    const SETTLE: Duration = Duration::from_millis(10 * WINDOW_MS + 1000);
    let settled =
        futures_util::future::join_all(left.into_iter().map(|(mut ws, wish)| async move {
            match ws.next_within(SETTLE).await {
                Some(Next::Json(v)) if v["event"] == "matched" => None,
                None => Some((ws, wish)),
                other => panic!("unexpected {other:?}"),
            }
        }))
        .await;
    let late = settled.iter().filter(|s| s.is_none()).count();
    let remaining: Vec<(WsClient, Wish)> = settled.into_iter().flatten().collect();
    let pool: usize = redis
        .command(&["ZCARD", &wire::keys::pool()])
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        pool,
        remaining.len(),
        "the pool holds exactly the users still waiting"
    );
    let waiting = members(&redis, &["ZRANGE", &wire::keys::pool(), "0", "-1"]);
    indexes_hold_only(&redis, &waiting);
    for (i, (_, a)) in remaining.iter().enumerate() {
        for (_, b) in &remaining[i + 1..] {
            assert!(
                !a.compatible(b),
                "two users who could be paired are both still waiting: {a:?} and {b:?}"
            );
        }
    }
    let non_strict_left = remaining.iter().filter(|(_, w)| !w.strict).count();
    assert!(
        non_strict_left <= 1,
        "{non_strict_left} users open to anyone still wait"
    );

    let mut by_kind: HashMap<bool, Vec<Duration>> = HashMap::new();
    for (strict, w) in &waits {
        by_kind.entry(*strict).or_default().push(*w);
    }
    for (strict, mut w) in by_kind {
        w.sort();
        let q = |p: f64| w[((w.len() - 1) as f64 * p) as usize];
        println!(
            "{} users ({}): wait p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
            w.len(),
            if strict { "strict" } else { "not strict" },
            q(0.5),
            q(0.9),
            q(0.99),
            w[w.len() - 1]
        );
    }
    println!(
        "{USERS} users in {elapsed:?}; {late} paired after {PATIENCE:?}; {} strict users with no possible partner still wait",
        remaining.len()
    );
}
