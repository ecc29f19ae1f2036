//! The ticket secret against a real Redis: a weak or garbled secret planted
//! in Redis is refused, racing processes use the one stored, a secret
//! changed under a process after a Redis restart is reported and makes it
//! not ready, and the secret can come from a file and is never printed.
//!
//! `ticket_secret::changed` is process-wide, so every test that moves it is
//! in this file and they take turns ([`SERIAL`]).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use clap::Parser;
use fred::prelude::*;
use service::health::Health;
use service::settings::SharedSettings;
use service::ticket_secret::{self, SecretError};
use testkit::RedisServer;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    shared: SharedSettings,
}

fn settings(args: &[&str]) -> SharedSettings {
    Flags::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
        .unwrap()
        .shared
}

async fn client(redis: &RedisServer) -> Client {
    let target = service::redis_conn::RedisTarget::new(&redis.url(), None).unwrap();
    service::redis_conn::connect(&target).await.unwrap()
}

fn key() -> String {
    wire::keys::ticket_secret()
}

#[tokio::test]
async fn weak_secret_planted_in_redis_is_refused() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    // Eight bytes: base64 all right, far too short to be a secret.
    redis.command(&["SET", &key(), &STANDARD.encode([7u8; 8])]);
    let c = client(&redis).await;
    let err = ticket_secret::resolve(None, &c).await.unwrap_err();
    assert!(matches!(err, SecretError::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("8 bytes"), "{err}");
    // Not base64 at all.
    redis.command(&["SET", &key(), "%%% not base64 %%%"]);
    let err = ticket_secret::resolve(None, &c).await.unwrap_err();
    assert!(matches!(err, SecretError::Corrupt(_)), "{err}");
}

#[tokio::test]
async fn racing_processes_all_use_the_secret_stored_in_redis() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let clients = [
        client(&redis).await,
        client(&redis).await,
        client(&redis).await,
    ];
    let secrets =
        futures_util::future::join_all(clients.iter().map(|c| ticket_secret::resolve(None, c)))
            .await;
    let stored = STANDARD.decode(redis.command(&["GET", &key()])).unwrap();
    assert_eq!(stored.len(), 32);
    for secret in secrets {
        assert_eq!(secret.unwrap(), stored, "every process uses the stored one");
    }
}

#[tokio::test]
async fn secret_changed_after_a_redis_restart_is_reported_and_the_node_is_not_ready() {
    let _panics = testkit::panics::guard();
    let _turn = SERIAL.lock().await;
    let mut redis = RedisServer::start();
    let c = client(&redis).await;
    let health = Health::new(c.clone());
    let ours = ticket_secret::resolve(None, &c).await.unwrap();
    assert!(health.is_ready().await);

    // Redis restarts empty; a process started meanwhile shares a new secret
    // before this one puts its own back.
    redis.restart();
    testkit::eventually(testkit::STEP, "the client reconnects", || async {
        service::redis_conn::is_reachable(&c).await.then_some(())
    })
    .await;
    let newcomer = client(&redis).await;
    let theirs = ticket_secret::resolve(None, &newcomer).await.unwrap();
    assert_ne!(theirs, ours);

    assert!(
        !ticket_secret::reassert(&c, &ours).await,
        "the change is seen"
    );
    assert!(ticket_secret::changed());
    assert!(!health.is_ready().await, "not ready with a diverged secret");
    // Redis keeps the stored one: nothing is overwritten behind the newcomer.
    assert_eq!(
        STANDARD.decode(redis.command(&["GET", &key()])).unwrap(),
        theirs
    );

    // Once the stored secret is ours again, the node is ready again.
    redis.command(&["SET", &key(), &STANDARD.encode(&ours)]);
    assert!(ticket_secret::reassert(&c, &ours).await);
    assert!(!ticket_secret::changed());
    assert!(health.is_ready().await);
}

#[test]
fn ticket_secret_file_is_read_and_checked_and_never_printed() {
    let _panics = testkit::panics::guard();
    let dir = std::env::temp_dir().join(format!("rvc-secret-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good");
    std::fs::write(&good, "file-secret-0123456789abcdefghijklmn\n").unwrap();
    let read =
        ticket_secret::configured(&settings(&["--ticket-secret-file", good.to_str().unwrap()]))
            .unwrap();
    assert_eq!(
        read.as_deref(),
        Some(&b"file-secret-0123456789abcdefghijklmn"[..])
    );

    let short = dir.join("short");
    std::fs::write(&short, "tooshort-hunter2\n").unwrap();
    let e = ticket_secret::configured(&settings(&[
        "--ticket-secret-file",
        short.to_str().unwrap(),
    ]))
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("--ticket-secret-file") && e.contains("32"),
        "{e}"
    );
    assert!(!e.contains("hunter2"), "the secret is printed: {e}");

    let missing = dir.join("missing");
    let e = ticket_secret::configured(&settings(&[
        "--ticket-secret-file",
        missing.to_str().unwrap(),
    ]))
    .unwrap_err()
    .to_string();
    assert!(e.contains(missing.to_str().unwrap()), "{e}");

    let e = ticket_secret::configured(&settings(&["--ticket-secret", "short-hunter2"]))
        .unwrap_err()
        .to_string();
    assert!(!e.contains("hunter2"), "the secret is printed: {e}");
    // One or the other, not both.
    assert!(
        Flags::try_parse_from(["x", "--ticket-secret", "a", "--ticket-secret-file", "b"]).is_err()
    );
    let _ = std::fs::remove_dir_all(dir);
}
