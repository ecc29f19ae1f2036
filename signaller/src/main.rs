//! `signaller`: parse the configuration, start a node, run until SIGINT or
//! SIGTERM, then drain.

use clap::Parser;
use signaller::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    service::logging::init(config.log_format);
    let node = match signaller::spawn(config).await {
        Ok(node) => node,
        Err(e) => {
            eprintln!("signaller: {e}");
            std::process::exit(2);
        }
    };
    service::shutdown::signal().await;
    tracing::info!("shutting down (send the signal again to exit at once)");
    tokio::select! {
        _ = node.shutdown() => {}
        _ = service::shutdown::signal() => {
            tracing::warn!("second signal: exiting at once");
            std::process::exit(1);
        }
    }
    Ok(())
}
