//! Run every fuzz target (or one) for a bounded time.
//!
//! `cargo run --release -p fuzz-targets -- --secs N [--target NAME] [--seed S]`
//! prints executions and crashes per target, saves each crashing input to
//! `fuzz/crashes/<target>-<n>.bin`, and exits non-zero on any crash.
//! `--replay FILE --target NAME` runs one saved input again (with the panic
//! message and backtrace), `--list` names the targets.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use fuzz_targets::{all, gen, run_one, Target};
use rand::rngs::SmallRng;
use rand::SeedableRng;

/// Crashing inputs kept per target (the first ones; the count goes on).
const MAX_SAVED: usize = 20;

struct Args {
    secs: f64,
    target: Option<String>,
    seed: u64,
    replay: Option<PathBuf>,
    list: bool,
}

fn usage() -> ! {
    eprintln!(
        "usage: fuzz-targets [--secs N] [--target NAME] [--seed S] | --replay FILE --target NAME | --list"
    );
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut args = Args {
        secs: 10.0,
        target: None,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
        replay: None,
        list: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--secs" => args.secs = value().parse().unwrap_or_else(|_| usage()),
            "--target" => args.target = Some(value()),
            "--seed" => args.seed = value().parse().unwrap_or_else(|_| usage()),
            "--replay" => args.replay = Some(PathBuf::from(value())),
            "--list" => args.list = true,
            _ => usage(),
        }
    }
    args
}

fn crash_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("crashes")
}

struct Outcome {
    execs: u64,
    crashes: u64,
}

fn fuzz(target: &Target, budget: Duration, seed: u64) -> Outcome {
    let seeds = (target.seeds)();
    let mut rng = SmallRng::seed_from_u64(seed);
    let start = Instant::now();
    let mut out = Outcome {
        execs: 0,
        crashes: 0,
    };
    // The seeds themselves first: the valid path must hold.
    let mut queue = seeds.clone();
    loop {
        let input = match queue.pop() {
            Some(input) => input,
            None => {
                // Check the clock every 64 inputs; most run in microseconds.
                if out.execs & 63 == 0 && start.elapsed() >= budget {
                    break;
                }
                gen::next_input(&mut rng, &seeds, target.dict)
            }
        };
        out.execs += 1;
        if let Err(msg) = run_one(target, &input) {
            out.crashes += 1;
            if out.crashes as usize <= MAX_SAVED {
                let path = crash_dir().join(format!("{}-{}.bin", target.name, out.crashes));
                let saved = std::fs::create_dir_all(crash_dir())
                    .and_then(|_| std::fs::write(&path, &input));
                let first_line = msg.lines().next().unwrap_or("");
                match saved {
                    Ok(()) => eprintln!(
                        "CRASH {}: {first_line}\n  input saved to {}",
                        target.name,
                        path.display()
                    ),
                    Err(e) => eprintln!("CRASH {}: {first_line} (not saved: {e})", target.name),
                }
            }
        }
    }
    out
}

fn main() -> ExitCode {
    let args = parse_args();
    let targets = all();
    if args.list {
        for t in &targets {
            println!("{:<24} {}", t.name, t.covers);
        }
        return ExitCode::SUCCESS;
    }
    let chosen: Vec<&Target> = targets
        .iter()
        .filter(|t| args.target.as_deref().is_none_or(|name| t.name == name))
        .collect();
    if chosen.is_empty() {
        eprintln!("no target named {:?}; try --list", args.target);
        return ExitCode::from(2);
    }

    if let Some(file) = &args.replay {
        let input = std::fs::read(file).unwrap_or_else(|e| {
            eprintln!("cannot read {}: {e}", file.display());
            std::process::exit(2)
        });
        let [target] = chosen.as_slice() else {
            eprintln!("--replay needs --target");
            return ExitCode::from(2);
        };
        println!("input: {:?}", String::from_utf8_lossy(&input));
        (target.run)(&input);
        println!("no crash");
        return ExitCode::SUCCESS;
    }

    // Panics are expected and counted; the default hook would print each.
    std::panic::set_hook(Box::new(|_| {}));
    let budget = Duration::from_secs_f64(args.secs);
    println!("seed {}, {} s per target", args.seed, args.secs);
    println!("| target | executions | exec/s | crashes |");
    println!("|---|---:|---:|---:|");
    let (mut total_execs, mut total_crashes) = (0, 0);
    for (i, target) in chosen.iter().enumerate() {
        let start = Instant::now();
        let out = fuzz(target, budget, args.seed.wrapping_add(i as u64));
        let rate = out.execs as f64 / start.elapsed().as_secs_f64();
        println!(
            "| {} | {} | {:.0} | {} |",
            target.name, out.execs, rate, out.crashes
        );
        total_execs += out.execs;
        total_crashes += out.crashes;
    }
    println!("| **total** | {total_execs} | | {total_crashes} |");
    if total_crashes > 0 {
        eprintln!(
            "{total_crashes} crash(es); inputs in {}",
            crash_dir().display()
        );
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
