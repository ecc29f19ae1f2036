//! "Nothing panics", checked: a panic in a server task spawned by tokio is
//! caught by the runtime and the service limps on, so a test could pass over
//! it. [`guard`] installs (once per process) a panic hook that records every
//! panic raised outside the test code, and asserts when dropped that there
//! was none, in this test or any other of the same test binary.
//!
//! Test code is told apart by where the panic was raised: a file of an
//! integration test (`…/tests/…`) or of this crate (a bounded wait that timed
//! out) is the test failing, which the harness reports anyway; anything else
//! (the services' code, their dependencies) is a panic of the system under
//! test.

use std::sync::{Mutex, Once};

static INSTALL: Once = Once::new();
static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Asserts on drop that no panic was raised outside the test code.
#[must_use = "keep the guard alive for the whole test: `let _panics = testkit::panics::guard();`"]
pub struct Guard(());

/// Install the hook (once) and return a guard; bind it first in each test so
/// it is dropped last.
pub fn guard() -> Guard {
    install();
    Guard(())
}

fn install() {
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let location = info.location();
            let file = location.map(|l| l.file().replace('\\', "/"));
            if !file.as_deref().is_some_and(is_test_code) {
                let message = service::panic::payload_text(info.payload());
                let place = location
                    .map(|l| format!("{}:{}", l.file(), l.line()))
                    .unwrap_or_else(|| "?".into());
                let thread = std::thread::current().name().unwrap_or("?").to_string();
                if let Ok(mut seen) = SEEN.lock() {
                    seen.push(format!("{message} (at {place}, thread {thread})"));
                }
            }
            previous(info);
        }));
    });
}

fn is_test_code(file: &str) -> bool {
    file.contains("/tests/") || file.starts_with("tests/") || file.starts_with("testkit/")
}

/// The panics raised outside test code so far in this process.
fn seen() -> Vec<String> {
    SEEN.lock().map(|s| s.clone()).unwrap_or_default()
}

/// Fail if any panic was raised outside the test code so far.
fn assert_no_panics() {
    let seen = seen();
    assert!(
        seen.is_empty(),
        "{} panic(s) in the system under test (a spawned task died and the service limped on): {seen:#?}",
        seen.len()
    );
}

impl Drop for Guard {
    fn drop(&mut self) {
        // The test already failed: its own panic is the report.
        if !std::thread::panicking() {
            assert_no_panics();
        }
    }
}
