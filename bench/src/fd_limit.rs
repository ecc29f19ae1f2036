//! Open-file limits: the bench raises its own soft `RLIMIT_NOFILE` to the
//! hard limit (an unprivileged process may do that, not more), and checks a
//! target process's limit before trying to open more sockets to it than it
//! can accept.

use anyhow::{anyhow, bail, Context, Result};

/// Raise this process's soft open-file limit to its hard limit; returns the
/// new soft limit.
pub fn raise_own() -> Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error()).context("getrlimit(RLIMIT_NOFILE)");
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error())
                .context("setrlimit(RLIMIT_NOFILE) to the hard limit");
        }
        lim = raised;
    }
    Ok(lim.rlim_cur)
}

/// Fail unless this process may hold `sockets` more descriptors (plus a
/// margin for stdio, the runtime and scrapes).
pub fn ensure_own(sockets: usize) -> Result<()> {
    let limit = raise_own()?;
    let needed = sockets as u64 + 64;
    if needed > limit {
        bail!(
            "this process may open {limit} files (hard RLIMIT_NOFILE) but {sockets} sockets need \
             about {needed}: raise the hard limit (`ulimit -Hn`, limits.conf or systemd \
             LimitNOFILE; needs CAP_SYS_RESOURCE) and fs.nr_open (docs/BENCHMARKS.md)"
        );
    }
    Ok(())
}

/// The soft open-file limit of another process (`Max open files` in
/// `/proc/<pid>/limits`); `None` when unlimited.
pub fn of_process(pid: u32) -> Result<Option<u64>> {
    let path = format!("/proc/{pid}/limits");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_limits(&text).ok_or_else(|| anyhow!("no `Max open files` line in {path}"))
}

fn parse_limits(text: &str) -> Option<Option<u64>> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .strip_prefix("Max open files")?
        .split_whitespace()
        .next()?;
    if soft == "unlimited" {
        return Some(None);
    }
    soft.parse().ok().map(Some)
}

/// Fail unless process `pid` may accept `sockets` connections.
pub fn ensure_process(pid: u32, sockets: usize) -> Result<()> {
    if let Some(limit) = of_process(pid)? {
        let needed = sockets as u64 + 64;
        if needed > limit {
            bail!(
                "process {pid} may open {limit} files but {sockets} sockets need about {needed}: \
                 start it with a higher limit (`ulimit -n` before starting it; scripts/bench \
                 raises it to the hard limit, `ulimit -Hn`)"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_line_is_parsed() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max processes             95487                95487                processes \n\
                    Max open files            20000                20000                files     \n";
        assert_eq!(parse_limits(text), Some(Some(20000)));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_limits(unlimited), Some(None));
        assert_eq!(parse_limits("Max processes 1 1 processes\n"), None);
    }

    #[test]
    fn own_limit_is_raised_to_the_hard_limit() {
        let soft = raise_own().unwrap();
        let expected = (soft != libc::RLIM_INFINITY).then_some(soft);
        assert_eq!(of_process(std::process::id()).unwrap(), expected);
    }
}
