//! The test cluster forms, routes commands to the node of each key, and
//! spreads keys of different hash tags over its three primaries.

use testkit::{RedisCluster, Reply, TestRedis};

#[test]
fn a_six_node_cluster_forms_and_serves_every_slot() {
    let cluster = RedisCluster::start();
    let primaries = cluster.primaries();
    assert_eq!(primaries.len(), 3, "three primaries: {primaries:?}");
    for i in 0..200 {
        let key = format!("t:{{r:{i}}}:k");
        assert_eq!(cluster.command(&["SET", &key, "v"]), "OK");
    }
    for (port, keys) in cluster.keys_per_primary() {
        assert!(keys > 20, "primary {port} holds only {keys} of 200 keys");
    }
    assert_eq!(
        cluster.query(&["GET", "t:{r:7}:k"]),
        Reply::Text("v".into())
    );
    assert!(cluster.url().starts_with("redis-cluster://127.0.0.1:"));
}
