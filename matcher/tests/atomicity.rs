//! No user is ever in two rooms, with several workers and
//! gateways pairing concurrently.

mod common;

use testkit::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_two_gateways_2000_users_each_matched_exactly_once() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    common::atomicity::two_thousand_users(&redis).await;
}
