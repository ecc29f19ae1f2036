//! `matcher`: run the gateway, the worker, or both.

use clap::Parser;
use matcher::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    service::logging::init(config.log_format);
    let running = match matcher::spawn(config).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("matcher: {e}");
            std::process::exit(2);
        }
    };
    service::shutdown::signal().await;
    tracing::info!("shutting down (send the signal again to exit at once)");
    tokio::select! {
        _ = running.shutdown() => {}
        _ = service::shutdown::signal() => {
            tracing::warn!("second signal: exiting at once");
            std::process::exit(1);
        }
    }
    Ok(())
}
