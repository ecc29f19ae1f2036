//! `/metrics` lists every series from the start, and `/readyz` does not
//! cost Redis a command per request.

use service::health::Health;
use service::metrics::{self, Role};
use testkit::RedisServer;

#[tokio::test]
async fn every_series_is_listed_at_zero_before_the_first_event() {
    let _panics = testkit::panics::guard();
    metrics::register(Role::Matcher);
    metrics::register(Role::Signaller);
    let text = metrics::install().render();
    let scrape = testkit::prometheus::parse(&text);
    let mut expected: Vec<String> = metrics::error_kinds()
        .iter()
        .map(|k| format!(r#"{}{{kind="{k}"}}"#, metrics::ERRORS))
        .collect();
    assert!(expected.len() >= 4, "every error kind: {expected:?}");
    for role in ["matcher", "signaller"] {
        expected.push(format!(r#"{}{{role="{role}"}}"#, metrics::SOCKETS_OPEN));
    }
    for reason in service::listener::REFUSAL_REASONS {
        expected.push(format!(
            r#"{}{{reason="{reason}"}}"#,
            service::listener::CONNECTIONS_REFUSED
        ));
    }
    for name in [
        metrics::REGISTRATIONS,
        metrics::MATCHES,
        metrics::MATCHED_DELIVERED,
        metrics::POOL_SIZE,
        metrics::RELAYED,
        metrics::REDIS_RECONNECTS,
        metrics::DRAINS,
        service::listener::CONNECTIONS_OPEN,
        service::listener::HEADER_TIMEOUTS,
        service::ticket_secret::CHANGED_METRIC,
    ] {
        expected.push(name.to_string());
    }
    for name in [metrics::TIME_TO_MATCH, metrics::RELAY_LATENCY] {
        expected.push(format!("{name}_count"));
    }
    for series in &expected {
        assert_eq!(scrape.get(series), Some(&0.0), "{series} at zero:\n{text}");
    }
}

#[tokio::test]
async fn readyz_flood_costs_redis_at_most_one_ping_a_second() {
    let _panics = testkit::panics::guard();
    let redis = RedisServer::start();
    let target = service::redis_conn::RedisTarget::new(&redis.url(), None).unwrap();
    let client = service::redis_conn::connect(&target).await.unwrap();
    let health = Health::new(client);
    let pings = || {
        let info = redis.query(&["INFO", "commandstats"]).text();
        info.lines()
            .find_map(|l| l.strip_prefix("cmdstat_ping:calls="))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse::<u64>().unwrap())
    };
    let before = pings();
    let start = std::time::Instant::now();
    let flood = (0..500).map(|_| health.is_ready());
    let answers = futures_util::future::join_all(flood).await;
    assert!(answers.iter().all(|ready| *ready));
    let seconds = start.elapsed().as_secs() + 1;
    let cost = pings() - before;
    assert!(
        cost <= seconds + 1,
        "{cost} PINGs for 500 readiness checks in {seconds} s"
    );
}
