//! Lab tests of destroy's promise: it removes everything a lab made — after a deploy that
//! crashed at any step, after the supervisor was killed, after the topology file changed or
//! vanished — and deploy itself fails early, loudly and without leftovers. Driven through the
//! `tartanlab` binary, as a user would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tartan_labs::harness::{Footprint, lab_tests_enabled};
use tartan_labs::procfs::ProcRef;
use tartan_labs::state::LabState;

const TARTANLAB: &str = env!("CARGO_BIN_EXE_tartanlab");
const ROUTERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../containerlab/routers.clab.yml");
const HOSTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/topologies/hosts.clab.yml");
const BROKEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/topologies/broken-bird.clab.yml");
const INVALID: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/topologies/invalid.clab.yml");

fn lab_dir_base() -> PathBuf {
    std::env::temp_dir().join("tartanlab-tests")
}

/// Runs `tartanlab` with the test lab-directory base.
fn tartanlab(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(TARTANLAB);
    cmd.args(args).env("CLAB_LABDIR_BASE", lab_dir_base());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap_or_else(|e| panic!("running tartanlab {args:?}: {e}"))
}

fn ok(out: &Output) -> String {
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "tartanlab failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    stdout.into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn unique(tag: &str) -> String {
    format!("{tag}-{}", std::process::id())
}

/// Processes orphaned by a killed `tartanlab` become this test's children (it is a child
/// subreaper); collect them so the process table is as it was.
fn adopt_orphans() {
    nix::sys::prctl::set_child_subreaper(true).expect("becoming a child subreaper");
}

fn destroyed_completely(footprint: &Footprint) {
    footprint.reap();
    footprint.assert_gone();
}

fn record(name: &str) -> LabState {
    LabState::load(name)
        .expect("readable state")
        .unwrap_or_else(|| panic!("no record of lab {name}"))
}

#[test]
fn destroy_cleans_up_after_a_deploy_that_crashed_at_any_step() {
    if !lab_tests_enabled() {
        return;
    }
    adopt_orphans();
    for step in ["netns", "links", "nodes", "processes"] {
        let name = unique(&format!("crash-{step}"));
        let out = tartanlab(
            &["deploy", "-t", ROUTERS, "--name", &name],
            &[("TARTANLAB_CRASH_AFTER", step)],
        );
        assert!(!out.status.success(), "the crash hook did not fire at {step}");
        let state = record(&name);
        let footprint = Footprint::of(&state);
        assert_eq!(
            footprint.net_inodes.len(),
            4,
            "after {step}: three nodes and the management namespace exist"
        );
        if step == "processes" {
            assert!(
                footprint.processes.iter().filter(|p| p.alive()).count() >= 5,
                "daemons are running: {:?}",
                footprint.processes
            );
        }
        ok(&tartanlab(&["destroy", "-t", ROUTERS, "--name", &name], &[]));
        destroyed_completely(&footprint);
    }
}

#[test]
fn destroy_kills_daemons_whose_supervisor_was_killed() {
    if !lab_tests_enabled() {
        return;
    }
    adopt_orphans();
    let name = unique("nosup");
    ok(&tartanlab(&["deploy", "-t", ROUTERS, "--name", &name], &[]));
    let state = record(&name);
    let footprint = Footprint::of(&state);
    let supervisor: ProcRef = state.supervisor.expect("a supervisor");
    assert!(supervisor.signal(nix::sys::signal::Signal::SIGKILL, false));
    let inspect = ok(&tartanlab(&["inspect", "--lab", &name], &[]));
    assert!(inspect.contains(&format!("clab-{name}-frr")), "{inspect}");
    ok(&tartanlab(&["destroy", "--lab", &name], &[]));
    destroyed_completely(&footprint);
}

#[test]
fn destroy_works_from_the_record_when_the_topology_file_changed_or_vanished() {
    if !lab_tests_enabled() {
        return;
    }
    adopt_orphans();
    let dir = lab_dir_base().join(unique("edited"));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let file = dir.join("hosts.clab.yml");
    std::fs::copy(HOSTS, &file).expect("copy topology");
    let name = unique("edited");
    let file_arg = file.to_string_lossy().into_owned();

    // Changed: the file now has one node of the two.
    ok(&tartanlab(&["deploy", "-t", &file_arg, "--name", &name], &[]));
    let footprint = Footprint::of(&record(&name));
    std::fs::write(
        &file,
        "name: hosts\ntopology:\n  nodes:\n    a: {kind: linux, image: alpine:3.20}\n",
    )
    .expect("edit");
    ok(&tartanlab(&["destroy", "-t", &file_arg, "--name", &name], &[]));
    destroyed_completely(&footprint);

    // Vanished: destroy by lab name.
    std::fs::copy(HOSTS, &file).expect("copy topology");
    ok(&tartanlab(&["deploy", "-t", &file_arg, "--name", &name], &[]));
    let footprint = Footprint::of(&record(&name));
    std::fs::remove_file(&file).expect("remove topology");
    ok(&tartanlab(&["destroy", "--lab", &name], &[]));
    destroyed_completely(&footprint);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn deploy_refuses_a_running_lab_unless_told_to_reconfigure() {
    if !lab_tests_enabled() {
        return;
    }
    adopt_orphans();
    let name = unique("again");
    ok(&tartanlab(&["deploy", "-t", HOSTS, "--name", &name], &[]));
    let first = Footprint::of(&record(&name));
    let out = tartanlab(&["deploy", "-t", HOSTS, "--name", &name], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("already deployed") && stderr(&out).contains("--reconfigure"),
        "{}",
        stderr(&out)
    );
    ok(&tartanlab(&["deploy", "-t", HOSTS, "--name", &name, "--reconfigure"], &[]));
    first.reap();
    assert!(
        first.processes.iter().all(|p| !p.alive()),
        "the first deployment's processes were replaced"
    );
    let second = Footprint::of(&record(&name));
    ok(&tartanlab(&["destroy", "-t", HOSTS, "--name", &name], &[]));
    destroyed_completely(&second);
}

#[test]
fn a_node_that_cannot_start_fails_the_deploy_by_name_and_rolls_everything_back() {
    if !lab_tests_enabled() {
        return;
    }
    adopt_orphans();
    let name = unique("broken");
    let out = tartanlab(&["deploy", "-t", BROKEN, "--name", &name], &[]);
    if out.status.success() {
        // Never leave the lab behind, even when the deploy wrongly succeeded.
        tartanlab(&["destroy", "--lab", &name], &[]);
        panic!("deploying a lab whose BIRD cannot start succeeded:\n{}", stderr(&out));
    }
    let err = stderr(&out);
    assert!(
        err.contains("node `bad`") && err.contains("bird.log") && err.contains("syntax error"),
        "{err}"
    );
    assert!(
        LabState::load(&name).expect("state").is_none(),
        "the record must be gone after rollback"
    );
    for node in ["ok", "bad"] {
        assert!(!Path::new(&format!("/run/netns/clab-{name}-{node}")).exists());
    }
    let lab_dir = lab_dir_base().join(format!("clab-{name}"));
    assert!(lab_dir.join("bad/bird.log").exists(), "logs are kept for the user");
    let _ = std::fs::remove_dir_all(lab_dir);
}

#[test]
fn an_invalid_file_is_refused_with_every_problem_before_anything_is_created() {
    if !lab_tests_enabled() {
        return;
    }
    let name = unique("invalid");
    let out = tartanlab(&["deploy", "-t", INVALID, "--name", &name], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    for expected in [
        "node `a`: unknown key `imgae` (did you mean `image`?)",
        "node `b`: kind `vr-sros` is not supported",
        "link #1 (a:eth1 <-> c:eth1): endpoint refers to node `c`",
        "interface `a:an-interface-name-too-long` is 26 characters long",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
    assert!(LabState::load(&name).expect("state").is_none());
    assert!(!Path::new(&format!("/run/netns/clab-{name}-a")).exists());
    let validate = tartanlab(&["validate", "-t", INVALID], &[]);
    assert!(
        !validate.status.success() && stderr(&validate).contains("4 problems"),
        "{}",
        stderr(&validate)
    );
}

#[test]
fn commands_that_need_root_say_so_plainly() {
    if !lab_tests_enabled() {
        return;
    }
    for args in [
        vec!["deploy", "-t", HOSTS],
        vec!["destroy", "--all"],
        vec!["exec", "--lab", "x", "a", "--", "true"],
    ] {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", TARTANLAB])
            .args(&args)
            .output()
            .expect("setpriv (util-linux)");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains("needs root") && stderr(&out).contains("sudo"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // Drawing a file needs nothing.
    let graph = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            TARTANLAB,
            "graph",
            "-t",
            ROUTERS,
        ])
        .output()
        .expect("graph");
    assert!(graph.status.success(), "{}", stderr(&graph));
    assert!(String::from_utf8_lossy(&graph.stdout).contains("frr:eth1 ──── bird:eth1"));
}

#[test]
fn namespaces_the_lab_did_not_make_are_never_touched() {
    if !lab_tests_enabled() {
        return;
    }
    let name = unique("foreign");
    let foreign = format!("clab-{name}-a");
    let ip = |args: &[&str]| Command::new("ip").args(args).status().expect("ip").success();
    assert!(ip(&["netns", "add", &foreign]), "creating someone else's namespace");
    let sleeper = Command::new("ip")
        .args(["netns", "exec", &foreign, "sleep", "300"])
        .spawn()
        .expect("a process in it");

    // Deploying over it fails before anything is created, and leaves it alone.
    let out = tartanlab(&["deploy", "-t", HOSTS, "--name", &name], &[]);
    assert!(!out.status.success() && stderr(&out).contains("already exists"), "{}", stderr(&out));
    // Destroying a lab that has no record refuses, and says how to force it.
    let out = tartanlab(&["destroy", "-t", HOSTS, "--name", &name], &[]);
    assert!(!out.status.success() && stderr(&out).contains("--force"), "{}", stderr(&out));
    assert!(Path::new("/run/netns").join(&foreign).exists(), "the foreign namespace must survive");
    let pid = sleeper.id() as i32;
    assert!(ProcRef::of(pid).is_some_and(|p| p.alive()), "the process inside it must survive");

    let mut sleeper = sleeper;
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert!(ip(&["netns", "del", &foreign]));
}

#[test]
fn destroy_all_removes_every_lab_it_knows_and_nothing_else() {
    if !lab_tests_enabled() {
        return;
    }
    adopt_orphans();
    // A private registry, so `--all` sees only this test's labs; a lab in the default registry
    // stands for everyone else's.
    let run = lab_dir_base().join(format!("run-{}", std::process::id()));
    let run_env = run.to_string_lossy().into_owned();
    let private = [("TARTANLAB_RUN_DIR", run_env.as_str())];
    let (a, b, other) = (unique("all-a"), unique("all-b"), unique("all-other"));
    ok(&tartanlab(&["deploy", "-t", HOSTS, "--name", &a], &private));
    ok(&tartanlab(&["deploy", "-t", ROUTERS, "--name", &b], &private));
    ok(&tartanlab(&["deploy", "-t", HOSTS, "--name", &other], &[]));
    let load = |name: &str| {
        LabState::load_file(&run.join("labs").join(name).join("state.json"))
            .expect("state")
            .expect("a record")
    };
    let footprints = [Footprint::of(&load(&a)), Footprint::of(&load(&b))];

    let out = ok(&tartanlab(&["destroy", "--all"], &private));
    assert!(
        out.contains(&format!("destroyed {a}")) && out.contains(&format!("destroyed {b}")),
        "{out}"
    );
    for f in &footprints {
        destroyed_completely(f);
    }
    let survivor = record(&other);
    assert!(
        tartan_labs::netns::exists(&survivor.nodes[0].netns),
        "--all reached beyond its registry"
    );
    assert!(ok(&tartanlab(&["destroy", "--all"], &private)).contains("no labs to destroy"));

    let last = Footprint::of(&survivor);
    ok(&tartanlab(&["destroy", "--lab", &other], &[]));
    destroyed_completely(&last);
    let _ = nix::mount::umount2(&run, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_dir_all(&run);
}

#[test]
fn failed_exec_lines_and_config_lines_warn_or_with_strict_exec_fail() {
    if !lab_tests_enabled() {
        return;
    }
    adopt_orphans();
    const BAD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/topologies/bad-frr.clab.yml");
    let name = unique("badfrr");
    let out = tartanlab(&["deploy", "-t", BAD, "--name", &name], &[]);
    let err = stderr(&out);
    assert!(out.status.success(), "the lab runs despite warnings: {err}");
    assert!(err.contains("node `r`: vtysh-boot failed"), "{err}");
    assert!(
        err.contains("h: `sh -c 'echo no such thing >&2; exit 3'` -> exit 3: no such thing"),
        "{err}"
    );
    assert!(err.contains("2 thing(s) failed"), "{err}");
    let state = record(&name);
    let footprint = Footprint::of(&state);
    let bgpd =
        tartanlab(&["exec", "--lab", &name, "r", "--", "vtysh", "-c", "show running-config"], &[]);
    assert!(ok(&bgpd).contains("router bgp 65001"), "FRR kept the valid part of its config");
    ok(&tartanlab(&["destroy", "--lab", &name], &[]));
    destroyed_completely(&footprint);

    let out = tartanlab(&["deploy", "-t", BAD, "--name", &name, "--strict-exec"], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("(--strict-exec)")
            && err.contains("-> exit 3")
            && err.contains("no such thing"),
        "{err}"
    );
    assert!(LabState::load(&name).expect("state").is_none(), "strict failure rolls back");
    let _ = std::fs::remove_dir_all(lab_dir_base().join(format!("clab-{name}")));
}

#[test]
fn destroying_a_lab_that_is_not_deployed_is_a_no_op() {
    if !lab_tests_enabled() {
        return;
    }
    let name = unique("never");
    let out = ok(&tartanlab(&["destroy", "-t", HOSTS, "--name", &name], &[]));
    assert!(out.contains("not deployed; nothing to destroy"), "{out}");
    let out = ok(&tartanlab(&["destroy", "--lab", &name], &[]));
    assert!(out.contains("not deployed"), "{out}");
}
