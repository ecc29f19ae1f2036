//! Prometheus text, scraped from a real process's `/metrics`, as exact
//! series: `name{label="value",...}` → value. Tests compare one labelled
//! series before and after an action, in a process of their own, so the
//! difference is what that action did and nothing else.

use std::collections::HashMap;

/// Every sample of a scrape, by its exact series text. Panics on a line that
/// is not `series value`.
pub fn parse(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("`series value` line");
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {l:?}"));
            assert!(
                series.chars().next().unwrap().is_ascii_alphabetic(),
                "bad metric name in {l:?}"
            );
            (series.to_string(), value)
        })
        .collect()
}

/// `GET http://<addr>/metrics`, parsed.
pub async fn scrape(addr: std::net::SocketAddr) -> HashMap<String, f64> {
    let text = reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .timeout(crate::STEP)
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    parse(&text)
}

/// The value of one exact series (0 when the process has not reported it
/// yet, as a counter that never moved).
pub fn series(scrape: &HashMap<String, f64>, series: &str) -> f64 {
    scrape.get(series).copied().unwrap_or(0.0)
}

/// How much one exact series moved between two scrapes.
pub fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, name: &str) -> f64 {
    series(after, name) - series(before, name)
}
