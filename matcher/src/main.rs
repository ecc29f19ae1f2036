//! `matcher`: run the gateway, the worker, or both.

use clap::Parser;
use matcher::Config;

/// mimalloc instead of the system allocator: a gateway allocates for every
/// frame, JSON event and Redis reply, and under load glibc's malloc and
/// free took about a quarter of its CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let config = Config::parse();
    let format = config.shared.log_format;
    service::shutdown::run_binary("matcher", format, matcher::spawn(config), |m| m.shutdown())
        .await;
}
