//! Shutdown signalling shared by every task of a role.

use tokio::sync::watch;

/// A cloneable flag that tasks await to learn the process is stopping.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// The sending side: trigger once, every [`Shutdown`] wakes.
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

/// A new trigger and its first listener.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger { tx }, Shutdown { rx })
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        let _ = self.tx.send(true);
    }

    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            rx: self.tx.subscribe(),
        }
    }
}

impl Shutdown {
    /// Whether shutdown has begun.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown begins (at once if it already has, or if the
    /// trigger was dropped).
    pub async fn wait(&mut self) {
        let _ = self.rx.wait_for(|v| *v).await;
    }
}

/// A binary's whole life after its configuration is parsed: a panic
/// anywhere ends the process loudly, logs go out in `log_format`, `start`
/// runs the roles, and [`serve_until_signal`] serves until SIGINT/SIGTERM
/// and drains with `shutdown`.
pub async fn run_binary<R, E, S, F, Fut>(
    name: &'static str,
    log_format: crate::logging::LogFormat,
    start: S,
    shutdown: F,
) where
    E: std::fmt::Display,
    S: std::future::Future<Output = Result<R, E>>,
    F: FnOnce(R) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    crate::panic::exit_on_panic(name);
    crate::logging::init(log_format);
    serve_until_signal(name, start.await, shutdown).await;
}

/// The life of a role's process once started: run until SIGINT or SIGTERM,
/// then shut down gracefully; a second signal exits at once. A start-up
/// error is printed as one line and exits with status 2.
async fn serve_until_signal<R, E, F, Fut>(name: &str, started: Result<R, E>, shutdown: F)
where
    E: std::fmt::Display,
    F: FnOnce(R) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let running = match started {
        Ok(running) => running,
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::exit(2);
        }
    };
    signal().await;
    tracing::info!("shutting down (send the signal again to exit at once)");
    tokio::select! {
        _ = shutdown(running) => {}
        _ = signal() => {
            tracing::warn!("second signal: exiting at once");
            std::process::exit(1);
        }
    }
}

/// Resolves on the first SIGINT or SIGTERM.
pub async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
