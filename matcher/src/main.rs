//! `matcher`: run the gateway, the worker, or both.

use clap::Parser;
use matcher::Config;

#[tokio::main]
async fn main() {
    let config = Config::parse();
    let format = config.shared.log_format;
    service::shutdown::run_binary("matcher", format, matcher::spawn(config), |m| m.shutdown())
        .await;
}
