//! A private coturn `turnserver` per test, on free loopback ports, with
//! coturn's REST API credentials (`use-auth-secret`); and a real TURN
//! client (coturn's own `turnutils_uclient`) to check that a credential
//! lets a client allocate a relay and send through it.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The realm every test server announces.
pub const REALM: &str = "test";

/// A running `turnserver` owned by one test, relaying on 127.0.0.1 only.
/// Killed on drop. Its log is kept in [`TurnServer::log`] for failure
/// reports.
pub struct TurnServer {
    port: u16,
    child: Option<Child>,
    dir: std::path::PathBuf,
}

impl TurnServer {
    /// Start a server sharing `secret` (coturn's `static-auth-secret`) on a
    /// free port and wait until it accepts connections.
    pub fn start(secret: &str) -> TurnServer {
        let mut last = String::new();
        // A port can be taken between the probe and coturn binding it; retry.
        for _ in 0..5 {
            let port = crate::free_port();
            let mut server = TurnServer {
                port,
                child: None,
                dir: std::env::temp_dir().join(format!("rvc-turn-{port}-{}", std::process::id())),
            };
            match server.spawn(secret) {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!(
            "could not start turnserver (is coturn installed? scripts/test installs it): {last}"
        );
    }

    fn spawn(&mut self, secret: &str) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(self.dir.join("turn.log")).map_err(|e| e.to_string())?;
        // A relay port range of its own, so tests running at once rarely
        // compete for the same ports (coturn skips busy ones anyway).
        let min = 20_000 + (self.port % 2_000) * 20;
        let args = [
            "-n".to_string(),
            "--listening-ip=127.0.0.1".into(),
            "--relay-ip=127.0.0.1".into(),
            format!("--listening-port={}", self.port),
            "--use-auth-secret".into(),
            format!("--static-auth-secret={secret}"),
            format!("--realm={REALM}"),
            "--allow-loopback-peers".into(),
            "--no-cli".into(),
            "--no-tls".into(),
            "--no-dtls".into(),
            format!("--min-port={min}"),
            format!("--max-port={}", min + 19),
            format!("--pidfile={}", self.dir.join("turn.pid").display()),
            format!("--userdb={}", self.dir.join("turndb").display()),
            "--log-file=stdout".into(),
            "--simple-log".into(),
        ];
        let child = Command::new("turnserver")
            .args(&args)
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("turnserver: {e}"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().ok().flatten() {
                self.child = None;
                return Err(format!("turnserver exited: {status}: {}", self.log()));
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("turnserver did not listen in 10 s: {}", self.log()))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `turn:127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("turn:127.0.0.1:{}", self.port)
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("turn.log")).unwrap_or_default()
    }

    /// Allocate relays with `username` / `credential` and send through them
    /// (see [`allocate_and_relay`]).
    pub fn allocate_and_relay(&self, username: &str, credential: &str) -> Relayed {
        allocate_and_relay(self.port, username, credential)
    }
}

impl Drop for TurnServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What `turnutils_uclient` made of a credential.
#[derive(Debug)]
pub struct Relayed {
    /// Its exit status: 0 once its allocations were made and used, 255
    /// when the server refused to allocate.
    pub exit_code: Option<i32>,
    /// Its output (stdout and stderr).
    pub output: String,
}

/// Messages each run sends (three per client of the client-to-client pair).
pub const RELAY_MESSAGES: u32 = 3;

impl Relayed {
    /// The credential was taken: both allocations made (exit 0), and every
    /// message went from one relay to the other and came back, none lost.
    pub fn relayed_everything(&self) -> bool {
        let all = RELAY_MESSAGES * 2;
        self.exit_code == Some(0)
            && self
                .output
                .contains(&format!("tot_send_msgs={all}, tot_recv_msgs={all}"))
            && self.output.contains("Total lost packets 0 (")
    }

    /// The server refused to allocate (a credential it did not accept).
    pub fn allocation_refused(&self) -> bool {
        self.exit_code.is_some_and(|c| c != 0) && self.output.contains("Cannot complete Allocation")
    }
}

/// Run coturn's own TURN client against the server on `port`: two UDP
/// clients each allocate a relay with `username` / `credential` (long-term
/// credentials: a first Allocate is answered 401 with a nonce, the second
/// carries MESSAGE-INTEGRITY keyed by the credential), then send
/// [`RELAY_MESSAGES`] messages to each other through their relays. Bounded
/// to 30 s.
pub fn allocate_and_relay(port: u16, username: &str, credential: &str) -> Relayed {
    let mut child = Command::new("turnutils_uclient")
        .args([
            "-y", // client to client: each relays to the other's relay
            "-c", // no RTCP pair
            "-n",
            &RELAY_MESSAGES.to_string(),
            "-m",
            "1",
            "-l",
            "64",
            "-p",
            &port.to_string(),
            "-u",
            username,
            "-w",
            credential,
            "127.0.0.1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run turnutils_uclient (from coturn; scripts/test installs it)");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait turnutils_uclient").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("turnutils_uclient output");
    Relayed {
        exit_code: out.status.code(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
