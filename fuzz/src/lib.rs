//! Fuzz and property targets for every decoder that sees outside input.
//!
//! Each target is a `fn(&[u8])` that must never panic and checks, where it
//! is cheap, a property of the decoder (a decoded value encodes back to
//! itself, a ticket never verifies under another secret, a session answers
//! every undecodable frame with exactly one `error` event, ...). A failed
//! property is a panic, so the runner ([`run_one`]) sees both the same way.
//!
//! Stable Rust has no libFuzzer, so the inputs come from [`gen`]: valid seeds
//! of each format, randomly mutated, plus random bytes that targets turn into
//! structured values with `arbitrary`. The binary (`src/main.rs`) runs the
//! targets for a bounded time; `tests/quick.rs` runs a few hundred inputs of
//! each in `cargo test`. See the Fuzzing section of `docs/SECURITY.md`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use rand::rngs::SmallRng;
use rand::SeedableRng;

pub mod gen;
pub mod resp;
pub mod targets;

/// One fuzz target.
pub struct Target {
    pub name: &'static str,
    /// The decoders it drives, for the result table.
    pub covers: &'static str,
    /// Must never panic.
    pub run: fn(&[u8]),
    /// Valid inputs of the format, which the generator mutates.
    pub seeds: fn() -> Vec<Vec<u8>>,
    /// Tokens of the format worth inserting.
    pub dict: &'static [&'static [u8]],
}

/// Every target, in the order the runner runs them.
pub fn all() -> Vec<Target> {
    targets::all()
}

/// Run `input` through `target`; the panic message if it panicked.
pub fn run_one(target: &Target, input: &[u8]) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| (target.run)(input)))
        .map_err(|payload| service::panic::payload_text(&*payload))
}

/// Run the seeds of `target` and then `iterations` generated inputs from
/// `seed`; panics, with the input, at the first failure. For `cargo test`.
pub fn quick_check(target: &Target, iterations: usize, seed: u64) {
    let seeds = (target.seeds)();
    let mut rng = SmallRng::seed_from_u64(seed);
    let generated = (0..iterations).map(|_| gen::next_input(&mut rng, &seeds, target.dict));
    for input in seeds.clone().into_iter().chain(generated) {
        if let Err(msg) = run_one(target, &input) {
            panic!(
                "target {} failed: {msg}\ninput ({} bytes): {:?}",
                target.name,
                input.len(),
                String::from_utf8_lossy(&input)
            );
        }
    }
}
