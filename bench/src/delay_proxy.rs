//! `bench delay-proxy`: a TCP proxy that holds every byte for a fixed delay
//! in each direction, to put Redis "in another zone" on a kernel without
//! netem. With D ms each way, every round trip a service makes to Redis
//! costs 2·D more, so time-to-match ÷ 2·D counts the round trips on a
//! user's path.
//!
//! Each direction of each connection has a reader, which stamps every chunk
//! it reads with (read time + D) and queues it without bound, and a writer,
//! which waits until a chunk's time and writes it. Order is kept (one queue
//! per direction) and throughput is not limited (the reader never waits for
//! the writer). Tokio's timer has millisecond resolution, so a chunk is
//! held D to D + 1 ms.

use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

#[derive(Debug, clap::Args)]
pub struct DelayProxyArgs {
    /// Address to accept on, e.g. 127.0.0.1:7000.
    #[arg(long)]
    pub listen: String,

    /// Where to forward every connection, e.g. Redis at 127.0.0.1:6379.
    #[arg(long)]
    pub upstream: String,

    /// Delay added to each direction, ms (a round trip costs twice this).
    #[arg(long)]
    pub delay_ms: u64,
}

pub async fn run(args: DelayProxyArgs) -> Result<()> {
    crate::fd_limit::raise_own()?;
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    // Fail now, not on the first client, if the upstream is not there.
    TcpStream::connect(&args.upstream)
        .await
        .with_context(|| format!("upstream {} is not reachable", args.upstream))?;
    let delay = Duration::from_millis(args.delay_ms);
    println!(
        "delay proxy: {} -> {} with {} ms each way",
        listener.local_addr()?,
        args.upstream,
        args.delay_ms
    );
    loop {
        let (client, _) = listener.accept().await?;
        let upstream = args.upstream.clone();
        tokio::spawn(async move {
            match TcpStream::connect(&upstream).await {
                Ok(server) => splice(client, server, delay).await,
                Err(e) => eprintln!("delay proxy: connecting to {upstream}: {e}"),
            }
        });
    }
}

/// Relay both directions of one connection with `delay` each way, until
/// either side closes.
async fn splice(client: TcpStream, server: TcpStream, delay: Duration) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = tokio::spawn(delayed(cr, sw, delay));
    let down = tokio::spawn(delayed(sr, cw, delay));
    let _ = tokio::join!(up, down);
}

/// Copy `from` to `to`, each chunk written `delay` after it was read.
/// When `from` ends, what is queued is still delivered, then `to` is shut.
pub async fn delayed<R, W>(mut from: R, mut to: W, delay: Duration)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    while let Some((due, chunk)) = rx.recv().await {
        tokio::time::sleep_until(due).await;
        if to.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
    reader.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_arrive_in_order_and_no_earlier_than_the_delay() {
        let (a, mut a_peer) = tokio::io::duplex(1 << 16);
        let (mut b_peer, b) = tokio::io::duplex(1 << 16);
        let delay = Duration::from_millis(30);
        tokio::spawn(delayed(a, b, delay));
        let start = Instant::now();
        let writer = tokio::spawn(async move {
            for i in 0..100u8 {
                a_peer.write_all(&[i; 100]).await.unwrap();
                if i % 10 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            a_peer.shutdown().await.unwrap();
        });
        let mut first = [0u8; 1];
        b_peer.read_exact(&mut first).await.unwrap();
        assert!(start.elapsed() >= delay, "{:?}", start.elapsed());
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), b_peer.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        writer.await.unwrap();
        let mut all = vec![first[0]];
        all.extend(rest);
        let expected: Vec<u8> = (0..100u8).flat_map(|i| [i; 100]).collect();
        assert_eq!(all, expected);
        // Not serialised behind the delay: 100 writes took about one delay.
        assert!(start.elapsed() < delay * 10, "{:?}", start.elapsed());
    }
}
