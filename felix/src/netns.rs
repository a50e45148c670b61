//! Network namespaces: named ones made exactly as `ip netns add` makes them (a bind mount on
//! `/run/netns/<name>`), and netlink sockets or closures run inside any namespace by path.
//!
//! A namespace is entered by a short-lived thread of our own, never by the calling thread, so
//! the agent's own threads stay where they are.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

pub const NETNS_DIR: &str = "/run/netns";

/// The path of a named namespace.
pub fn path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

fn sys(what: impl std::fmt::Display) -> impl FnOnce(Errno) -> io::Error {
    move |e| io::Error::new(io::Error::from(e).kind(), format!("{what}: {e}"))
}

/// iproute2's setup of `/run/netns`: a shared mount, so namespaces added later are visible in
/// mount namespaces that share it.
fn ensure_netns_dir() -> io::Result<()> {
    fs::create_dir_all(NETNS_DIR)?;
    let shared = || {
        mount(
            None::<&str>,
            NETNS_DIR,
            None::<&str>,
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => Ok(()),
        Err(Errno::EINVAL) => {
            mount(
                Some(NETNS_DIR),
                NETNS_DIR,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(sys("bind-mounting /run/netns"))?;
            shared().map_err(sys("making /run/netns shared"))
        }
        Err(e) => Err(sys("making /run/netns shared")(e)),
    }
}

/// Creates the named namespace; `AlreadyExists` if the name is taken.
pub fn create(name: &str) -> io::Result<PathBuf> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a namespace name"),
        ));
    }
    ensure_netns_dir()?;
    let target = path(name);
    OpenOptions::new().write(true).create_new(true).mode(0o0).open(&target)?;
    let pinned = std::thread::scope(|s| {
        s.spawn(|| -> nix::Result<()> {
            unshare(CloneFlags::CLONE_NEWNET)?;
            mount(
                Some("/proc/thread-self/ns/net"),
                &target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
        })
        .join()
        .unwrap_or(Err(Errno::EIO))
    });
    if let Err(e) = pinned {
        let _ = fs::remove_file(&target);
        return Err(sys(format!("creating network namespace {name}"))(e));
    }
    Ok(target)
}

/// Removes the named namespace; an absent one is not an error.
pub fn delete(name: &str) -> io::Result<()> {
    let at = path(name);
    match umount2(&at, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(sys(format!("unmounting {}", at.display()))(e)),
    }
    match fs::remove_file(&at) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Runs `f` on a thread that has joined the namespace at `ns`.
pub fn run_in<T: Send>(ns: &Path, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| -> io::Result<T> {
            let file = File::open(ns).map_err(|e| {
                io::Error::new(e.kind(), format!("opening network namespace {}: {e}", ns.display()))
            })?;
            setns(&file, CloneFlags::CLONE_NEWNET)
                .map_err(sys(format!("joining {}", ns.display())))?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("a namespace thread panicked")))
    })
}

/// A netlink socket bound to the namespace at `ns`, driven on the current tokio runtime.
pub fn netlink_in(ns: &Path) -> io::Result<rtnetlink::Handle> {
    let rt = tokio::runtime::Handle::current();
    let (conn, handle) = run_in(ns, || {
        let _guard = rt.enter();
        let (conn, handle, _) = rtnetlink::new_connection()?;
        Ok((conn, handle))
    })?;
    tokio::spawn(conn);
    Ok(handle)
}

/// A netlink socket in our own namespace.
pub fn netlink() -> io::Result<rtnetlink::Handle> {
    let (conn, handle, _) = rtnetlink::new_connection()?;
    tokio::spawn(conn);
    Ok(handle)
}

/// Writes a sysctl under `/proc/sys/net/` (`key` like `ipv4/conf/tap0/proxy_arp`) in the
/// namespace of the calling thread.
pub fn sysctl(key: &str, value: &str) -> io::Result<()> {
    let p = Path::new("/proc/sys/net").join(key);
    fs::write(&p, value)
        .map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", p.display())))
}

/// Whether tests that need root (namespaces, veths) run here. As root they do; without root
/// they fail and say why, unless `TARTAN_SKIP_LAB_TESTS=1` says to skip them on purpose (then
/// this prints so and returns false). A root-only test that passes without running proves
/// nothing.
pub fn root_tests_enabled() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var("TARTAN_SKIP_LAB_TESTS").is_ok_and(|v| v == "1") {
        eprintln!("skipping a root-only test: not root and TARTAN_SKIP_LAB_TESTS=1");
        return false;
    }
    panic!(
        "this test needs root (network namespaces and veths): run `sudo scripts/test.sh`, or set TARTAN_SKIP_LAB_TESTS=1 to skip it"
    );
}

/// A temporary named namespace for tests, deleted on drop (also when the test panics).
#[derive(Debug)]
pub struct TempNetns {
    pub name: String,
    pub path: PathBuf,
}

impl TempNetns {
    pub fn new(tag: &str) -> io::Result<TempNetns> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("tt-{tag}-{}-{n}", std::process::id() % 100_000);
        let path = create(&name)?;
        Ok(TempNetns { name, path })
    }
}

impl Drop for TempNetns {
    fn drop(&mut self) {
        let _ = delete(&self.name);
    }
}
