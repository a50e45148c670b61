//! A panic ends a daemon's process instead of killing one task or thread in silence. Each test
//! runs itself again as a child (`TARTAN_FATAL_CHILD` set), where the panic happens, and checks
//! the child's exit status.

use std::process::Command;
use std::time::Duration;

use tartan_bgp::fatal::{PANIC_EXIT, exit_on_panic, or_exit};

const CHILD: &str = "TARTAN_FATAL_CHILD";

/// Runs this test binary's test `name` as a child and returns its exit code.
fn child_exit(name: &str) -> Option<i32> {
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new(exe)
        .args(["--exact", name, "--nocapture", "--test-threads", "1"])
        .env(CHILD, "1")
        .output()
        .expect("running the child");
    out.status.code()
}

#[test]
fn a_panic_in_a_tokio_task_ends_the_process() {
    if std::env::var_os(CHILD).is_some() {
        exit_on_panic();
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("rt");
        rt.block_on(async {
            tokio::spawn(async { panic!("a task fails") });
            tokio::time::sleep(Duration::from_secs(10)).await;
        });
        // Reached only if the panic did not end the process: the parent sees 0.
        std::process::exit(0);
    }
    assert_eq!(child_exit("a_panic_in_a_tokio_task_ends_the_process"), Some(PANIC_EXIT));
}

#[test]
fn a_panic_on_a_vital_thread_ends_the_process_without_the_hook() {
    if std::env::var_os(CHILD).is_some() {
        let t = std::thread::spawn(|| or_exit("test thread", || panic!("the RIB fails")));
        let _ = t.join();
        std::thread::sleep(Duration::from_secs(10));
        std::process::exit(0);
    }
    let code = child_exit("a_panic_on_a_vital_thread_ends_the_process_without_the_hook");
    assert_eq!(code, Some(PANIC_EXIT));
}
