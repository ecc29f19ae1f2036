//! A panic anywhere in a role's process is a bug: it is logged loudly and the
//! process exits non-zero, instead of limping on with one task gone (tokio
//! catches a panic in a spawned task and carries on without it).

/// Exit status after a panic (the same as an uncaught panic in `main`).
pub const EXIT_CODE: i32 = 101;

/// Install the hook: the default report (message, location, backtrace if
/// `RUST_BACKTRACE` is set) on stderr, an error-level log line, then exit
/// with [`EXIT_CODE`]. Call it first thing in `main`.
pub fn exit_on_panic(process: &'static str) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        let thread = std::thread::current();
        let message = payload_text(info.payload());
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(
            thread = thread.name().unwrap_or("?"),
            %location,
            "{process}: panic: {message}; exiting"
        );
        std::process::exit(EXIT_CODE);
    }));
}

/// A panic's message: its payload when it is text (`panic!` with a literal
/// or a format), else a placeholder. For every panic hook and
/// `catch_unwind` in the workspace.
pub fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string payload)".into())
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    /// Runs the test binary again as a child that installs the hook and
    /// panics in a spawned task: the child must exit 101, not carry on.
    #[test]
    fn a_panic_in_a_spawned_task_exits_the_process_non_zero() {
        if std::env::var_os("RVC_PANIC_CHILD").is_some() {
            super::exit_on_panic("child");
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let _ = tokio::spawn(async { panic!("boom in a task") }).await;
                // Limping on: only reached when the hook did not exit.
                println!("still running after the panic");
            });
            std::process::exit(0);
        }
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "panic::tests::a_panic_in_a_spawned_task_exits_the_process_non_zero",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("RVC_PANIC_CHILD", "1")
            .output()
            .expect("run the child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(super::EXIT_CODE),
            "stdout: {stdout}\nstderr: {stderr}"
        );
        assert!(stderr.contains("boom in a task"), "{stderr}");
        assert!(!stdout.contains("still running"), "{stdout}");
    }
}
