//! A few hundred generated inputs per target, fixed seeds: fast enough for
//! every `cargo test`, so the targets and their properties stay honest.
//! The long runs are `scripts/fuzz`.

use fuzz_targets::{all, quick_check};

const ITERATIONS: usize = 300;

#[test]
fn every_target_holds_on_quick_inputs() {
    for (i, target) in all().iter().enumerate() {
        quick_check(target, ITERATIONS, 0x5eed + i as u64);
    }
}

#[test]
fn target_names_are_unique() {
    let mut names: Vec<_> = all().iter().map(|t| t.name).collect();
    names.sort();
    let n = names.len();
    names.dedup();
    assert_eq!(names.len(), n);
}
