//! Redis' own accounting over a measured run: `INFO commandstats` (calls
//! and µs per command, including the commands scripts run) and `INFO cpu`
//! (the server process's user + system time), read before and after, so
//! the cost per match or per message excludes connecting, warm-up and idle
//! phases. Spoken over a plain TCP socket in RESP: two commands, no client
//! library needed.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest one `INFO` may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Counters at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Command → (calls, µs).
    pub commands: BTreeMap<String, (u64, u64)>,
    /// used_cpu_user + used_cpu_sys, s.
    pub cpu_secs: f64,
}

/// `redis://host:port` (or `host:port`) → `host:port`.
fn address(url: &str) -> Result<&str> {
    let rest = url.strip_prefix("redis://").unwrap_or(url);
    let rest = rest.trim_end_matches('/');
    if rest.contains('@') || rest.contains('/') || rest.is_empty() {
        bail!("{url}: give redis://HOST:PORT (no password or database)");
    }
    Ok(rest)
}

/// One `INFO <section>`.
async fn info(stream: &mut BufReader<TcpStream>, section: &str) -> Result<String> {
    let cmd = format!("*2\r\n$4\r\nINFO\r\n${}\r\n{section}\r\n", section.len());
    stream.get_mut().write_all(cmd.as_bytes()).await?;
    let mut header = String::new();
    stream.read_line(&mut header).await?;
    let len: usize = header
        .strip_prefix('$')
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| anyhow!("unexpected reply to INFO: {header:?}"))?;
    let mut body = vec![0u8; len + 2];
    stream.read_exact(&mut body).await?;
    body.truncate(len);
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Read the counters now; fails (naming the URL) if Redis is unreachable.
pub async fn snapshot(url: &str) -> Result<Snapshot> {
    let addr = address(url)?;
    let read = async {
        let mut stream = BufReader::new(TcpStream::connect(addr).await?);
        let commands = info(&mut stream, "commandstats").await?;
        let cpu = info(&mut stream, "cpu").await?;
        anyhow::Ok(parse(&commands, &cpu))
    };
    tokio::time::timeout(TIMEOUT, read)
        .await
        .map_err(|_| anyhow!("Redis at {url} did not answer INFO within {TIMEOUT:?}"))?
        .with_context(|| format!("reading INFO from Redis at {url}"))
}

fn parse(commands: &str, cpu: &str) -> Snapshot {
    let mut s = Snapshot::default();
    for line in commands.lines() {
        let Some((name, fields)) = line
            .trim()
            .strip_prefix("cmdstat_")
            .and_then(|l| l.split_once(':'))
        else {
            continue;
        };
        let field = |key: &str| {
            fields
                .split(',')
                .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        s.commands
            .insert(name.to_string(), (field("calls"), field("usec")));
    }
    for line in cpu.lines() {
        if let Some((key, value)) = line.trim().split_once(':') {
            if key == "used_cpu_user" || key == "used_cpu_sys" {
                s.cpu_secs += value.parse::<f64>().unwrap_or(0.0);
            }
        }
    }
    s
}

/// Lines describing `after − before` per `units` of `label` (match, message).
pub fn report(before: &Snapshot, after: &Snapshot, units: u64, label: &str) -> Vec<String> {
    if units == 0 {
        return vec![format!("Redis during the run: no {label} to divide by")];
    }
    let u = units as f64;
    let mut rows: Vec<(String, u64, u64)> = after
        .commands
        .iter()
        .map(|(name, (calls, usec))| {
            let (c0, u0) = before.commands.get(name).copied().unwrap_or((0, 0));
            (
                name.clone(),
                calls.saturating_sub(c0),
                usec.saturating_sub(u0),
            )
        })
        .filter(|(_, calls, _)| *calls > 0)
        .collect();
    let calls: u64 = rows.iter().map(|r| r.1).sum();
    let cpu_us = (after.cpu_secs - before.cpu_secs).max(0.0) * 1e6;
    let mut lines = vec![format!(
        "Redis during the run: {:.1} us of Redis CPU and {:.2} commands per {label} \
         ({calls} commands over {units}; commands that scripts run counted too)",
        cpu_us / u,
        calls as f64 / u,
    )];
    rows.sort_by(|a, b| b.2.cmp(&a.2).then(b.1.cmp(&a.1)));
    for (name, calls, usec) in rows.into_iter().take(12) {
        lines.push(format!(
            "  {name:<16} {:>8.3} calls {:>9.2} us per {label}",
            calls as f64 / u,
            usec as f64 / u
        ));
    }
    lines
}

/// A snapshot taken before a run, to report against after it.
pub struct RedisWatch {
    url: Option<String>,
    before: Snapshot,
}

impl RedisWatch {
    pub async fn start(url: Option<&str>) -> Result<RedisWatch> {
        let before = match url {
            Some(u) => snapshot(u).await?,
            None => Snapshot::default(),
        };
        Ok(RedisWatch {
            url: url.map(str::to_string),
            before,
        })
    }

    /// The counters now, against the start.
    pub async fn finish(&self) -> Result<Option<Snapshot>> {
        match &self.url {
            Some(u) => Ok(Some(snapshot(u).await?)),
            None => Ok(None),
        }
    }

    pub fn report(&self, after: &Option<Snapshot>, units: u64, label: &str) -> Vec<String> {
        after
            .as_ref()
            .map(|a| report(&self.before, a, units, label))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_is_parsed() {
        let commands = "# Commandstats\r\ncmdstat_get:calls=10,usec=50,usec_per_call=5.00,rejected_calls=0,failed_calls=0\r\ncmdstat_evalsha:calls=4,usec=400,usec_per_call=100.00\r\n";
        let cpu = "# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.250000\r\nused_cpu_sys_children:9\r\n";
        let s = parse(commands, cpu);
        assert_eq!(s.commands["get"], (10, 50));
        assert_eq!(s.commands["evalsha"], (4, 400));
        assert!((s.cpu_secs - 3.75).abs() < 1e-9);
    }

    #[test]
    fn costs_are_per_unit_of_the_run_only() {
        let before = parse("cmdstat_get:calls=10,usec=50\r\n", "used_cpu_user:1.0\r\n");
        let after = parse(
            "cmdstat_get:calls=30,usec=150\r\ncmdstat_set:calls=10,usec=100\r\n",
            "used_cpu_user:1.002\r\n",
        );
        let lines = report(&before, &after, 10, "match");
        assert!(lines[0].contains("200.0 us of Redis CPU"), "{lines:?}");
        assert!(lines[0].contains("3.00 commands per match"), "{lines:?}");
        assert!(lines[1].trim_start().starts_with("get"), "{lines:?}");
    }

    #[test]
    fn urls_with_credentials_are_refused() {
        assert_eq!(address("redis://127.0.0.1:6379").unwrap(), "127.0.0.1:6379");
        assert!(address("redis://:pw@127.0.0.1:6379").is_err());
    }
}
