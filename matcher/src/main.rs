//! `matcher`: run the gateway, the worker, or both.

use clap::Parser;
use matcher::Config;

#[tokio::main]
async fn main() {
    service::panic::exit_on_panic("matcher");
    let config = Config::parse();
    service::logging::init(config.shared.log_format);
    let started = matcher::spawn(config).await;
    service::shutdown::serve_until_signal("matcher", started, |running| running.shutdown()).await;
}
