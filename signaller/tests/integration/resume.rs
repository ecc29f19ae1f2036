//! Reconnect and resume: a native session outlives its socket and its
//! node. The nodes whose death is tested are real `signaller` processes
//! (SIGKILL, SIGTERM); the node the sessions move to runs in-process.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use testkit::{RedisServer, TestRedis, WsClient};
use tokio::time::Instant;
use wire::resume::ResumeClaims;
use wire::user::Role;

use crate::common::*;

/// A `signaller` process, killed when dropped.
struct Process {
    child: Child,
    addr: SocketAddr,
}

impl Process {
    async fn start(redis: &impl TestRedis, extra: &[&str]) -> Process {
        let addr: SocketAddr = format!("127.0.0.1:{}", testkit::free_port())
            .parse()
            .unwrap();
        let listen = addr.to_string();
        let mut flags = vec!["--listen", listen.as_str()];
        flags.extend_from_slice(extra);
        let child = Command::new(env!("CARGO_BIN_EXE_signaller"))
            .args(&args(redis, &flags)[1..])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("run the signaller binary");
        let ready = format!("http://{addr}/readyz");
        testkit::eventually(testkit::STEP, "signaller ready", || async {
            let ok = reqwest::get(&ready)
                .await
                .is_ok_and(|r| r.status().is_success());
            ok.then_some(())
        })
        .await;
        Process { child, addr }
    }

    fn url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([name, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Wait (bounded) for the process to exit; how long it took.
    async fn exited_within(&mut self, limit: Duration) -> Duration {
        let start = Instant::now();
        testkit::eventually(limit, "the signaller process exits", || {
            let exited = self.child.try_wait().expect("wait").is_some();
            async move { exited.then_some(()) }
        })
        .await;
        start.elapsed()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A native client as the page is: it keeps its credential and the
/// `last_id` of the last event it handled.
struct Client {
    ws: WsClient,
    resume: String,
    last_id: Option<String>,
}

impl Client {
    async fn join(url: &str, ticket: &str) -> Client {
        let mut ws = WsClient::connect(url).await.expect("connect");
        ws.send_json(&json!({"event":"join","ticket":ticket})).await;
        let joined = ws.recv().await;
        assert_eq!(joined["event"], "joined", "{joined}");
        Client {
            ws,
            resume: joined["resume"].as_str().expect("a credential").into(),
            last_id: None,
        }
    }

    /// Ann (initiator) and bob (responder) joined to a new room on the
    /// node at `url`: the room, ann, bob.
    async fn pair(url: &str) -> (String, Client, Client) {
        let room = new_room();
        let ann = Client::join(url, &ticket(&room, "s:A", "ann", Role::Initiator)).await;
        let bob = Client::join(url, &ticket(&room, "s:B", "bob", Role::Responder)).await;
        (room, ann, bob)
    }

    /// The next event, its cursor noted.
    async fn recv(&mut self) -> Value {
        let frame = self.ws.recv().await;
        if let Some(id) = frame["last_id"].as_str() {
            self.last_id = Some(id.to_string());
        }
        frame
    }

    /// Open a socket to `url` and resume; the `resumed` reply. The old
    /// socket is dropped (see [`Client::resume_keeping`]).
    async fn resume(&mut self, url: &str) -> Value {
        self.resume_keeping(url).await.0
    }

    /// Resume on a new socket to `url`; the `resumed` reply and the old
    /// socket, no longer read.
    async fn resume_keeping(&mut self, url: &str) -> (Value, WsClient) {
        let mut ws = WsClient::connect(url).await.expect("connect");
        ws.send_json(&resume_frame(&self.resume, self.last_id.as_deref()))
            .await;
        let resumed = ws.recv().await;
        assert_eq!(resumed["event"], "resumed", "{resumed}");
        self.resume = resumed["resume"]
            .as_str()
            .expect("a fresh credential")
            .into();
        let old = std::mem::replace(&mut self.ws, ws);
        (resumed, old)
    }

    async fn signal(&mut self, n: u32) {
        self.ws
            .send_json(&json!({"event":"signal","data":{"n":n}}))
            .await;
    }

    /// The next `count` events must be signals `ns`, in order.
    async fn expect_signals(&mut self, ns: &[u32]) {
        for n in ns {
            let got = self.recv().await;
            assert_eq!(
                (&got["event"], &got["data"]),
                (&json!("signal"), &json!({"n":n})),
                "{got}"
            );
        }
    }
}

fn resume_frame(credential: &str, last_id: Option<&str>) -> Value {
    match last_id {
        Some(id) => json!({"event":"join","resume":credential,"last_id":id}),
        None => json!({"event":"join","resume":credential}),
    }
}

/// Ann's node is SIGKILLed mid-call. Bob is told she is reconnecting (not
/// that she left) and goes on sending; she resumes on the other node with
/// her credential and `last_id` and gets everything after it exactly once,
/// in order: what bob sent just before the kill that she had not read yet,
/// and what he sent while she was gone. Bob is told she is back; the call
/// goes on both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_node_was_killed_resumes_on_another_node_exactly_once_in_order() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let mut n1 = Process::start(&redis, &[]).await;
    let n2 = node(&redis, &[]).await;
    let room = new_room();
    let mut ann = Client::join(&n1.url(), &ticket(&room, "s:A", "ann", Role::Initiator)).await;
    let mut bob = Client::join(
        &native_url(&n2),
        &ticket(&room, "s:B", "bob", Role::Responder),
    )
    .await;
    assert_eq!(ann.recv().await["event"], "peer-joined");

    for n in 1..=3 {
        bob.signal(n).await;
        ann.signal(100 + n).await;
    }
    ann.expect_signals(&[1, 2, 3]).await;
    bob.expect_signals(&[101, 102, 103]).await;
    // Sent, and perhaps delivered to ann's socket, but never read by her.
    for n in 4..=6 {
        bob.signal(n).await;
    }
    sync(&mut bob.ws).await;

    let killed = Instant::now();
    n1.child.kill().expect("SIGKILL");
    n1.child.wait().expect("reaped");
    for n in 7..=8 {
        bob.signal(n).await;
    }
    let away = bob.recv().await;
    assert_eq!(
        (&away["event"], &away["peer_name"]),
        (&json!("peer-reconnecting"), &json!("ann")),
        "{away}"
    );
    let told = killed.elapsed();
    bob.ws
        .send_json(&json!({"event":"chat","message":"still there?"}))
        .await;
    bob.signal(9).await;
    sync(&mut bob.ws).await;

    let resuming = Instant::now();
    let resumed = ann.resume(&native_url(&n2)).await;
    assert_eq!(resumed["peer_present"], true);
    assert_eq!(resumed["peer_reconnecting"], false);
    ann.expect_signals(&[4, 5, 6, 7, 8]).await;
    let chat = ann.recv().await;
    assert_eq!(chat["message"], "still there?", "{chat}");
    ann.expect_signals(&[9]).await;
    eprintln!(
        "peer told {told:?} after the SIGKILL (node TTL 500 ms, heartbeat 100 ms); \
         resume with 7 missed events replayed in {:?}",
        resuming.elapsed()
    );
    ann.ws.expect_silence(QUIET).await;

    let back = bob.recv().await;
    assert_eq!(
        (&back["event"], &back["peer_name"]),
        (&json!("peer-resumed"), &json!("ann")),
        "{back}"
    );
    ann.signal(104).await;
    bob.expect_signals(&[104]).await;
    bob.signal(10).await;
    ann.expect_signals(&[10]).await;
    // Never `peer-left`: not when her node died, not since.
    bob.ws.expect_silence(QUIET).await;
    ann.ws.expect_silence(QUIET).await;
}

/// A node draining (SIGTERM) mid-call tells both of its sockets to
/// `reconnect`; both move to the other node, nobody is told `peer-left`,
/// nothing is lost or repeated, and the process exits within its drain
/// grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_moves_both_peers_without_loss_and_exits_within_its_grace() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    draining_node_moves_both_peers(&redis).await;
}

/// The drain scenario above on `redis`: one server here, a 6-node cluster
/// in `cluster.rs`.
pub(crate) async fn draining_node_moves_both_peers(redis: &impl TestRedis) {
    let mut n1 = Process::start(redis, &[]).await;
    let n2 = node(redis, &[]).await;
    let (_, mut ann, mut bob) = Client::pair(&n1.url()).await;
    assert_eq!(ann.recv().await["event"], "peer-joined");
    ann.signal(101).await;
    bob.expect_signals(&[101]).await;

    let term = Instant::now();
    n1.signal("-TERM");
    for who in [&mut ann, &mut bob] {
        let reconnect = who.recv().await;
        assert_eq!(
            (&reconnect["event"], &reconnect["reason"]),
            (&json!("reconnect"), &json!("draining")),
            "{reconnect}"
        );
        who.resume = reconnect["resume"].as_str().unwrap().into();
        who.last_id = reconnect["last_id"].as_str().map(String::from);
    }
    // Ann moves first (resumes, then lets her old socket go); bob, still
    // on the draining node, keeps sending.
    let (resumed, old_ann) = ann.resume_keeping(&native_url(&n2)).await;
    old_ann.close().await;
    assert_eq!(resumed["peer_present"], true);
    bob.signal(1).await;
    bob.signal(2).await;
    ann.expect_signals(&[1, 2]).await;
    // Bob moves; ann sends while he does.
    ann.signal(102).await;
    let (_, mut old_bob) = bob.resume_keeping(&native_url(&n2)).await;
    // His old socket is let go by the draining node: replaced.
    assert_eq!(old_bob.recv_close().await, Some(4410));
    // Whatever bob had not handled comes on the new socket, once: ann's
    // `peer-resumed` (her move), then 102.
    let mut got = Vec::new();
    loop {
        let frame = bob.recv().await;
        let done = frame["data"] == json!({"n":102});
        got.push(frame);
        if done {
            break;
        }
    }
    // Ann's move (`peer-resumed`, perhaps already handled on the old
    // socket), then 102, once; never `peer-left`.
    assert!(
        got.iter()
            .all(|f| f["event"] == "peer-resumed" || f["event"] == "signal"),
        "{got:?}"
    );
    assert_eq!(
        got.iter().filter(|f| f["event"] == "signal").count(),
        1,
        "{got:?}"
    );
    ann.signal(103).await;
    bob.expect_signals(&[103]).await;
    bob.signal(3).await;
    // Ann hears bob came back, then his signal.
    let back = ann.recv().await;
    assert_eq!(back["event"], "peer-resumed", "{back}");
    ann.expect_signals(&[3]).await;

    n1.exited_within(Duration::from_secs(12)).await;
    let took = term.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "exited {took:?} after SIGTERM; the drain grace is 10 s"
    );
    eprintln!("drained node exited {took:?} after SIGTERM");
    ann.ws.expect_silence(QUIET).await;
    bob.ws.expect_silence(QUIET).await;
}

fn claims(credential: &str) -> ResumeClaims {
    wire::resume::verify(SECRET.as_bytes(), credential, 0).expect("a valid credential")
}

async fn try_resume(url: &str, frame: &Value) -> Value {
    let mut ws = WsClient::connect(url).await.expect("connect");
    ws.send_json(frame).await;
    ws.recv().await
}

fn refused(reply: &Value, code: &str) {
    assert_eq!(
        (&reply["event"], &reply["code"]),
        (&json!("error"), &json!(code)),
        "{reply}"
    );
    assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
}

/// A credential not signed with the shared secret, one past its expiry,
/// and one shown for another room are refused, each with its own code; the
/// real session is unharmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_expired_or_other_rooms_credential_cannot_resume_a_session() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let n1 = node(&redis, &[]).await;
    let url = native_url(&n1);
    let (room, ann, mut bob) = Client::pair(&url).await;
    let real = claims(&ann.resume);
    let Client {
        ws,
        resume: credential,
        ..
    } = ann;
    ws.close().await;
    assert_eq!(bob.recv().await["event"], "peer-reconnecting");

    let forged = wire::resume::sign(b"not the shared secret, 32 bytes!", &real);
    refused(
        &try_resume(&url, &resume_frame(&forged, None)).await,
        "forged_resume",
    );
    let ticket_as_credential = ticket(&room, "s:A", "ann", Role::Initiator);
    refused(
        &try_resume(&url, &resume_frame(&ticket_as_credential, None)).await,
        "forged_resume",
    );
    let mut old = real.clone();
    old.exp_ms = service::clock::now_ms() - 1;
    let expired = wire::resume::sign(SECRET.as_bytes(), &old);
    refused(
        &try_resume(&url, &resume_frame(&expired, None)).await,
        "expired_resume",
    );
    let other_room = json!({"event":"join","resume":credential,"room_code":new_room()});
    refused(&try_resume(&url, &other_room).await, "not_member");
    refused(
        &try_resume(
            &url,
            &json!({"event":"join","resume":credential,"last_id":"x"}),
        )
        .await,
        "bad_message",
    );
    // None of it touched the session: it resumes, and bob is told once.
    let mut ws = WsClient::connect(&url).await.unwrap();
    ws.send_json(&resume_frame(&credential, None)).await;
    assert_eq!(ws.recv_event("resumed").await["room_code"], json!(room));
    assert_eq!(bob.recv().await["event"], "peer-resumed");
    bob.ws.expect_silence(QUIET).await;
}

/// A credential resumes once: a second resume of the same session, while
/// the first holds it, is refused as used elsewhere, and does not take the
/// session from the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_credential_cannot_take_over_a_session_already_resumed() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let (n1, n2) = two_nodes(&redis).await;
    let room = new_room();
    let mut ann = Client::join(
        &native_url(&n1),
        &ticket(&room, "s:A", "ann", Role::Initiator),
    )
    .await;
    let mut bob = Client::join(
        &native_url(&n1),
        &ticket(&room, "s:B", "bob", Role::Responder),
    )
    .await;
    let used = ann.resume.clone();
    ann.resume(&native_url(&n2)).await;
    refused(
        &try_resume(&native_url(&n1), &resume_frame(&used, None)).await,
        "resume_used",
    );
    bob.signal(1).await;
    ann.expect_signals(&[1]).await;
}

/// Leaving is for good: the credential of a user who sent `leave` cannot
/// bring it back into the room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_left_cannot_resume() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let n1 = node(&redis, &[]).await;
    let url = native_url(&n1);
    let (_, mut ann, mut bob) = Client::pair(&url).await;
    ann.ws.send_json(&json!({"event":"leave"})).await;
    assert_eq!(bob.recv().await["reason"], "left");
    refused(
        &try_resume(&url, &resume_frame(&ann.resume, None)).await,
        "room_closed",
    );
}

/// A user the matcher banned (after reports, or the admin) cannot resume:
/// the ban of its session is checked before the room hands its place back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_user_cannot_resume() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let n1 = node(&redis, &[]).await;
    let url = native_url(&n1);
    let (_, ann, mut bob) = Client::pair(&url).await;
    let credential = ann.resume.clone();
    ann.ws.close().await;
    assert_eq!(bob.recv().await["event"], "peer-reconnecting");
    // The matcher's ban of this session, as its report script writes it.
    let ban = wire::keys::ban(&wire::moderation::user_subject("s:A"));
    redis.command(&["SET", &ban, "01BAN", "PX", "60000"]);
    refused(
        &try_resume(&url, &resume_frame(&credential, None)).await,
        "banned",
    );
}

/// Past the grace window a session is gone: the peer is told `peer-left`
/// `timeout`, and the credential no longer resumes (also when nobody was
/// left to declare the timeout: both away).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_cannot_resume_after_its_grace_window() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let n1 = node(&redis, &["--resume-grace-secs", "1"]).await;
    let url = native_url(&n1);

    let (_, ann, mut bob) = Client::pair(&url).await;
    let credential = ann.resume.clone();
    let gone = Instant::now();
    ann.ws.close().await;
    assert_eq!(bob.recv().await["event"], "peer-reconnecting");
    let left = bob.recv().await;
    assert_eq!(
        (&left["event"], &left["reason"]),
        (&json!("peer-left"), &json!("timeout")),
        "{left}"
    );
    assert!(
        gone.elapsed() >= Duration::from_millis(900),
        "{:?}",
        gone.elapsed()
    );
    refused(
        &try_resume(&url, &resume_frame(&credential, None)).await,
        "room_closed",
    );

    // Both away: nobody declares the timeout, the deadline still holds.
    let (room, ann, bob) = Client::pair(&url).await;
    let credential = ann.resume.clone();
    ann.ws.close().await;
    bob.ws.close().await;
    let members = wire::keys::room_members(&room);
    let deadline_ms: u64 = testkit::eventually(testkit::STEP, "both away", || async {
        let a = redis.command(&["HGET", &members, "away:s:A"]);
        let b = redis.command(&["HGET", &members, "away:s:B"]);
        (!a.is_empty() && !b.is_empty()).then(|| a.parse().unwrap())
    })
    .await;
    // Wait out ann's deadline (a time property: nothing to await but time).
    let left = deadline_ms.saturating_sub(service::clock::now_ms()) + 50;
    tokio::time::sleep(Duration::from_millis(left)).await;
    refused(
        &try_resume(&url, &resume_frame(&credential, None)).await,
        "expired_resume",
    );
}
