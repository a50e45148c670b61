//! A panic stops the daemon. A panicking tokio task or thread would otherwise die alone: the
//! RIB thread gone while sessions stay up and keepalives flow means routing frozen in silence.
//! Stopping instead hands recovery to what is built for it: the kernel keeps our routes,
//! peers keep ours through graceful restart, and the supervisor starts us again.

/// The exit status after a panic: EX_SOFTWARE, an internal error.
pub const PANIC_EXIT: i32 = 70;

/// Makes every panic, on any thread or task, log and end the process with [`PANIC_EXIT`].
/// For daemons: call once at start, before any runtime or thread is made.
pub fn exit_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        let thread = std::thread::current().name().unwrap_or("unnamed").to_string();
        tracing::error!(
            thread,
            "{info}; stopping: a restart recovers (routes stay in the kernel and peers keep ours \
             through graceful restart)"
        );
        std::process::exit(PANIC_EXIT);
    }));
}

/// Runs `f` (a thread that the process cannot go on without, like the RIB's) and ends the
/// process if it panics, also where no hook from [`exit_on_panic`] is set.
pub fn or_exit<T>(what: &str, f: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(_) => {
            tracing::error!("the {what} panicked; stopping the process");
            std::process::exit(PANIC_EXIT);
        }
    }
}
