//! `tartanlab bench routes`: the route programmer writing N /32 routes into a fresh network
//! namespace, then a resync that finds nothing to change, beside `ip -batch` adding the same
//! routes in the same run — with the next hop in each route (the reference), and naming one
//! nexthop object as the programmer does (to show what the object alone is worth).

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use tartan_felix::netns::TempNetns;
use tartan_felix::routes::netlink::NetlinkKernel;
use tartan_felix::routes::{ApplyReport, DEFAULT_PROTOCOL, Programmer};

use crate::error::LabError;

#[derive(Serialize, Debug, Clone)]
pub struct RoutesOutcome {
    pub routes: usize,
    /// `ip -batch` adding the routes (best of the runs).
    pub ip_batch_ms: f64,
    /// `ip -batch` adding one nexthop object and the routes naming it (best of the runs).
    pub ip_batch_nhid_ms: f64,
    /// The programmer writing them into an empty table (best of the runs).
    pub program_ms: f64,
    /// The programmer's resync when nothing changed (best of the runs).
    pub noop_resync_ms: f64,
    pub runs: usize,
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> LabError + '_ {
    move |e| LabError::Io { what: what.to_string(), source: e }
}

/// The i-th destination: 10.128.0.0 upwards, /32.
fn dst(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 128, 0, 0)) + i as u32)
}

fn ip(ns: &str, args: &[&str]) -> Result<(), LabError> {
    let ok = Command::new("ip")
        .arg("-n")
        .arg(ns)
        .args(args)
        .status()
        .map_err(io("running ip"))?
        .success();
    if ok {
        Ok(())
    } else {
        Err(LabError::Usage { message: format!("ip -n {ns} {} failed", args.join(" ")) })
    }
}

/// A namespace with a link whose far end (10.0.0.2) is every route's next hop.
fn namespace() -> Result<TempNetns, LabError> {
    let ns = TempNetns::new("bench-routes").map_err(io("creating a namespace"))?;
    ip(&ns.name, &["link", "add", "v0", "type", "veth", "peer", "name", "v1"])?;
    ip(&ns.name, &["link", "set", "v0", "up"])?;
    ip(&ns.name, &["link", "set", "v1", "up"])?;
    ip(&ns.name, &["addr", "add", "10.0.0.1/24", "dev", "v0"])?;
    Ok(ns)
}

/// `ip -batch` adding `n` routes via 10.0.0.2; `nhid`: through one nexthop object.
fn ip_batch(n: usize, nhid: bool) -> Result<Duration, LabError> {
    let ns = namespace()?;
    let mut script = String::with_capacity(n * 48);
    let via = if nhid { "nhid 1" } else { "via 10.0.0.2" };
    if nhid {
        script += &format!("nexthop add id 1 via 10.0.0.2 dev v0 proto {DEFAULT_PROTOCOL}\n");
    }
    for i in 0..n {
        script += &format!("route add {}/32 {via} proto {DEFAULT_PROTOCOL}\n", dst(i));
    }
    let started = Instant::now();
    let mut child = Command::new("ip")
        .args(["-n", &ns.name, "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(io("running ip -batch"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes()).map_err(io("feeding ip -batch"))?;
    }
    let ok = child.wait().map_err(io("running ip -batch"))?.success();
    let took = started.elapsed();
    if !ok {
        return Err(LabError::Usage { message: "ip -batch failed".into() });
    }
    Ok(took)
}

fn programmer(n: usize) -> Result<(Duration, Duration), LabError> {
    let ns = namespace()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io("starting a runtime"))?;
    rt.block_on(async {
        let kernel =
            NetlinkKernel::new(Some(&ns.path), DEFAULT_PROTOCOL).map_err(io("opening netlink"))?;
        let mut p = Programmer::new(kernel, Duration::from_secs(10));
        p.set_learned_converged();
        let hop = vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))];
        for i in 0..n {
            p.set_learned(ipnet::IpNet::from(IpAddr::V4(dst(i))), Some(hop.clone()));
        }
        let (first, program) = timed_apply(&mut p).await?;
        if first.replaced != n || !first.failed.is_empty() {
            return Err(LabError::Usage {
                message: format!(
                    "programmed {} of {n}: {:?}",
                    first.replaced,
                    first.failed.first()
                ),
            });
        }
        let (again, noop) = timed_apply(&mut p).await?;
        if again.replaced + again.deleted != 0 || again.kernel_routes != n {
            return Err(LabError::Usage {
                message: format!("the resync was not a no-op: {again:?}"),
            });
        }
        Ok((program, noop))
    })
}

/// One `apply`, and how long it took.
async fn timed_apply(
    p: &mut Programmer<NetlinkKernel>,
) -> Result<(ApplyReport, Duration), LabError> {
    let started = Instant::now();
    let report = p.apply(started).await.map_err(|e| LabError::Usage { message: e.to_string() })?;
    Ok((report, started.elapsed()))
}

/// Runs both, `runs` times each, keeping the best.
pub fn run(n: usize, runs: usize) -> Result<RoutesOutcome, LabError> {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut best = RoutesOutcome {
        routes: n,
        ip_batch_ms: f64::MAX,
        ip_batch_nhid_ms: f64::MAX,
        program_ms: f64::MAX,
        noop_resync_ms: f64::MAX,
        runs,
    };
    // The kernel tears a deleted namespace (and its 10,000 routes) down in the background:
    // each measurement starts once the last one's has had time to go.
    let settle = || std::thread::sleep(Duration::from_millis(300));
    for _ in 0..runs.max(1) {
        settle();
        best.ip_batch_ms = best.ip_batch_ms.min(ms(ip_batch(n, false)?));
        settle();
        best.ip_batch_nhid_ms = best.ip_batch_nhid_ms.min(ms(ip_batch(n, true)?));
        settle();
        let (program, noop) = programmer(n)?;
        best.program_ms = best.program_ms.min(ms(program));
        best.noop_resync_ms = best.noop_resync_ms.min(ms(noop));
    }
    Ok(best)
}

pub fn table(r: &RoutesOutcome) -> String {
    let rows = vec![
        ["TARGET", "ROUTES", "TIME", "VS IP -BATCH", "TARGET"].map(String::from).to_vec(),
        vec![
            "ip -batch (add)".into(),
            r.routes.to_string(),
            format!("{:.1} ms", r.ip_batch_ms),
            "1.00×".into(),
            String::new(),
        ],
        vec![
            "ip -batch (add, one nhid)".into(),
            r.routes.to_string(),
            format!("{:.1} ms", r.ip_batch_nhid_ms),
            format!("{:.2}×", r.ip_batch_nhid_ms / r.ip_batch_ms),
            String::new(),
        ],
        vec![
            "tartan programmer (write)".into(),
            r.routes.to_string(),
            format!("{:.1} ms", r.program_ms),
            format!("{:.2}×", r.program_ms / r.ip_batch_ms),
            "≤ 0.20×".into(),
        ],
        vec![
            "tartan programmer (no-op resync)".into(),
            r.routes.to_string(),
            format!("{:.1} ms", r.noop_resync_ms),
            format!("{:.2}×", r.noop_resync_ms / r.ip_batch_ms),
            "< 20 ms".into(),
        ],
    ];
    super::render(&rows)
}
