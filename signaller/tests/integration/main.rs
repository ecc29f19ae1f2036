//! Integration tests of the signaller against a real Redis, with nodes
//! running in-process on ephemeral ports and real WebSocket clients. One
//! test binary (one link) with a module per concern.

mod common;

mod address_limits;
mod bad_input;
mod cluster;
mod fanout;
mod leave;
mod legacy_flow;
mod metrics;
mod redis_restart;
mod relay;
mod replacement;
mod resume;
mod room_limits;
mod security;
mod startup;
