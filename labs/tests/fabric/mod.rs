//! What the fabric lab tests ask of a lab of Tartan hosts: the containers, sessions and kernel
//! routes as the API and the hosts report them, and pings between containers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tartan_labs::harness::TestLab;

pub const CONVERGE: Duration = Duration::from_secs(60);

/// The node `tartanctl` runs in: the lab's `apiserver` if it has one, else `host1` (whose
/// TARTAN_API names every API replica, as in quickstart-etcd).
pub fn ctl_node(lab: &TestLab) -> &'static str {
    if lab.topology().nodes.iter().any(|n| n.name == "apiserver") { "apiserver" } else { "host1" }
}

pub fn json(lab: &TestLab, node: &str, cmd: &str) -> Result<Value, String> {
    let out = lab.sh(node, cmd);
    if !out.success() {
        return Err(format!("`{cmd}` in {node}: {} {}", out.summary(), out.stderr));
    }
    serde_json::from_str(&out.stdout)
        .map_err(|e| format!("`{cmd}` printed no JSON ({e}): {}", out.stdout))
}

/// A container as the API records it.
#[derive(Debug, Clone)]
pub struct Workload {
    pub name: String,
    pub host: String,
    pub v4: Option<String>,
    pub v6: Option<String>,
}

pub fn workloads(lab: &TestLab) -> Result<BTreeMap<String, Workload>, String> {
    let v = json(lab, ctl_node(lab), "tartanctl get workloadendpoints -o json")?;
    let mut out = BTreeMap::new();
    for item in v["items"].as_array().into_iter().flatten() {
        let spec = &item["spec"];
        let nets: Vec<String> = spec["ipNetworks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str().and_then(|s| s.split('/').next()).map(String::from))
            .collect();
        let name = spec["containerID"].as_str().unwrap_or_default().to_string();
        out.insert(
            name.clone(),
            Workload {
                name,
                host: spec["node"].as_str().unwrap_or_default().to_string(),
                v4: nets.iter().find(|a| !a.contains(':')).cloned(),
                v6: nets.iter().find(|a| a.contains(':')).cloned(),
            },
        );
    }
    Ok(out)
}

/// Our routes (proto 84) in one host's kernel, both families.
pub fn routes(lab: &TestLab, host: &str) -> Result<Vec<Value>, String> {
    let mut all = Vec::new();
    for cmd in ["ip -j route show proto 84", "ip -j -6 route show proto 84"] {
        all.extend(json(lab, host, cmd)?.as_array().cloned().unwrap_or_default());
    }
    Ok(all)
}

pub fn has_route(routes: &[Value], dst: &str, check: impl Fn(&Value) -> bool) -> bool {
    routes.iter().any(|r| {
        let d = r["dst"].as_str().unwrap_or_default();
        (d == dst || d.strip_suffix("/32") == Some(dst) || d.strip_suffix("/128") == Some(dst))
            && check(r)
    })
}

/// Each host's confirmed blocks and its BGP addresses.
pub fn blocks(lab: &TestLab) -> Result<BTreeMap<String, Vec<String>>, String> {
    let v = json(lab, ctl_node(lab), "tartanctl get blockaffinities -o json")?;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for a in v["items"].as_array().into_iter().flatten() {
        if a["spec"]["state"] == "confirmed" {
            let node = a["spec"]["node"].as_str().unwrap_or_default().to_string();
            out.entry(node)
                .or_default()
                .push(a["spec"]["cidr"].as_str().unwrap_or_default().to_string());
        }
    }
    Ok(out)
}

pub fn node_addresses(lab: &TestLab) -> Result<BTreeMap<String, (String, String)>, String> {
    let v = json(lab, ctl_node(lab), "tartanctl get nodes -o json")?;
    let mut out = BTreeMap::new();
    for n in v["items"].as_array().into_iter().flatten() {
        let bgp = &n["spec"]["bgp"];
        let strip = |k: &str| {
            bgp[k].as_str().and_then(|s| s.split('/').next()).unwrap_or_default().to_string()
        };
        out.insert(
            n["metadata"]["name"].as_str().unwrap_or_default().to_string(),
            (strip("ipv4Address"), strip("ipv6Address")),
        );
    }
    Ok(out)
}

pub fn sessions_established(lab: &TestLab, hosts: &[&str], per_host: usize) -> Result<(), String> {
    let v = json(lab, ctl_node(lab), "tartanctl get nodestatus -o json")?;
    for host in hosts {
        let status = v["items"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["metadata"]["name"] == *host))
            .ok_or(format!("{host} has not reported"))?;
        let peers = status["spec"]["peers"].as_array().cloned().unwrap_or_default();
        let up = peers.iter().filter(|p| p["state"] == "Established").count();
        if up != per_host || peers.len() != per_host {
            return Err(format!(
                "{host}: {up} of {} sessions Established, want {per_host}: {peers:?}",
                peers.len()
            ));
        }
    }
    Ok(())
}

pub fn ping(lab: &TestLab, from: &Workload, to: &str) -> Result<(), String> {
    let out = lab.exec(
        &from.host,
        &["tartan", "sandbox", "exec", &from.name, "--", "ping", "-c1", "-W2", to],
    );
    if out.success() { Ok(()) } else { Err(format!("{} -> {to}: {}", from.name, out.stdout)) }
}

/// The routes every host must have: /32s to its veths, its blocks as blackholes, every other
/// host's blocks via that host (naming a nexthop object).
pub fn fabric_routes(lab: &TestLab, hosts: &[&str]) -> Result<(), String> {
    let wls = workloads(lab)?;
    let blocks = blocks(lab)?;
    let addrs = node_addresses(lab)?;
    for host in hosts {
        let r = routes(lab, host)?;
        for w in wls.values().filter(|w| w.host == *host) {
            for a in [&w.v4, &w.v6].into_iter().flatten() {
                if !has_route(&r, a, |r| r["dev"].as_str().is_some_and(|d| d.starts_with("tart"))) {
                    return Err(format!("{host}: no route to {} ({a}) on its veth: {r:?}", w.name));
                }
            }
        }
        for (owner, cidrs) in &blocks {
            for cidr in cidrs {
                let ok = if owner == host {
                    has_route(&r, cidr, |r| r["type"] == "blackhole")
                } else {
                    let (v4, v6) = addrs.get(owner).cloned().unwrap_or_default();
                    // Through a nexthop object shared with the owner's other blocks.
                    has_route(&r, cidr, |r| {
                        (r["gateway"] == v4.as_str() || r["gateway"] == v6.as_str())
                            && r["nhid"].is_u64()
                    })
                };
                if !ok && hosts.contains(&owner.as_str()) {
                    return Err(format!("{host}: no right route to {owner}'s block {cidr}: {r:?}"));
                }
            }
        }
    }
    Ok(())
}

/// Moves 1 MB over TCP from container `from` to `to` at `addr` (IPv4 or IPv6) and checks that
/// every byte arrived.
pub fn tcp_transfer(lab: &TestLab, from: &Workload, to: &Workload, addr: &str, port: u16) {
    let family = if addr.contains(':') { "TCP6" } else { "TCP4" };
    let target = if addr.contains(':') { format!("[{addr}]") } else { addr.to_string() };
    lab.sh_ok(
        &to.host,
        &format!(
            "tartan sandbox exec {} -- timeout 20 socat -u {family}-LISTEN:{port},reuseaddr \
             OPEN:/tmp/received-{port},creat,trunc >/dev/null 2>&1 &",
            to.name
        ),
    );
    lab.wait_for(&format!("a TCP transfer {} -> {addr}", from.name), Duration::from_secs(15), || {
        let out = lab.sh(
            &from.host,
            &format!("head -c 1000000 /dev/zero | tartan sandbox exec {} -- socat -u - {family}:{target}:{port}", from.name),
        );
        if out.success() { Ok(()) } else { Err(out.stderr) }
    });
    lab.wait_for("all the bytes arrived", Duration::from_secs(10), || {
        let size =
            lab.sh(&to.host, &format!("stat -c %s /tmp/received-{port}")).stdout.trim().to_string();
        if size == "1000000" { Ok(()) } else { Err(format!("{size} bytes")) }
    });
}

/// Kills `host`'s agent with SIGKILL during a 100 pps ping from its `container` to `target`,
/// starts it again with `restart`, waits until `host` has `sessions` sessions again, and
/// returns the ping's summary. The ping runs until it is stopped, a second after the sessions
/// are back, and must still be running then: a ping that ended early would pass without
/// having watched the restart. The two pauses are the scenario, not waits for a state: the
/// agent dies 1.5 s into the ping and stays down for 1 s.
pub fn ping_through_agent_restart(
    lab: &TestLab,
    host: &str,
    container: &str,
    target: &str,
    restart: &str,
    sessions: usize,
) -> String {
    lab.sh_ok(
        host,
        &format!(
            "tartan sandbox exec {container} -- sh -c 'echo $$ >/tmp/ping.pid; exec ping -q -i 0.01 -W 1 {target}' >/tmp/ping.log 2>&1 &"
        ),
    );
    std::thread::sleep(Duration::from_millis(1500));
    lab.sh_ok(host, "pkill -KILL -x tartan");
    std::thread::sleep(Duration::from_millis(1000));
    lab.sh_ok(host, &format!("{restart} >/tmp/agent-again.log 2>&1 &"));
    lab.wait_for(&format!("{host}'s sessions again"), CONVERGE, || {
        sessions_established(lab, &[host], sessions)
    });
    std::thread::sleep(Duration::from_millis(1000));
    let alive = lab.sh(host, "kill -0 \"$(cat /tmp/ping.pid)\"");
    let early = lab.sh(host, "cat /tmp/ping.log").stdout;
    assert!(alive.success(), "the ping ended before the restart was over: {early}");
    lab.sh_ok(host, "kill -INT \"$(cat /tmp/ping.pid)\"");
    lab.wait_for("the ping to finish", Duration::from_secs(30), || {
        let out = lab.sh(host, "cat /tmp/ping.log").stdout;
        if out.contains("packets transmitted") { Ok(out) } else { Err(out) }
    })
}

/// Checks a ping summary: every packet answered, and at least `min` of them sent.
pub fn assert_no_loss(summary: &str, min: u64) {
    let count = |what: &str| -> Option<u64> {
        let line = summary.lines().find(|l| l.contains("packets transmitted"))?;
        let part = line.split(',').find(|p| p.trim_end().ends_with(what))?;
        part.split_whitespace().next()?.parse().ok()
    };
    let (sent, got) = (count("packets transmitted"), count("received"));
    assert!(
        sent.is_some_and(|s| s >= min) && sent == got && summary.contains(" 0% packet loss"),
        "{summary}"
    );
}

/// Watches `node`'s kernel with `ip monitor ARGS` into `/tmp/<name>.log` until
/// [`stop_monitor`], which checks it was still watching.
pub fn start_monitor(lab: &TestLab, node: &str, args: &str, name: &str) {
    lab.sh_ok(
        node,
        &format!(
            "sh -c 'echo $$ >/tmp/{name}.pid; exec ip monitor {args}' >/tmp/{name}.log 2>&1 &"
        ),
    );
}

/// Stops a monitor from [`start_monitor`] and returns what it saw; fails if it had stopped
/// before (it would not have watched the whole window).
pub fn stop_monitor(lab: &TestLab, node: &str, name: &str) -> String {
    let alive = lab.sh(node, &format!("kill -0 \"$(cat /tmp/{name}.pid)\""));
    assert!(alive.success(), "{node}'s ip monitor had stopped: it did not watch the whole window");
    lab.sh_ok(node, &format!("kill \"$(cat /tmp/{name}.pid)\""));
    lab.sh(node, &format!("cat /tmp/{name}.log")).stdout
}

/// Waits until the API has `n` WorkloadEndpoints and returns them.
pub fn wait_workloads(lab: &TestLab, n: usize) -> BTreeMap<String, Workload> {
    lab.wait_for(&format!("{n} containers"), CONVERGE, || {
        let w = workloads(lab)?;
        if w.len() == n { Ok(w) } else { Err(format!("{w:?}")) }
    })
}

/// Whether FRR `router` has `want` IPv4 unicast sessions Established.
pub fn frr_established(lab: &TestLab, router: &str, want: usize) -> Result<(), String> {
    let v = json(lab, router, "vtysh -c 'show bgp ipv4 unicast summary json'")?;
    let peers = v["peers"].as_object().cloned().unwrap_or_default();
    let up = peers.values().filter(|p| p["state"] == "Established").count();
    if up == want { Ok(()) } else { Err(format!("{router}: {up} of {} Established", peers.len())) }
}

/// Waits until each FRR router has its number of sessions Established.
pub fn wait_frr_sessions(lab: &TestLab, routers: &[(&str, usize)]) {
    for (router, want) in routers {
        lab.wait_for(&format!("{router}'s sessions"), CONVERGE, || {
            frr_established(lab, router, *want)
        });
    }
}

/// Every container pings every address (each family it has) of every container on another
/// host.
pub fn ping_matrix(lab: &TestLab, wls: &BTreeMap<String, Workload>) {
    for a in wls.values() {
        for b in wls.values().filter(|b| b.host != a.host) {
            for addr in [&b.v4, &b.v6].into_iter().flatten() {
                lab.wait_for(
                    &format!("{} pings {} at {addr}", a.name, b.name),
                    Duration::from_secs(10),
                    || ping(lab, a, addr),
                );
            }
        }
    }
}

/// `node`'s kernel route to `dst`, as `ip -j route` shows it.
pub fn kernel_route(lab: &TestLab, node: &str, dst: &str) -> Result<Value, String> {
    let v = json(lab, node, &format!("ip -j route show {dst}"))?;
    v.as_array().and_then(|a| a.first().cloned()).ok_or(format!("{node}: no route to {dst}"))
}
