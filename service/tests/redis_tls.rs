//! `rediss://` against a real TLS `redis-server` (Debian's is built with
//! TLS), with certificates made here: TLS works with a private CA, and a
//! server that is not the one the CA vouches for (a plaintext server, a
//! server with another CA's certificate) is refused: at start with one
//! line, and by every later connection, which never falls back to
//! plaintext. The Redis password is never shown.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fred::prelude::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use service::redis_conn::{self, RedisTarget};

/// A certificate authority made for one test.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A server certificate for 127.0.0.1, signed by this CA: (cert, key) PEM.
    fn server_cert(&self) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params.distinguished_name.push(DnType::CommonName, "redis");
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// A `redis-server` speaking only TLS on a free port; killed on drop.
struct TlsRedis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl TlsRedis {
    /// Serve with a certificate signed by `ca`.
    fn start(ca: &Ca) -> TlsRedis {
        let port = testkit::free_port();
        let dir = std::env::temp_dir().join(format!("rvc-tls-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = ca.server_cert();
        std::fs::write(dir.join("server.pem"), cert).unwrap();
        std::fs::write(dir.join("server.key"), key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.cert.pem()).unwrap();
        let path = |f: &str| dir.join(f).to_str().unwrap().to_string();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", &path("")])
            .args(["--tls-cert-file", &path("server.pem")])
            .args(["--tls-key-file", &path("server.key")])
            .args(["--tls-ca-cert-file", &path("ca.pem")])
            .args(["--tls-auth-clients", "no", "--loglevel", "warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server");
        let server = TlsRedis { child, port, dir };
        let deadline = std::time::Instant::now() + testkit::STEP;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "TLS redis-server did not listen"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        server
    }

    fn url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `ca`'s certificate in a PEM file of its own.
fn ca_file(ca: &Ca) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "rvc-ca-{}-{}.pem",
        std::process::id(),
        ulid::Ulid::new()
    ));
    std::fs::write(&path, ca.cert.pem()).unwrap();
    path
}

/// Whether a client of `target` can run a command within a few seconds.
async fn client_works(target: &RedisTarget) -> bool {
    let client = redis_conn::connect(target).await.expect("client built");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    let mut works = false;
    while tokio::time::Instant::now() < deadline {
        let set: Result<(), _> = client.set("tls-check", "yes", None, None, false).await;
        if set.is_ok() {
            works = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = client.quit().await;
    works
}

fn target(url: &str, ca: Option<&Path>) -> RedisTarget {
    RedisTarget::new(url, ca).expect("a valid target")
}

#[tokio::test]
async fn rediss_with_a_private_ca_is_verified_tls() {
    let _panics = testkit::panics::guard();
    let ca = Ca::new("test CA");
    let redis = TlsRedis::start(&ca);
    let ca_path = ca_file(&ca);
    let t = target(&redis.url(), Some(&ca_path));
    assert!(t.uses_tls());
    t.check_tls().await.expect("the start-up check passes");
    let client = redis_conn::connect(&t).await.unwrap();
    let _: () = client
        .set("k", "over tls", None, None, false)
        .await
        .unwrap();
    let v: String = client.get("k").await.unwrap();
    assert_eq!(v, "over tls");
    let _ = client.quit().await;
    let _ = std::fs::remove_file(ca_path);
}

#[tokio::test]
async fn plaintext_server_behind_a_rediss_url_is_refused() {
    let _panics = testkit::panics::guard();
    let plain = testkit::RedisServer::start();
    let url = format!("rediss://127.0.0.1:{}", plain.port());
    let ca = Ca::new("test CA");
    let ca_path = ca_file(&ca);
    let t = target(&url, Some(&ca_path));
    let err = tokio::time::timeout(testkit::STEP, t.check_tls())
        .await
        .expect("the check ends in time")
        .expect_err("a plaintext server is refused at start");
    let line = service::startup::StartError::from(err).to_string();
    assert!(line.starts_with("--redis-url: "), "{line}");
    assert!(line.contains("TLS"), "{line}");
    assert_eq!(line.lines().count(), 1, "{line}");
    // Nor does a client ever talk to it in plaintext.
    assert!(
        !client_works(&t).await,
        "a rediss:// client spoke plaintext"
    );
    let _ = std::fs::remove_file(ca_path);
}

#[tokio::test]
async fn server_with_a_certificate_from_another_ca_is_refused() {
    let _panics = testkit::panics::guard();
    let ours = Ca::new("our CA");
    let theirs = Ca::new("impostor CA");
    let impostor = TlsRedis::start(&theirs);
    let ca_path = ca_file(&ours);
    // With our private CA: refused.
    let t = target(&impostor.url(), Some(&ca_path));
    let err = t.check_tls().await.expect_err("refused with our CA");
    assert!(err.to_string().contains("certificate"), "{err}");
    assert!(!client_works(&t).await, "a client accepted the impostor");
    // With the system roots (no --redis-ca-file): refused too.
    let t = target(&impostor.url(), None);
    t.check_tls()
        .await
        .expect_err("refused with the system roots");
    let _ = std::fs::remove_file(ca_path);
}

#[tokio::test]
async fn redis_password_is_never_shown_in_errors() {
    let _panics = testkit::panics::guard();
    assert_eq!(
        redis_conn::redact("redis://:hunter2@db:6379/0"),
        "redis://:***@db:6379/0"
    );
    assert_eq!(
        redis_conn::redact("rediss://app:hunter2@db:6379"),
        "rediss://app:***@db:6379"
    );
    assert_eq!(
        redis_conn::redact("redis://db:6379?x=@y"),
        "redis://db:6379?x=@y"
    );
    // A bad URL, and a TLS refusal, each with a password in the URL.
    let bad = RedisTarget::new("redis://:hunter2@db:notaport", None).unwrap_err();
    assert!(!bad.to_string().contains("hunter2"), "{bad}");
    assert!(bad.to_string().starts_with("--redis-url"), "{bad}");
    let plain = testkit::RedisServer::start();
    let url = format!("rediss://:hunter2@127.0.0.1:{}", plain.port());
    let ca = Ca::new("test CA");
    let ca_path = ca_file(&ca);
    let err = target(&url, Some(&ca_path)).check_tls().await.unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(format!("{:?}", target(&url, Some(&ca_path))).contains("***"));
    let _ = std::fs::remove_file(ca_path);
}

#[test]
fn redis_ca_file_that_is_missing_or_not_pem_is_a_clear_start_error() {
    let _panics = testkit::panics::guard();
    let e = RedisTarget::new(
        "rediss://127.0.0.1:1",
        Some(Path::new("/nonexistent/ca.pem")),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("--redis-ca-file") && e.contains("/nonexistent/ca.pem"),
        "{e}"
    );
    let junk = std::env::temp_dir().join(format!("rvc-junk-{}.pem", std::process::id()));
    std::fs::write(&junk, "not a certificate").unwrap();
    let e = RedisTarget::new("rediss://127.0.0.1:1", Some(&junk))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("--redis-ca-file"), "{e}");
    let _ = std::fs::remove_file(junk);
    // A CA file with a plaintext URL is a mistake, said at start.
    let e = RedisTarget::new("redis://127.0.0.1:1", Some(Path::new("/x.pem")))
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("--redis-ca-file"), "{e}");
}
