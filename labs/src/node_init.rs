//! Building a node's world, run inside a short-lived helper process (`tartanlab __node-init`)
//! that the deployer pins afterwards:
//!
//! 1. join the node's network namespace and apply its `sysctls` (they are per namespace);
//! 2. unshare a mount and a UTS namespace; make every mount private;
//! 3. mount an overlay of the machine's `/` whose writable layer is a tmpfs, so whatever the
//!    node writes — config, logs, `sed -i` in an `exec` line — never reaches the host;
//! 4. `pivot_root` into it, then mount a fresh `/proc`, a `/sys` that shows the node's own
//!    interfaces, the host's `/dev`, the host's cgroup hierarchies at the node's own branch of
//!    each (see [`crate::cgroups`]), private tmpfs on `/run`, `/tmp`, `/dev/shm`,
//!    the host's other file systems where they were, `/etc/hosts` and `/etc/hostname` of the
//!    lab, the profile's state directories, and the node's `binds`;
//! 5. detach the old root (which also drops every stray reference to other namespaces) and set
//!    the hostname.
//!
//! It then prints `ready` and waits for its stdin to close, which the deployer does once it has
//! pinned the new mount and UTS namespaces on files.

use std::fs;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use nix::unistd::{Gid, Uid, User, chown, pivot_root, sethostname};
use serde::{Deserialize, Serialize};

use crate::procfs::MountEntry;
use crate::profile::PrivateDir;
use crate::topology::Bind;

/// What the helper needs to know.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeInitSpec {
    pub node: String,
    pub netns: PathBuf,
    /// An empty host directory (under `/run/tartanlab`) where the private tmpfs is mounted.
    pub scratch: PathBuf,
    pub hostname: String,
    pub sysctls: Vec<Sysctl>,
    pub binds: Vec<Bind>,
    pub dirs: Vec<PrivateDir>,
    pub hosts: String,
    /// The project's binaries, first on every node's PATH: bound read-only at the same path,
    /// so they are there even when they live under a path the node has its own of (`/tmp`).
    pub bin_dir: Option<PathBuf>,
    /// The node's branch in each cgroup hierarchy (`tartanlab.<lab>.<node>`), shown as the
    /// node's `/sys/fs/cgroup`; without one the node sees no cgroups.
    #[serde(default)]
    pub cgroup_branch: Option<String>,
}

/// One sysctl of the node's network namespace. A default the kernel lacks (IPv6 disabled at
/// boot, say) is skipped; one the topology asked for must apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sysctl {
    pub key: String,
    pub value: String,
    pub required: bool,
}

const OLD_ROOT: &str = "/.tartanlab-oldroot";

type Step<T = ()> = Result<T, String>;

fn sys(what: impl std::fmt::Display) -> impl FnOnce(nix::Error) -> String {
    move |e| format!("{what}: {e}")
}

fn io(what: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> String {
    move |e| format!("{what}: {e}")
}

/// Runs the whole setup, then the ready/wait handshake. Must be called single-threaded.
pub fn run(spec: &NodeInitSpec) -> Step {
    let netns =
        fs::File::open(&spec.netns).map_err(io(format!("opening {}", spec.netns.display())))?;
    setns(&netns, CloneFlags::CLONE_NEWNET).map_err(sys("joining the network namespace"))?;
    apply_sysctls(&spec.sysctls)?;
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS)
        .map_err(sys("unsharing mount and UTS namespaces"))?;
    let flags = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
    mount(None::<&str>, "/", None::<&str>, flags, None::<&str>)
        .map_err(sys("making mounts private"))?;
    let root = build_overlay(&spec.scratch)?;
    fs::create_dir_all(root.join(OLD_ROOT.trim_start_matches('/')))
        .map_err(io("creating the old-root mount point"))?;
    pivot_root(&root, &root.join(OLD_ROOT.trim_start_matches('/')))
        .map_err(sys("pivot_root into the node's root"))?;
    nix::unistd::chdir("/").map_err(sys("chdir /"))?;
    // The new root has no /proc yet; the old one still shows this namespace's mounts.
    let host_mounts = crate::procfs::mounts_in(&Path::new(OLD_ROOT).join("proc/self/mountinfo"));
    mount_system(&host_mounts, spec.cgroup_branch.as_deref())?;
    let carried = carry_host_mounts(&host_mounts, &spec.scratch)?;
    write_identity(spec)?;
    for dir in &spec.dirs {
        private_dir(dir)?;
    }
    if let Some(dir) = &spec.bin_dir {
        bind_mount(&Bind { src: dir.clone(), dst: dir.clone(), read_only: true }, &carried)?;
    }
    for bind in &spec.binds {
        bind_mount(bind, &carried)?;
    }
    umount2(OLD_ROOT, MntFlags::MNT_DETACH).map_err(sys("detaching the old root"))?;
    let _ = fs::remove_dir(OLD_ROOT);
    sethostname(&spec.hostname).map_err(sys("setting the hostname"))?;

    let mut out = std::io::stdout();
    out.write_all(b"ready\n").and_then(|_| out.flush()).map_err(io("signalling ready"))?;
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    Ok(())
}

fn apply_sysctls(sysctls: &[Sysctl]) -> Step {
    for Sysctl { key, value, required } in sysctls {
        // `net.ipv4.conf.eth1.rp_filter`; keys whose interface names contain dots use `/`.
        let rel = if key.contains('/') { key.clone() } else { key.replace('.', "/") };
        let path = Path::new("/proc/sys").join(rel);
        if !required && !path.exists() {
            continue;
        }
        fs::write(&path, value).map_err(io(format!("sysctl {key}={value}")))?;
    }
    Ok(())
}

/// Mounts the private tmpfs and the overlay; returns the overlay's mount point.
fn build_overlay(scratch: &Path) -> Step<PathBuf> {
    mount(Some("tmpfs"), scratch, Some("tmpfs"), MsFlags::empty(), Some("mode=0755"))
        .map_err(sys(format!("mounting a tmpfs on {}", scratch.display())))?;
    for d in ["upper", "work", "root"] {
        fs::create_dir(scratch.join(d)).map_err(io("creating overlay directories"))?;
    }
    let root = scratch.join("root");
    let opts = format!(
        "lowerdir=/,upperdir={},workdir={}",
        scratch.join("upper").display(),
        scratch.join("work").display()
    );
    mount(Some("overlay"), &root, Some("overlay"), MsFlags::empty(), Some(opts.as_str())).map_err(
        |e| format!("mounting the node's overlay root ({opts}): {e}; the kernel needs overlayfs"),
    )?;
    Ok(root)
}

fn mnt(
    src: Option<&str>,
    dst: &str,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Step {
    mount(src, dst, fstype, flags, data).map_err(|e| format!("mounting {dst}: {e}"))
}

/// `/proc`, `/sys` (with the node's cgroups), `/dev` (with a private `/dev/shm`), `/run`, `/tmp`.
fn mount_system(host_mounts: &[MountEntry], cgroup_branch: Option<&str>) -> Step {
    let none = MsFlags::empty();
    let rbind = MsFlags::MS_BIND | MsFlags::MS_REC;
    mnt(Some("proc"), "/proc", Some("proc"), none, None)?;
    protect_proc()?;
    mnt(Some("sysfs"), "/sys", Some("sysfs"), none, None)?;
    if let Some(branch) = cgroup_branch {
        // Best effort: only runtimes inside the node (podman) need cgroups, and a machine
        // whose cgroups cannot be branched must still run every other lab.
        if let Err(e) = mount_cgroups(host_mounts, branch) {
            eprintln!("warning: the node gets no cgroups: {e}");
        }
    }
    mnt(Some(format!("{OLD_ROOT}/dev").as_str()), "/dev", None, rbind, None)?;
    if Path::new("/dev/shm").is_dir() {
        mnt(Some("tmpfs"), "/dev/shm", Some("tmpfs"), none, Some("mode=1777"))?;
    }
    mnt(Some("tmpfs"), "/run", Some("tmpfs"), none, Some("mode=0755"))?;
    mnt(Some("tmpfs"), "/tmp", Some("tmpfs"), none, Some("mode=1777"))?;
    Ok(())
}

/// The host's `/sys/fs/cgroup`, each hierarchy bound at the node's branch of it (created here):
/// runc and podman in the node need cgroups, and what they create there goes with the lab.
/// A cgroup2-only host has the hierarchy at `/sys/fs/cgroup` itself; a v1 or hybrid one has a
/// tmpfs there with a hierarchy per directory (and symlinks such as `cpu,cpuacct`).
fn mount_cgroups(host_mounts: &[MountEntry], branch: &str) -> Step {
    let old_cgroup = format!("{OLD_ROOT}/sys/fs/cgroup");
    let target = Path::new("/sys/fs/cgroup");
    let Some(top) = host_mounts.iter().rfind(|m| m.mount_point == old_cgroup) else {
        return Ok(());
    };
    if !target.is_dir() {
        return Ok(());
    }
    let bind =
        |host: &Path, dst: &Path| -> Step {
            let own = crate::cgroups::create_branch(host, branch)?;
            mount(Some(&own), dst, None::<&str>, MsFlags::MS_BIND, None::<&str>)
                .map_err(sys(format!("binding cgroup {} to {}", own.display(), dst.display())))
        };
    if crate::cgroups::is_hierarchy(top) {
        return bind(Path::new(&old_cgroup), target);
    }
    mnt(Some("tmpfs"), "/sys/fs/cgroup", Some("tmpfs"), MsFlags::empty(), Some("mode=0755"))?;
    let prefix = format!("{old_cgroup}/");
    for m in host_mounts.iter().filter(|m| crate::cgroups::is_hierarchy(m)) {
        let Some(name) = m.mount_point.strip_prefix(&prefix) else { continue };
        if name.contains('/') {
            continue;
        }
        let dst = target.join(name);
        fs::create_dir_all(&dst).map_err(io(format!("creating {}", dst.display())))?;
        bind(Path::new(&m.mount_point), &dst)?;
    }
    for entry in fs::read_dir(&old_cgroup).map_err(io(format!("reading {old_cgroup}")))? {
        let entry = entry.map_err(io(format!("reading {old_cgroup}")))?;
        if entry.file_type().is_ok_and(|t| t.is_symlink()) {
            let link = fs::read_link(entry.path()).map_err(io("reading a cgroup symlink"))?;
            std::os::unix::fs::symlink(&link, target.join(entry.file_name()))
                .map_err(io("copying a cgroup symlink"))?;
        }
    }
    Ok(())
}

/// Keeps kernel-wide knobs out of a node's reach: `/proc/sys` read-only, except the node's own
/// `/proc/sys/net`; `/proc/sysrq-trigger` read-only.
pub(crate) fn protect_proc() -> Step {
    read_only_bind("/proc/sys")?;
    mnt(Some("/proc/sys/net"), "/proc/sys/net", None, MsFlags::MS_BIND, None)?;
    mnt(None, "/proc/sys/net", None, MsFlags::MS_BIND | MsFlags::MS_REMOUNT, None)?;
    if Path::new("/proc/sysrq-trigger").exists() {
        read_only_bind("/proc/sysrq-trigger")?;
    }
    Ok(())
}

/// Bind-mounts `path` on itself, read-only.
fn read_only_bind(path: &str) -> Step {
    mnt(Some(path), path, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
    mnt(None, path, None, MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY, None)
}

/// Makes `root` and every mount below it read-only, keeping each one's nosuid/nodev/noexec.
fn remount_tree_read_only(root: &Path) -> Step {
    for m in crate::procfs::mounts() {
        let p = Path::new(&m.mount_point);
        if !p.starts_with(root) {
            continue;
        }
        let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        for (opt, flag) in [
            ("nosuid", MsFlags::MS_NOSUID),
            ("nodev", MsFlags::MS_NODEV),
            ("noexec", MsFlags::MS_NOEXEC),
        ] {
            if m.options.split(',').any(|o| o == opt) {
                flags |= flag;
            }
        }
        mount(None::<&str>, p, None::<&str>, flags, None::<&str>)
            .map_err(sys(format!("making {} read-only", p.display())))?;
    }
    Ok(())
}

/// Paths never carried over from the host: the node has its own.
fn is_private_path(p: &Path) -> bool {
    ["/proc", "/sys", "/dev", "/run", "/tmp", "/var/run"].iter().any(|d| p.starts_with(d))
}

/// Bind-mounts the host's other file systems (a separate `/home`, `/work`...) at their places,
/// read-only, so binaries and files outside the root file system stay reachable but only an
/// explicit bind can write to the host. Returns their paths.
fn carry_host_mounts(host_mounts: &[MountEntry], scratch: &Path) -> Step<Vec<PathBuf>> {
    let mut carried: Vec<PathBuf> = Vec::new();
    for entry in host_mounts {
        let Some(host_path) = entry.mount_point.strip_prefix(OLD_ROOT) else { continue };
        let host_path = Path::new(host_path);
        if host_path == Path::new("") || host_path == Path::new("/") || entry.fstype == "nsfs" {
            continue;
        }
        if is_private_path(host_path) || host_path.starts_with(scratch) {
            continue;
        }
        if carried.iter().any(|c| host_path.starts_with(c)) {
            continue; // the recursive bind of an ancestor already brought it
        }
        let src = Path::new(&entry.mount_point);
        ensure_mount_point(src, host_path)?;
        mount(Some(src), host_path, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
            .map_err(sys(format!("carrying host mount {}", host_path.display())))?;
        carried.push(host_path.to_path_buf());
    }
    for path in &carried {
        remount_tree_read_only(path)?;
    }
    Ok(carried)
}

/// Creates `dst` (inside the node's root) as a directory or an empty file, like `src`.
fn ensure_mount_point(src: &Path, dst: &Path) -> Step {
    if dst.exists() {
        return Ok(());
    }
    if src.is_dir() {
        fs::create_dir_all(dst).map_err(io(format!("creating mount point {}", dst.display())))
    } else {
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
        }
        fs::File::create(dst)
            .map(drop)
            .map_err(io(format!("creating mount point {}", dst.display())))
    }
}

/// The lab's `/etc/hosts` and the node's `/etc/hostname`, written in the node's private `/run`
/// and bind-mounted over the originals (as Docker does), so a host file is never written.
fn write_identity(spec: &NodeInitSpec) -> Step {
    let dir = Path::new("/run/.tartanlab");
    fs::create_dir_all(dir).map_err(io("creating /run/.tartanlab"))?;
    for (name, content) in
        [("hosts", spec.hosts.clone()), ("hostname", format!("{}\n", spec.hostname))]
    {
        let src = dir.join(name);
        fs::write(&src, content).map_err(io(format!("writing {}", src.display())))?;
        let dst = Path::new("/etc").join(name);
        ensure_mount_point(&src, &dst)?;
        mount(Some(&src), &dst, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(sys(format!("mounting {}", dst.display())))?;
    }
    Ok(())
}

fn private_dir(dir: &PrivateDir) -> Step {
    fs::create_dir_all(&dir.path).map_err(io(format!("creating {}", dir.path.display())))?;
    if let Some(user) = &dir.owner {
        let found = User::from_name(user).map_err(sys(format!("looking up user {user}")))?;
        let Some(u) = found else {
            return Err(format!("user `{user}` does not exist; is its package installed?"));
        };
        chown(&dir.path, Some(Uid::from_raw(u.uid.as_raw())), Some(Gid::from_raw(u.gid.as_raw())))
            .map_err(sys(format!("chown {}", dir.path.display())))?;
    }
    Ok(())
}

/// Mounts one bind at its container path. A missing mount point is created inside the node's
/// own layers — never inside a carried host file system, where it would change the host.
fn bind_mount(bind: &Bind, carried: &[PathBuf]) -> Step {
    let src = Path::new(OLD_ROOT).join(bind.src.strip_prefix("/").unwrap_or(&bind.src));
    let dst = &bind.dst;
    if dst.components().any(|c| c == Component::ParentDir) {
        return Err(format!("bind destination {} contains `..`", dst.display()));
    }
    if !dst.exists() {
        if let Some(host) = carried.iter().find(|c| dst.starts_with(c)) {
            return Err(format!(
                "bind destination {} does not exist and lies in the host file system {}; create it there first",
                dst.display(),
                host.display()
            ));
        }
    }
    ensure_mount_point(&src, dst)?;
    mount(Some(&src), dst, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .map_err(sys(format!("binding {} to {}", bind.src.display(), dst.display())))?;
    if bind.read_only {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        mount(None::<&str>, dst, None::<&str>, flags, None::<&str>)
            .map_err(sys(format!("making {} read-only", dst.display())))?;
    }
    Ok(())
}
