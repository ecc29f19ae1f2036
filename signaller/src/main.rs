//! `signaller`: parse the configuration, start a node, run until SIGINT or
//! SIGTERM, then drain.

use clap::Parser;
use signaller::Config;

#[tokio::main]
async fn main() {
    let config = Config::parse();
    let format = config.shared.log_format;
    let node = signaller::spawn(config);
    service::shutdown::run_binary("signaller", format, node, |node| node.shutdown()).await;
}
