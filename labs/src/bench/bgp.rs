//! `tartanlab bench bgp`: bgperf's measurement, on network namespaces.
//!
//! For each target (Tartan, BIRD, FRR, GoBGP) a lab is deployed: the target, N injector peers
//! and a monitor peer, each on its own link. Injectors and monitor are BIRD 2 — the fastest
//! sender and receiver at hand, so that the run measures the target. Every peer is eBGP (the
//! target is AS 64512, injector i AS 65000+i, the monitor AS 65000), with 3 s / 9 s timers, and
//! the target accepts everything and advertises everything to everyone, as in bgperf.
//!
//! Once every session is up, the clock starts and all injectors enable their static routes at
//! once (P unique /32s each, none shared, so there is no best-path contention). The monitor's
//! count of routes imported from the target is read over BIRD's control socket every few
//! milliseconds; the time is taken when it reaches N × P. Then: the target's peak resident
//! memory (VmHWM), its CPU time, and whether any injector or monitor session went down during
//! the run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::birdctl::{BirdCtl, parse_protocol};
use super::{cpu_seconds, io};
use crate::deploy::{DeployOptions, deploy};
use crate::error::{LabError, Result};
use crate::supervisor::Status;

/// The daemons a run can measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Tartan,
    Bird,
    Frr,
    Gobgp,
}

impl Target {
    pub const ALL: [Target; 4] = [Target::Tartan, Target::Bird, Target::Frr, Target::Gobgp];

    pub fn name(self) -> &'static str {
        match self {
            Target::Tartan => "tartan",
            Target::Bird => "bird",
            Target::Frr => "frr",
            Target::Gobgp => "gobgp",
        }
    }

    fn image(self) -> &'static str {
        match self {
            Target::Tartan => "ghcr.io/tartan-fabric/tartan:dev",
            Target::Bird => "pierky/bird:2.0.12",
            Target::Frr => "quay.io/frrouting/frr:8.4.4",
            Target::Gobgp => "jauderho/gobgp:v3.10.0",
        }
    }

    /// The process whose memory and CPU are the target's.
    fn process(self) -> &'static str {
        match self {
            Target::Tartan => "tartan",
            Target::Bird => "bird",
            Target::Frr => "bgpd",
            Target::Gobgp => "gobgpd",
        }
    }
}

impl std::str::FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Target, String> {
        Target::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| format!("`{s}` is not a target: use tartan, bird, frr or gobgp"))
    }
}

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub peers: usize,
    pub prefixes: usize,
    pub targets: Vec<Target>,
    /// Give up on a target after this long.
    pub timeout: Duration,
    /// Where the labs and their configurations go.
    pub work_dir: PathBuf,
    pub tartanlab: PathBuf,
    /// Keep each lab's directory (configurations, daemon logs) after a successful run.
    pub keep_files: bool,
}

/// One target's result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub target: &'static str,
    pub version: String,
    /// Seconds from the injectors' start to the monitor holding every route.
    pub seconds: Option<f64>,
    /// Routes at the monitor at the end.
    pub routes: u64,
    /// Seconds until the monitor saw the first route.
    pub first_route_seconds: Option<f64>,
    /// Seconds until every injector had handed all its routes to its session.
    pub injectors_seconds: Option<f64>,
    pub peak_rss_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
    /// Injector and monitor sessions that went down during the run.
    pub session_drops: usize,
    pub note: Option<String>,
}

impl Outcome {
    /// Nothing measured yet.
    fn new(t: Target, version: String) -> Outcome {
        Outcome {
            target: t.name(),
            version,
            seconds: None,
            routes: 0,
            first_route_seconds: None,
            injectors_seconds: None,
            peak_rss_bytes: None,
            cpu_seconds: None,
            session_drops: 0,
            note: None,
        }
    }

    fn failed(t: Target, why: String) -> Outcome {
        Outcome { note: Some(why), ..Outcome::new(t, "?".into()) }
    }
}

/// Runs every target in turn; progress goes to stderr.
pub fn run(o: &BenchOptions) -> Result<Vec<Outcome>> {
    if o.peers == 0 || o.peers > 250 {
        return Err(LabError::Usage {
            message: format!("--peers {} is out of range (1 to 250)", o.peers),
        });
    }
    if o.prefixes == 0 || o.peers * o.prefixes > 16_000_000 {
        return Err(LabError::Usage {
            message: "--prefixes must be at least 1, and peers × prefixes at most 16 million"
                .into(),
        });
    }
    let mut out = Vec::new();
    for t in &o.targets {
        eprintln!("bench: {} — {} peers × {} prefixes", t.name(), o.peers, o.prefixes);
        // One target failing (not installed, say) does not lose the others' results.
        let outcome = run_one(*t, o).unwrap_or_else(|e| Outcome::failed(*t, e.to_string()));
        match outcome.seconds {
            Some(s) => eprintln!("bench: {} converged in {s:.2} s", t.name()),
            None => eprintln!(
                "bench: {} did not converge: {}",
                t.name(),
                outcome.note.as_deref().unwrap_or("")
            ),
        }
        out.push(outcome);
    }
    Ok(out)
}

fn run_one(t: Target, o: &BenchOptions) -> Result<Outcome> {
    let dir = o.work_dir.join(format!("{}-{}", t.name(), std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(io("creating the bench directory"))?;
    let topo = write_lab(t, o, &dir)?;
    let mut opts = DeployOptions::new(o.tartanlab.clone());
    opts.lab_dir_base = Some(dir.clone());
    opts.strict_exec = true;
    let deployed = deploy(&topo, &opts)?;
    let lab = deployed.state.lab.clone();
    let result = measure(t, o, &dir, &deployed.state);
    // A run that went wrong keeps its files: the logs say why.
    let failed = match &result {
        Ok(r) => r.seconds.is_none() || r.session_drops > 0,
        Err(_) => true,
    };
    let keep = failed || o.keep_files;
    if let Err(e) = crate::destroy::destroy_lab(&lab, keep) {
        eprintln!("bench: destroying {lab}: {e}");
    }
    if let Some(mut c) = deployed.supervisor {
        let _ = c.wait();
    }
    if keep {
        eprintln!("bench: files of the {} run kept in {}", t.name(), dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

fn measure(
    t: Target,
    o: &BenchOptions,
    dir: &Path,
    state: &crate::state::LabState,
) -> Result<Outcome> {
    let mut outcome = Outcome::new(t, version(t, &state.tartanlab));
    let connect = |name: &str| -> Result<BirdCtl> {
        let path = dir.join(format!("{name}.ctl"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match BirdCtl::connect(&path) {
                Ok(c) => return Ok(c),
                Err(e) if Instant::now() > deadline => {
                    return Err(LabError::Usage {
                        message: format!("BIRD control socket {}: {e}", path.display()),
                    });
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    };
    let mut monitor = connect("monitor")?;
    let mut injectors =
        (1..=o.peers).map(|i| connect(&format!("inj{i}"))).collect::<Result<Vec<_>>>()?;
    // Every session up first: the clock measures routes, not connection set-up.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let mut up = parse_protocol(
            &monitor.command("show protocols all target").map_err(io("monitor"))?,
            "target",
        )
        .established;
        for inj in injectors.iter_mut() {
            up &= parse_protocol(
                &inj.command("show protocols all target").map_err(io("injector"))?,
                "target",
            )
            .established;
        }
        if up {
            break;
        }
        if Instant::now() > deadline {
            outcome.note = Some("the sessions did not all come up within 90 s".into());
            return Ok(outcome);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let pid = target_pid(t, state).ok_or_else(|| LabError::Usage {
        message: format!("no {} process in the target", t.process()),
    })?;
    let cpu_before = cpu_seconds(pid);
    // When each injector and monitor session came up: a session that goes down and up again
    // during the run shows a later time.
    let mut since_before = Vec::new();
    for c in injectors.iter_mut().chain(std::iter::once(&mut monitor)) {
        since_before.push(
            parse_protocol(&c.command("show protocols all target").map_err(io("peer"))?, "target")
                .since_unix,
        );
    }
    // Each injector is driven by its own thread: a BIRD busy loading and sending its routes
    // answers its control socket late, and must not hold up the monitor's polling.
    let total = (o.peers * o.prefixes) as u64;
    let start = Instant::now();
    let barrier = std::sync::Barrier::new(injectors.len() + 1);
    let prefixes = o.prefixes as u64;
    let timeout = o.timeout;
    // Set when the run is over (or failed): the injector threads stop polling.
    let stop = AtomicBool::new(false);
    let injectors_done = std::thread::scope(|scope| -> Result<Option<f64>> {
        let handles: Vec<_> = injectors
            .iter_mut()
            .map(|inj| {
                let (barrier, stop) = (&barrier, &stop);
                scope.spawn(move || -> Result<Option<Instant>> {
                    barrier.wait();
                    inj.command("enable injected").map_err(io("enabling an injector's routes"))?;
                    while start.elapsed() < timeout && !stop.load(Ordering::Relaxed) {
                        let p = parse_protocol(
                            &inj.command("show protocols all target").map_err(io("injector"))?,
                            "target",
                        );
                        if p.exported >= prefixes {
                            return Ok(Some(Instant::now()));
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Ok(None)
                })
            })
            .collect();
        barrier.wait();
        let mut next_report = 0.0;
        let polled: Result<()> = loop {
            let reply = match monitor.command("show protocols all target") {
                Ok(r) => r,
                Err(e) => break Err(io("monitor")(e)),
            };
            let m = parse_protocol(&reply, "target");
            let now = start.elapsed().as_secs_f64();
            if now >= next_report {
                eprintln!("bench: {now:6.2} s  {:>9} of {total} routes at the monitor", m.imported);
                next_report = now + if now < 5.0 { 0.1 } else { 1.0 };
            }
            outcome.routes = m.imported;
            if m.imported > 0 && outcome.first_route_seconds.is_none() {
                outcome.first_route_seconds = Some(now);
            }
            if m.imported >= total {
                outcome.seconds = Some(now);
                break Ok(());
            }
            if start.elapsed() > timeout {
                outcome.note =
                    Some(format!("{} of {total} routes after {} s", m.imported, timeout.as_secs()));
                break Ok(());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        stop.store(true, Ordering::Relaxed);
        polled?;
        let mut last: Option<f64> = Some(0.0);
        for h in handles {
            let done = h
                .join()
                .map_err(|_| LabError::Usage { message: "an injector thread panicked".into() })??;
            last = match (last, done) {
                (Some(l), Some(d)) => Some(l.max((d - start).as_secs_f64())),
                _ => None,
            };
        }
        Ok(last)
    })?;
    outcome.injectors_seconds = injectors_done;
    outcome.peak_rss_bytes = peak_rss(pid);
    outcome.cpu_seconds = cpu_seconds(pid).zip(cpu_before).map(|(a, b)| a - b);
    let mut drops = 0;
    for (c, before) in injectors.iter_mut().chain(std::iter::once(&mut monitor)).zip(since_before) {
        let p =
            parse_protocol(&c.command("show protocols all target").map_err(io("peer"))?, "target");
        if !p.established || p.since_unix != before {
            drops += 1;
        }
    }
    outcome.session_drops = drops;
    Ok(outcome)
}

/// The host PID of the target's daemon, from the supervisor's report.
fn target_pid(t: Target, state: &crate::state::LabState) -> Option<i32> {
    let status = Status::load(state)?;
    let node = status.nodes.get("target")?;
    node.processes
        .iter()
        .find(|p| {
            p.exit.is_none() && Path::new(&p.argv[0]).file_name().is_some_and(|n| n == t.process())
        })
        .map(|p| p.proc.pid)
}

/// Peak resident memory (VmHWM) in bytes.
fn peak_rss(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The target's version, from its own binary.
fn version(t: Target, tartanlab: &Path) -> String {
    let (prog, args): (PathBuf, &[&str]) = match t {
        Target::Tartan => (crate::enter::bin_dir(tartanlab).join("tartan"), &["--version"]),
        Target::Bird => ("bird".into(), &["--version"]),
        Target::Frr => ("/usr/lib/frr/bgpd".into(), &["--version"]),
        Target::Gobgp => ("gobgpd".into(), &["--version"]),
    };
    let Ok(out) = std::process::Command::new(&prog).args(args).output() else { return "?".into() };
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    text.lines()
        .find_map(|l| {
            l.split_whitespace()
                .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()) && w.contains('.'))
        })
        .unwrap_or("?")
        .to_string()
}

const TARGET_AS: u32 = 64512;
const MONITOR_AS: u32 = 65000;

fn injector_as(i: usize) -> u32 {
    MONITOR_AS + i as u32
}

/// Writes the topology and every configuration into `dir`; returns the topology file.
fn write_lab(t: Target, o: &BenchOptions, dir: &Path) -> Result<PathBuf> {
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).map_err(io("writing a bench file"))
    };
    let mut y = format!(
        "# Written by `tartanlab bench bgp`: {} as the target, {} injectors, a monitor.\nname: bench-{}\ntopology:\n  defaults:\n    kind: linux\n  nodes:\n",
        t.name(),
        o.peers,
        t.name()
    );
    let bind = format!("{}:/bench", dir.display());
    let cmd = match t {
        Target::Tartan => {
            "tartan bgp -c /bench/tartan.toml --socket /bench/tartan.sock --log-level warn"
                .to_string()
        }
        Target::Bird => "bird -f -c /bench/target.conf -s /bench/target.ctl".to_string(),
        Target::Frr => {
            "/usr/lib/frr/bgpd -Z -f /bench/frr.conf -A 127.0.0.1 --log stdout".to_string()
        }
        Target::Gobgp => {
            "gobgpd -f /bench/gobgpd.toml -t toml -p --pprof-disable --log-level warn".to_string()
        }
    };
    let _ = writeln!(
        y,
        "    target:\n      image: {}\n      binds: [\"{bind}\"]\n      cmd: {cmd}\n      exec:",
        t.image()
    );
    for i in 1..=o.peers {
        let _ = writeln!(y, "        - ip addr add {} dev eth{i}", link(i, 1));
    }
    let _ = writeln!(y, "        - ip addr add 10.200.0.1/24 dev eth{}", o.peers + 1);
    for i in 1..=o.peers {
        let _ = writeln!(
            y,
            "    inj{i}:\n      image: pierky/bird:2.0.12\n      binds: [\"{bind}\"]\n      cmd: bird -f -c /bench/inj{i}.conf -s /bench/inj{i}.ctl\n      exec:\n        - ip addr add {} dev eth1",
            link(i, 2)
        );
    }
    let _ = writeln!(
        y,
        "    monitor:\n      image: pierky/bird:2.0.12\n      binds: [\"{bind}\"]\n      cmd: bird -f -c /bench/monitor.conf -s /bench/monitor.ctl\n      exec:\n        - ip addr add 10.200.0.2/24 dev eth1"
    );
    y.push_str("  links:\n");
    for i in 1..=o.peers {
        let _ = writeln!(y, "    - endpoints: [\"target:eth{i}\", \"inj{i}:eth1\"]");
    }
    let _ = writeln!(y, "    - endpoints: [\"target:eth{}\", \"monitor:eth1\"]", o.peers + 1);
    write("bench.clab.yml", &y)?;

    for i in 1..=o.peers {
        write(&format!("inj{i}.conf"), &injector_conf(i, o))?;
    }
    write(
        "monitor.conf",
        &bird_peer_conf(
            "10.200.0.2",
            "10.200.0.1",
            MONITOR_AS,
            "import all;\n    export none;",
            "",
        ),
    )?;
    let peers: Vec<(String, u32)> = (1..=o.peers)
        .map(|i| (addr(i, 2), injector_as(i)))
        .chain(std::iter::once(("10.200.0.2".to_string(), MONITOR_AS)))
        .collect();
    match t {
        Target::Tartan => write("tartan.toml", &tartan_conf(&peers))?,
        Target::Bird => write("target.conf", &bird_target_conf(&peers))?,
        Target::Frr => write("frr.conf", &frr_conf(&peers))?,
        Target::Gobgp => write("gobgpd.toml", &gobgp_conf(&peers))?,
    }
    Ok(dir.join("bench.clab.yml"))
}

/// `10.100.<i>.<host>` — each injector's link.
fn addr(i: usize, host: u8) -> String {
    format!("10.{}.{}.{host}", 100 + i / 256, i % 256)
}

fn link(i: usize, host: u8) -> String {
    format!("{}/24", addr(i, host))
}

/// An injector: its routes sit in a disabled static protocol until the run starts.
fn injector_conf(i: usize, o: &BenchOptions) -> String {
    let mut routes = String::with_capacity(o.prefixes * 40);
    let first = 0x6400_0000u32 + ((i - 1) * o.prefixes) as u32;
    for k in 0..o.prefixes as u32 {
        let a = std::net::Ipv4Addr::from(first + k);
        let _ = writeln!(routes, "  route {a}/32 blackhole;");
    }
    let statics = format!("protocol static injected {{\n  ipv4;\n  disabled;\n{routes}}}\n");
    bird_peer_conf(
        &addr(i, 2),
        &addr(i, 1),
        injector_as(i),
        "import none;\n    export all;",
        &statics,
    )
}

/// A BIRD peer of the target (injector or monitor).
fn bird_peer_conf(local: &str, neighbor: &str, asn: u32, channel: &str, extra: &str) -> String {
    format!(
        "router id {local};\ntimeformat protocol \"%s\";\nprotocol device {{ scan time 2; }}\n{extra}\nprotocol bgp target {{\n  local {local} as {asn};\n  neighbor {neighbor} as {TARGET_AS};\n  hold time 9;\n  keepalive time 3;\n  connect delay time 1;\n  connect retry time 1;\n  error wait time 1, 5;\n  ipv4 {{\n    {channel}\n  }};\n}}\n"
    )
}

fn bird_target_conf(peers: &[(String, u32)]) -> String {
    let mut s = format!(
        "router id 10.255.255.1;\ntimeformat protocol \"%s\";\nprotocol device {{ scan time 2; }}\ntemplate bgp peer {{\n  local as {TARGET_AS};\n  hold time 9;\n  keepalive time 3;\n  connect delay time 1;\n  connect retry time 1;\n  error wait time 1, 5;\n  ipv4 {{ import all; export all; }};\n}}\n"
    );
    for (n, (a, asn)) in peers.iter().enumerate() {
        let _ = writeln!(s, "protocol bgp p{n} from peer {{ neighbor {a} as {asn}; }}");
    }
    s
}

fn frr_conf(peers: &[(String, u32)]) -> String {
    let mut s = format!(
        "frr defaults datacenter\nhostname target\n!\nrouter bgp {TARGET_AS}\n bgp router-id 10.255.255.1\n no bgp ebgp-requires-policy\n"
    );
    for (a, asn) in peers {
        let _ = writeln!(
            s,
            " neighbor {a} remote-as {asn}\n neighbor {a} timers 3 9\n neighbor {a} timers connect 1"
        );
    }
    s.push_str("exit\n!\n");
    s
}

fn gobgp_conf(peers: &[(String, u32)]) -> String {
    let mut s = format!("[global.config]\n  as = {TARGET_AS}\n  router-id = \"10.255.255.1\"\n");
    for (a, asn) in peers {
        let _ = writeln!(
            s,
            "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{a}\"\n    peer-as = {asn}\n  [neighbors.timers.config]\n    connect-retry = 1\n    hold-time = 9\n    keepalive-interval = 3\n  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"ipv4-unicast\""
        );
    }
    s
}

fn tartan_conf(peers: &[(String, u32)]) -> String {
    let mut s = format!("[global]\nasn = {TARGET_AS}\nrouter-id = \"10.255.255.1\"\n");
    for (a, asn) in peers {
        let _ = writeln!(
            s,
            "[[neighbor]]\naddress = \"{a}\"\nremote-as = {asn}\nhold-time = 9\nkeepalive = 3\nconnect-retry = 1"
        );
    }
    s
}

/// The results as a table, each target beside BIRD's figures from the same run.
pub fn table(o: &BenchOptions, results: &[Outcome]) -> String {
    let bird = results.iter().find(|r| r.target == "bird");
    let total = (o.peers * o.prefixes) as f64;
    let mut rows = vec![vec![
        "TARGET".to_string(),
        "VERSION".into(),
        "CONVERGED".into(),
        "ROUTES/S".into(),
        "PEAK RSS".into(),
        "B/ROUTE".into(),
        "CPU".into(),
        "TIME VS BIRD".into(),
        "MEMORY VS BIRD".into(),
        "DROPS".into(),
        "NOTE".into(),
    ]];
    for r in results {
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
            _ => "-".into(),
        };
        let rss = r.peak_rss_bytes.map(|b| b as f64);
        rows.push(vec![
            r.target.to_string(),
            r.version.clone(),
            r.seconds.map_or("did not finish".into(), |s| format!("{s:.2} s")),
            r.seconds.map_or("-".into(), |s| format!("{:.0}k", total / s / 1000.0)),
            rss.map_or("-".into(), |b| format!("{:.0} MB", b / 1e6)),
            rss.map_or("-".into(), |b| format!("{:.0}", b / total)),
            r.cpu_seconds.map_or("-".into(), |c| format!("{c:.2} s")),
            ratio(r.seconds, bird.and_then(|b| b.seconds)),
            ratio(rss, bird.and_then(|b| b.peak_rss_bytes.map(|x| x as f64))),
            r.session_drops.to_string(),
            r.note.clone().unwrap_or_else(|| match (r.first_route_seconds, r.injectors_seconds) {
                (Some(f), Some(i)) => format!("first route {f:.2} s, injectors done {i:.2} s"),
                _ => String::new(),
            }),
        ]);
    }
    super::render(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> BenchOptions {
        BenchOptions {
            peers: 3,
            prefixes: 5,
            targets: vec![Target::Tartan],
            timeout: Duration::from_secs(1),
            work_dir: PathBuf::from("/tmp"),
            tartanlab: PathBuf::from("/bin/true"),
            keep_files: false,
        }
    }

    #[test]
    fn injectors_get_disjoint_host_routes() {
        let o = opts();
        let a = injector_conf(1, &o);
        let b = injector_conf(2, &o);
        assert!(a.contains("route 100.0.0.0/32 blackhole;") && a.contains("route 100.0.0.4/32"));
        assert!(b.contains("route 100.0.0.5/32 blackhole;") && !b.contains("100.0.0.4/32"));
        assert!(a.contains("disabled;") && a.contains("local 10.100.1.2 as 65001;"));
    }

    #[test]
    fn every_target_config_names_every_peer() {
        let peers = vec![("10.100.1.2".to_string(), 65001), ("10.200.0.2".to_string(), 65000)];
        for text in
            [tartan_conf(&peers), bird_target_conf(&peers), frr_conf(&peers), gobgp_conf(&peers)]
        {
            assert!(
                text.contains("10.100.1.2")
                    && text.contains("10.200.0.2")
                    && text.contains("65001"),
                "{text}"
            );
        }
    }

    #[test]
    fn the_table_compares_with_bird() {
        let r = |target, s, rss| Outcome {
            target,
            version: "1".into(),
            seconds: Some(s),
            routes: 15,
            first_route_seconds: Some(0.1),
            injectors_seconds: Some(0.2),
            peak_rss_bytes: Some(rss),
            cpu_seconds: Some(1.0),
            session_drops: 0,
            note: None,
        };
        let t = table(&opts(), &[r("tartan", 1.0, 50), r("bird", 2.0, 100)]);
        assert!(t.contains("0.50×"), "{t}");
    }
}
