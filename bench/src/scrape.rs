//! The services' Prometheus histograms, scraped from `/metrics` before and
//! after a measured run: the bucket deltas give the distribution of what
//! happened during the run only, per stage of a user's path.
//!
//! Quantiles are interpolated linearly within the bucket that holds them,
//! as Prometheus' `histogram_quantile` does, so they are only as fine as the
//! buckets (10 µs … 5 s for `rvc_stage_seconds`). A quantile above the last
//! finite bound is printed as "> bound".

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Histograms printed, in this order: (metric, label name to split by,
/// label values in path order). Series with other label values follow.
pub const PRINTED: [(&str, &str, &[&str]); 3] = [
    (
        "rvc_stage_seconds",
        "stage",
        &[
            "register",
            "stream_wait",
            "pairing",
            "inbox",
            "deliver",
            "append",
            "fanout",
            "dispatch",
        ],
    ),
    ("rvc_time_to_match_seconds", "", &[]),
    ("rvc_relay_latency_seconds", "", &[]),
];

/// Longest one scrape may take.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// One histogram series: cumulative bucket counts by upper bound, sum, count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// (upper bound, cumulative count), ascending; +Inf last if present.
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

/// Histograms by (metric name, labels other than `le`, rendered sorted).
pub type Scrape = BTreeMap<(String, String), Histogram>;

/// `http://host:port/metrics` → its body, over plain HTTP/1.0 (no chunking).
pub async fn fetch(url: &str) -> Result<String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("{url}: only http:// metrics URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/metrics"),
    };
    let get = async {
        let mut stream = TcpStream::connect(authority)
            .await
            .with_context(|| format!("connecting to {authority}"))?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n").as_bytes())
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        anyhow::Ok(String::from_utf8_lossy(&response).into_owned())
    };
    let response = tokio::time::timeout(SCRAPE_TIMEOUT, get)
        .await
        .map_err(|_| anyhow!("scraping {url} timed out after {SCRAPE_TIMEOUT:?}"))?
        .with_context(|| format!("scraping {url}"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("{url}: malformed HTTP response"))?;
    let status = head.lines().next().unwrap_or("");
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("{url} answered {status:?}");
    }
    Ok(body.to_string())
}

/// Scrape every URL; the histograms of all of them, added up.
pub async fn scrape_all(urls: &[String]) -> Result<Scrape> {
    let mut total = Scrape::new();
    for url in urls {
        let body = fetch(url).await?;
        for (key, h) in parse(&body) {
            let into = total.entry(key).or_default();
            *into = add(into, &h);
        }
    }
    Ok(total)
}

/// Parse the histograms (`_bucket`, `_sum`, `_count`) of a Prometheus text
/// exposition; everything else is skipped.
pub fn parse(text: &str) -> Scrape {
    let mut out = Scrape::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.find('{') {
            Some(i) => (&series[..i], series[i + 1..].trim_end_matches('}')),
            None => (series, ""),
        };
        let mut le = None;
        let mut rest: Vec<String> = Vec::new();
        for pair in split_labels(labels) {
            match pair.split_once('=') {
                Some(("le", v)) => le = Some(v.trim_matches('"').to_string()),
                Some(_) => rest.push(pair.to_string()),
                None => {}
            }
        }
        rest.sort();
        let labels = rest.join(",");
        if let Some(base) = name.strip_suffix("_bucket") {
            let Some(le) = le else { continue };
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                match le.parse() {
                    Ok(b) => b,
                    Err(_) => continue,
                }
            };
            let h = out.entry((base.to_string(), labels)).or_default();
            h.buckets.push((bound, value));
        } else if let Some(base) = name.strip_suffix("_sum") {
            out.entry((base.to_string(), labels)).or_default().sum = value;
        } else if let Some(base) = name.strip_suffix("_count") {
            out.entry((base.to_string(), labels)).or_default().count = value;
        }
    }
    // Only histograms (with buckets) are kept: a summary also has _sum and _count.
    out.retain(|_, h| !h.buckets.is_empty());
    for h in out.values_mut() {
        h.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// Split `a="x",b="y,z"` at the commas outside quotes.
fn split_labels(labels: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in labels.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(labels[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < labels.len() {
        parts.push(labels[start..].trim());
    }
    parts.retain(|p| !p.is_empty());
    parts
}

/// Bucket-wise sum (series from several processes with the same bounds).
fn add(a: &Histogram, b: &Histogram) -> Histogram {
    if a.buckets.is_empty() {
        return b.clone();
    }
    let mut buckets = a.buckets.clone();
    for (bound, n) in &b.buckets {
        match buckets.iter_mut().find(|(x, _)| x == bound) {
            Some(slot) => slot.1 += n,
            None => buckets.push((*bound, *n)),
        }
    }
    buckets.sort_by(|x, y| x.0.total_cmp(&y.0));
    Histogram {
        buckets,
        sum: a.sum + b.sum,
        count: a.count + b.count,
    }
}

/// `after − before`, bucket by bucket (a series absent before counts from 0).
pub fn delta(before: &Scrape, after: &Scrape) -> Scrape {
    after
        .iter()
        .map(|(key, a)| {
            let d = match before.get(key) {
                None => a.clone(),
                Some(b) => Histogram {
                    buckets: a
                        .buckets
                        .iter()
                        .map(|(bound, n)| {
                            let was = b
                                .buckets
                                .iter()
                                .find(|(x, _)| x == bound)
                                .map_or(0.0, |(_, m)| *m);
                            (*bound, (n - was).max(0.0))
                        })
                        .collect(),
                    sum: (a.sum - b.sum).max(0.0),
                    count: (a.count - b.count).max(0.0),
                },
            };
            (key.clone(), d)
        })
        .collect()
}

/// The `q` quantile, interpolated linearly within its bucket (the lower
/// edge of the first bucket is 0). `Err(bound)` when it lies above the last
/// finite bound; `None` without samples.
pub fn quantile(h: &Histogram, q: f64) -> Option<Result<f64, f64>> {
    let total = h.buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(bound, cumulative) in &h.buckets {
        if cumulative >= rank && cumulative > below {
            if bound.is_infinite() {
                return Some(Err(lower));
            }
            let within = (rank - below) / (cumulative - below);
            return Some(Ok(lower + (bound - lower) * within.clamp(0.0, 1.0)));
        }
        lower = if bound.is_finite() { bound } else { lower };
        below = cumulative;
    }
    Some(Err(lower))
}

fn fmt_seconds(s: f64) -> String {
    if s < 0.001 {
        format!("{:.0} us", s * 1e6)
    } else {
        format!("{:.3} ms", s * 1e3)
    }
}

fn fmt_quantile(q: Option<Result<f64, f64>>) -> String {
    match q {
        None => "-".to_string(),
        Some(Ok(s)) => fmt_seconds(s),
        Some(Err(bound)) => format!("> {}", fmt_seconds(bound)),
    }
}

/// One line per series of the [`PRINTED`] histograms in `d`.
pub fn report(d: &Scrape) -> Vec<String> {
    let mut lines = Vec::new();
    for (metric, label, order) in PRINTED {
        let wanted: Vec<String> = if label.is_empty() {
            vec![String::new()]
        } else {
            order.iter().map(|v| format!("{label}=\"{v}\"")).collect()
        };
        let shown = |labels: &str| {
            if labels.is_empty() {
                metric.to_string()
            } else {
                format!("{metric}{{{labels}}}")
            }
        };
        // A service lists only its own role's stages: when the metric is
        // there at all, the stages it does not list belong to the other
        // service and are left out; when it is absent, say so once per line.
        let listed = d.keys().any(|(name, _)| name == metric);
        let mut series: Vec<(String, Option<&Histogram>)> = wanted
            .iter()
            .map(|l| (shown(l), d.get(&(metric.to_string(), l.clone()))))
            .filter(|(_, h)| h.is_some() || !listed)
            .collect();
        for ((name, labels), h) in d {
            if name == metric && !wanted.contains(labels) {
                series.push((shown(labels), Some(h)));
            }
        }
        for (shown, h) in series {
            let line = match h.filter(|h| h.count > 0.0) {
                None if h.is_none() => format!("{shown:<46} no samples (not exported)"),
                None => format!("{shown:<46} no samples"),
                Some(h) => format!(
                    "{shown:<46} n={:<8} mean={:<10} p50={:<10} p99={}",
                    h.count,
                    fmt_seconds(h.sum / h.count),
                    fmt_quantile(quantile(h, 0.5)),
                    fmt_quantile(quantile(h, 0.99)),
                ),
            };
            lines.push(line);
        }
    }
    lines
}

/// Scrapes taken before a run, to subtract after it.
pub struct StageWatch {
    urls: Vec<String>,
    before: Scrape,
}

impl StageWatch {
    /// Scrape every URL now; fails (naming the URL) if one is unreachable.
    pub async fn start(urls: &[String]) -> Result<StageWatch> {
        Ok(StageWatch {
            urls: urls.to_vec(),
            before: scrape_all(urls).await?,
        })
    }

    /// Scrape again: the per-stage breakdown of what happened since, as
    /// lines to print (none without endpoints).
    pub async fn finish(&self) -> Result<Vec<String>> {
        if self.urls.is_empty() {
            return Ok(Vec::new());
        }
        let after = scrape_all(&self.urls).await?;
        let mut lines = vec![format!(
            "per-stage latency during the run (from /metrics of {} process(es); bucket deltas, \
             quantiles interpolated linearly within buckets):",
            self.urls.len()
        )];
        lines.extend(
            report(&delta(&self.before, &after))
                .into_iter()
                .map(|l| format!("  {l}")),
        );
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# TYPE rvc_stage_seconds histogram
rvc_stage_seconds_bucket{stage="register",le="0.0001"} 10
rvc_stage_seconds_bucket{stage="register",le="0.001"} 90
rvc_stage_seconds_bucket{stage="register",le="+Inf"} 100
rvc_stage_seconds_sum{stage="register"} 0.05
rvc_stage_seconds_count{stage="register"} 100
rvc_matches_total 7
# TYPE rvc_x summary
rvc_x{quantile="0.5"} 1
rvc_x_sum 2
rvc_x_count 3
"#;

    fn key(stage: &str) -> (String, String) {
        ("rvc_stage_seconds".into(), format!("stage=\"{stage}\""))
    }

    #[test]
    fn histograms_are_parsed_and_others_skipped() {
        let s = parse(TEXT);
        assert_eq!(s.len(), 1);
        let h = &s[&key("register")];
        assert_eq!(h.count, 100.0);
        assert_eq!(h.buckets.len(), 3);
        assert!(h.buckets[2].0.is_infinite());
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket() {
        let h = &parse(TEXT)[&key("register")];
        // Rank 50 lies 40/80 of the way through (0.0001, 0.001].
        let p50 = quantile(h, 0.5).unwrap().unwrap();
        assert!((p50 - 0.00055).abs() < 1e-9, "{p50}");
        // Rank 5 is half way through the first bucket, from 0.
        let p5 = quantile(h, 0.05).unwrap().unwrap();
        assert!((p5 - 0.00005).abs() < 1e-9, "{p5}");
        // Rank 99 is in +Inf: only a lower bound is known.
        assert_eq!(quantile(h, 0.99), Some(Err(0.001)));
    }

    #[test]
    fn deltas_subtract_the_earlier_scrape() {
        let before = parse(TEXT);
        let after = parse(
            &TEXT
                .replace("} 100\n", "} 150\n")
                .replace("} 90\n", "} 140\n"),
        );
        let d = delta(&before, &after);
        let h = &d[&key("register")];
        assert_eq!(h.count, 50.0);
        assert_eq!(h.buckets[0].1, 0.0);
        assert_eq!(h.buckets[1].1, 50.0);
        assert_eq!(h.buckets[2].1, 50.0);
    }

    #[test]
    fn empty_and_missing_stages_say_no_samples() {
        let zero = parse(
            &TEXT
                .replace(" 10\n", " 0\n")
                .replace(" 90\n", " 0\n")
                .replace(" 100\n", " 0\n"),
        );
        let lines = report(&zero);
        assert!(
            lines[0].contains("register") && lines[0].ends_with("no samples"),
            "{lines:?}"
        );
        // The other stages are another service's: not listed by this one.
        assert!(
            !lines.iter().any(|l| l.contains("stream_wait")),
            "{lines:?}"
        );
        // A histogram no process exports says so.
        assert!(lines
            .iter()
            .any(|l| l.starts_with("rvc_time_to_match_seconds") && l.contains("not exported")));
        let none = report(&Scrape::new());
        assert!(none
            .iter()
            .any(|l| l.contains("stage=\"pairing\"") && l.contains("not exported")));
    }

    #[test]
    fn several_processes_add_up() {
        let a = parse(TEXT);
        let h = add(&a[&key("register")], &a[&key("register")]);
        assert_eq!(h.count, 200.0);
        assert_eq!(h.buckets[1].1, 180.0);
    }

    #[test]
    fn label_values_may_hold_commas() {
        assert_eq!(
            split_labels(r#"a="x,y",le="1""#),
            vec![r#"a="x,y""#, r#"le="1""#]
        );
    }
}
