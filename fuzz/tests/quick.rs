//! A few hundred generated inputs per target, fixed seeds: fast enough for
//! every `cargo test` (well under a second in all), so the targets and their
//! properties stay honest. The long runs are `scripts/fuzz`.

use fuzz_targets::{all, quick_check};

const ITERATIONS: usize = 500;

fn quick(name: &str) {
    let targets = all();
    let (i, target) = targets
        .iter()
        .enumerate()
        .find(|(_, t)| t.name == name)
        .unwrap_or_else(|| panic!("no target {name}"));
    quick_check(target, ITERATIONS, 0x5eed + i as u64);
}

macro_rules! quick_tests {
    ($($name:ident),* $(,)?) => {
        $(#[test]
        fn $name() {
            quick(stringify!($name));
        })*

        #[test]
        fn every_target_has_a_quick_test() {
            let mut tested = vec![$(stringify!($name)),*];
            let mut names: Vec<_> = all().iter().map(|t| t.name).collect();
            tested.sort();
            names.sort();
            assert_eq!(tested, names);
        }
    };
}

quick_tests!(
    matcher_ws_json,
    matcher_register_body,
    signaller_ws_json,
    internal_msgpack,
    internal_round_trip,
    ticket_verify,
    ticket_sign_verify,
    stored_values,
    stream_reply,
    room_log_reply,
    signaller_admission,
    signaller_session,
    matcher_session,
);
