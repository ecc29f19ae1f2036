//! What every role (matcher gateway, matcher worker, signaller) does the same
//! way at its edges. Each module is one concept.

pub mod address_limit;
pub mod client_addr;
pub mod clock;
pub mod health;
pub mod internal;
pub mod listener;
pub mod logging;
pub mod mailbox;
pub mod metrics;
pub mod origin;
pub mod panic;
pub mod rate_limit;
pub mod redis_conn;
pub mod settings;
pub mod shutdown;
pub mod startup;
pub mod stream_reply;
pub mod ticket_secret;
pub mod ws;
