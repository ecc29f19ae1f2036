//! `signaller`: parse the configuration, start a node, run until SIGINT or
//! SIGTERM, then drain.

use clap::Parser;
use signaller::Config;

#[tokio::main]
async fn main() {
    service::panic::exit_on_panic("signaller");
    let config = Config::parse();
    service::logging::init(config.shared.log_format);
    let started = signaller::spawn(config).await;
    service::shutdown::serve_until_signal("signaller", started, |running| running.shutdown()).await;
}
