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
    /// Wall time per command or script over the run, from `SLOWLOG` (only
    /// with script times on): name → (calls, µs).
    pub slowlog: BTreeMap<String, (u64, u64)>,
    /// Why the script times could not be read, when they were asked for.
    pub slowlog_error: Option<String>,
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

/// A RESP reply, as far as these few commands need.
#[derive(Debug, Clone, PartialEq)]
enum Reply {
    Int(i64),
    Text(Vec<u8>),
    Array(Vec<Reply>),
    Nil,
}

/// Send one command.
async fn send(stream: &mut BufReader<TcpStream>, args: &[&str]) -> Result<()> {
    let mut cmd = format!("*{}\r\n", args.len());
    for a in args {
        cmd.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    stream.get_mut().write_all(cmd.as_bytes()).await?;
    Ok(())
}

/// Read one reply (an error reply is an error).
fn read_reply(
    stream: &mut BufReader<TcpStream>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Reply>> + Send + '_>> {
    Box::pin(async move {
        let mut line = String::new();
        stream.read_line(&mut line).await?;
        let line = line.trim_end();
        let (kind, rest) = line.split_at(line.len().min(1));
        let number = || {
            rest.parse::<i64>()
                .map_err(|_| anyhow!("bad RESP line {line:?}"))
        };
        match kind {
            "+" => Ok(Reply::Text(rest.as_bytes().to_vec())),
            "-" => bail!("Redis replied {rest}"),
            ":" => Ok(Reply::Int(number()?)),
            "$" | "*" if number()? < 0 => Ok(Reply::Nil),
            "$" => {
                let mut body = vec![0u8; number()? as usize + 2];
                stream.read_exact(&mut body).await?;
                body.truncate(body.len() - 2);
                Ok(Reply::Text(body))
            }
            "*" => {
                let n = number()? as usize;
                let mut items = Vec::with_capacity(n.min(1 << 20));
                for _ in 0..n {
                    items.push(read_reply(stream).await?);
                }
                Ok(Reply::Array(items))
            }
            _ => bail!("unexpected RESP line {line:?}"),
        }
    })
}

/// Run one command and read its reply.
async fn command(stream: &mut BufReader<TcpStream>, args: &[&str]) -> Result<Reply> {
    send(stream, args).await?;
    read_reply(stream).await
}

/// Most entries the log keeps over a run: Redis drops the oldest beyond
/// it (each entry holds up to 32 arguments of up to 128 bytes, so this
/// bounds the memory it takes too). A run that fills it is reported as cut
/// short rather than divided as if whole.
const SLOWLOG_MAX: u64 = 1_000_000;

/// The two settings [`start_slowlog`] changes, as they were.
#[derive(Debug, Clone)]
struct SlowlogSettings {
    max_len: String,
    slower_than: String,
}

/// Read one setting (`CONFIG GET name`).
async fn config_get(stream: &mut BufReader<TcpStream>, name: &str) -> Result<String> {
    match command(stream, &["CONFIG", "GET", name]).await? {
        Reply::Array(items) if items.len() == 2 => match &items[1] {
            Reply::Text(v) => Ok(String::from_utf8_lossy(v).into_owned()),
            other => bail!("CONFIG GET {name}: unexpected {other:?}"),
        },
        other => bail!("CONFIG GET {name}: unexpected {other:?}"),
    }
}

/// Log every command from now on in Redis's `SLOWLOG` (threshold 0), to
/// time each script (`INFO commandstats` has one line for every
/// `EVALSHA`). This costs Redis some work per command: a run with it on
/// reads a little slower. Returns the settings to put back.
async fn start_slowlog(url: &str) -> Result<SlowlogSettings> {
    let mut stream = BufReader::new(TcpStream::connect(address(url)?).await?);
    let saved = SlowlogSettings {
        max_len: config_get(&mut stream, "slowlog-max-len").await?,
        slower_than: config_get(&mut stream, "slowlog-log-slower-than").await?,
    };
    let max = SLOWLOG_MAX.to_string();
    command(&mut stream, &["CONFIG", "SET", "slowlog-max-len", &max]).await?;
    command(&mut stream, &["SLOWLOG", "RESET"]).await?;
    command(
        &mut stream,
        &["CONFIG", "SET", "slowlog-log-slower-than", "0"],
    )
    .await?;
    Ok(saved)
}

/// Stop logging, read the log, and put Redis's settings back: per command,
/// or per script for `EVALSHA` (`evalsha <sha1 prefix> (<n> keys)`), calls
/// and µs. Fails when the log filled up (its oldest entries are gone).
async fn read_slowlog(url: &str, saved: &SlowlogSettings) -> Result<BTreeMap<String, (u64, u64)>> {
    let mut stream = BufReader::new(TcpStream::connect(address(url)?).await?);
    let stream = &mut stream;
    command(stream, &["CONFIG", "SET", "slowlog-log-slower-than", "-1"]).await?;
    let entries = command(stream, &["SLOWLOG", "GET", "-1"]).await;
    command(stream, &["SLOWLOG", "RESET"]).await?;
    command(
        stream,
        &["CONFIG", "SET", "slowlog-max-len", &saved.max_len],
    )
    .await?;
    command(
        stream,
        &[
            "CONFIG",
            "SET",
            "slowlog-log-slower-than",
            &saved.slower_than,
        ],
    )
    .await?;
    let Reply::Array(entries) = entries? else {
        bail!("SLOWLOG GET did not return a list");
    };
    if entries.len() as u64 >= SLOWLOG_MAX {
        bail!(
            "the run ran more than {SLOWLOG_MAX} commands: Redis's log dropped the oldest \
             (shorten the run to time its scripts)"
        );
    }
    Ok(tally_slowlog(&entries))
}

/// Sum the entries of a `SLOWLOG GET` reply by what ran.
fn tally_slowlog(entries: &[Reply]) -> BTreeMap<String, (u64, u64)> {
    let text = |r: &Reply| match r {
        Reply::Text(t) => String::from_utf8_lossy(t).into_owned(),
        _ => String::new(),
    };
    let mut tally: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for entry in entries {
        let Reply::Array(fields) = entry else {
            continue;
        };
        let (Some(Reply::Int(us)), Some(Reply::Array(args))) = (fields.get(2), fields.get(3))
        else {
            continue;
        };
        let name = text(args.first().unwrap_or(&Reply::Nil)).to_lowercase();
        let name = if name == "evalsha" && args.len() >= 3 {
            let sha = text(&args[1]);
            format!(
                "evalsha {} ({} keys)",
                &sha[..sha.len().min(8)],
                text(&args[2])
            )
        } else {
            name
        };
        let row = tally.entry(name).or_default();
        row.0 += 1;
        row.1 += (*us).max(0) as u64;
    }
    tally
}

/// One `INFO <section>`.
async fn info(stream: &mut BufReader<TcpStream>, section: &str) -> Result<String> {
    match command(stream, &["INFO", section]).await? {
        Reply::Text(body) => Ok(String::from_utf8_lossy(&body).into_owned()),
        other => bail!("unexpected reply to INFO {section}: {other:?}"),
    }
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

/// How long reading the script times may take (a long run logs a lot).
const SLOWLOG_TIMEOUT: Duration = Duration::from_secs(120);

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
    if let Some(e) = &after.slowlog_error {
        lines.push(format!("Redis script times: not available ({e})"));
    }
    if !after.slowlog.is_empty() {
        lines.push(format!(
            "Redis wall time per {label} by command and by script (SLOWLOG at threshold 0, \
             which costs Redis some work itself; a script's time includes the commands it runs):"
        ));
        let mut rows: Vec<_> = after.slowlog.iter().collect();
        rows.sort_by_key(|(_, (_, usec))| std::cmp::Reverse(*usec));
        for (name, (calls, usec)) in rows.into_iter().take(12) {
            lines.push(format!(
                "  {name:<28} {:>8.3} calls {:>9.2} us per {label} ({:.2} us per call)",
                *calls as f64 / u,
                *usec as f64 / u,
                *usec as f64 / (*calls).max(1) as f64
            ));
        }
    }
    lines
}

/// A snapshot taken before a run, to report against after it.
pub struct RedisWatch {
    url: Option<String>,
    before: Snapshot,
    /// With script times on: Redis's log settings to put back.
    slowlog: Option<SlowlogSettings>,
}

impl RedisWatch {
    /// Read the counters before a run; with `script_times`, also time
    /// every command and script over it ([`start_slowlog`]).
    pub async fn start(url: Option<&str>, script_times: bool) -> Result<RedisWatch> {
        let (before, slowlog) = match url {
            Some(u) => {
                let slowlog = if script_times {
                    Some(
                        tokio::time::timeout(TIMEOUT, start_slowlog(u))
                            .await
                            .map_err(|_| anyhow!("Redis at {u} did not answer CONFIG in time"))?
                            .with_context(|| format!("starting Redis's SLOWLOG at {u}"))?,
                    )
                } else {
                    None
                };
                (snapshot(u).await?, slowlog)
            }
            None => (Snapshot::default(), None),
        };
        Ok(RedisWatch {
            url: url.map(str::to_string),
            before,
            slowlog,
        })
    }

    /// The counters now, against the start. Script times that cannot be
    /// read are reported as such, and do not cost the run's other figures.
    pub async fn finish(&self) -> Result<Option<Snapshot>> {
        let Some(u) = &self.url else {
            return Ok(None);
        };
        let mut after = snapshot(u).await?;
        if let Some(saved) = &self.slowlog {
            match tokio::time::timeout(SLOWLOG_TIMEOUT, read_slowlog(u, saved)).await {
                Ok(Ok(times)) => after.slowlog = times,
                Ok(Err(e)) => after.slowlog_error = Some(format!("{e:#}")),
                Err(_) => {
                    after.slowlog_error = Some(format!("not read within {SLOWLOG_TIMEOUT:?}"))
                }
            }
        }
        Ok(Some(after))
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

    /// Against a real Redis: every command and script of the run is
    /// timed, a script by its SHA1 and key count, and nothing from before
    /// the start.
    #[tokio::test]
    async fn script_times_name_each_script_run_during_the_run() {
        let redis = testkit::RedisServer::start();
        let url = redis.url();
        let mut stream = BufReader::new(TcpStream::connect(address(&url).unwrap()).await.unwrap());
        command(&mut stream, &["SET", "before", "1"]).await.unwrap();
        // Settings of its own (not Redis's defaults), which must come back.
        for (name, value) in [
            ("slowlog-log-slower-than", "777"),
            ("slowlog-max-len", "4321"),
        ] {
            command(&mut stream, &["CONFIG", "SET", name, value])
                .await
                .unwrap();
        }
        let watch = RedisWatch::start(Some(&url), true).await.unwrap();
        let script = "redis.call('SET', KEYS[1], ARGV[1]) return 1";
        let Reply::Text(sha) = command(&mut stream, &["SCRIPT", "LOAD", script])
            .await
            .unwrap()
        else {
            panic!("no sha");
        };
        let sha = String::from_utf8(sha).unwrap();
        for i in 0..3 {
            let v = i.to_string();
            let reply = command(&mut stream, &["EVALSHA", &sha, "1", "k", &v])
                .await
                .unwrap();
            assert_eq!(reply, Reply::Int(1));
        }
        command(&mut stream, &["GET", "k"]).await.unwrap();
        let after = watch.finish().await.unwrap().unwrap();
        let name = format!("evalsha {} (1 keys)", &sha[..8]);
        assert_eq!(
            after.slowlog.get(&name).map(|r| r.0),
            Some(3),
            "{:?}",
            after.slowlog
        );
        assert_eq!(
            after.slowlog.get("set").map(|r| r.0),
            Some(3),
            "{:?}",
            after.slowlog
        );
        assert_eq!(after.slowlog.get("get").map(|r| r.0), Some(1));
        let lines = watch.report(&Some(after), 3, "match");
        assert!(lines.iter().any(|l| l.contains(&name)), "{lines:?}");
        // Redis's own settings are back as they were.
        assert_eq!(
            config_get(&mut stream, "slowlog-log-slower-than")
                .await
                .unwrap(),
            "777"
        );
        assert_eq!(
            config_get(&mut stream, "slowlog-max-len").await.unwrap(),
            "4321"
        );
    }

    #[test]
    fn urls_with_credentials_are_refused() {
        assert_eq!(address("redis://127.0.0.1:6379").unwrap(), "127.0.0.1:6379");
        assert!(address("redis://:pw@127.0.0.1:6379").is_err());
    }
}
