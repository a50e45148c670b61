//! The agent's side of CNI: a unix socket that takes the plugin's requests, and the ADD, DEL
//! and CHECK they ask for. ADD allocates (handle `<network>.<containerID>`), wires the veth,
//! records the endpoint locally and in the API and installs the host route before it answers;
//! any failure undoes what was done and releases the addresses. DEL is idempotent.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use ipnet::IpNet;
use serde_json::json;
use tartan_ipam::client::{ClientError, Method};
use tartan_ipam::ipam::views::HandleView;
use tartan_ipam::resources::{IpPoolSpec, NodeSpec, Selector};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

use super::Shared;
use super::endpoints::Endpoint;
use crate::cni::protocol::{Command, Request, Response};
use crate::cni::types::{CniError, CniResult, Interface, IpConfig, Route, code};
use crate::cni::veth::{self, Attachment, GATEWAY_V4, GATEWAY_V6};

/// How long a request waits for an agent that is still starting.
const STARTING_PATIENCE: std::time::Duration = std::time::Duration::from_secs(90);

/// The largest request line: a network's configuration and the runtime's arguments fit many
/// times over; more is a broken or hostile client, not a container.
const MAX_REQUEST: u64 = 1 << 20;

/// How long a client may take to send its request line once connected.
const REQUEST_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Binds the socket. It opens as soon as the agent starts, so a runtime (or a lab's exec
/// line) may ask at once; requests wait until `ready` holds the agent's state.
pub fn bind(socket: &Path) -> std::io::Result<UnixListener> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)?;
    // Only root (the runtime that calls the plugin) may add or delete containers, whatever
    // the process's umask.
    std::fs::set_permissions(socket, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(listener)
}

/// Reads the plugin's one request line, within [`MAX_REQUEST`] octets and
/// [`REQUEST_PATIENCE`]. `Err` says why there is no whole line.
async fn read_request(read: &mut tokio::net::unix::OwnedReadHalf) -> Result<String, String> {
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST));
    match tokio::time::timeout(REQUEST_PATIENCE, reader.read_line(&mut line)).await {
        Err(_) => Err(format!("no whole request within {} s", REQUEST_PATIENCE.as_secs())),
        Ok(Err(e)) => Err(format!("reading the request: {e}")),
        Ok(Ok(_)) if line.ends_with('\n') => Ok(line),
        Ok(Ok(_)) if line.len() as u64 >= MAX_REQUEST => {
            Err(format!("the request is longer than {MAX_REQUEST} bytes"))
        }
        Ok(Ok(_)) => Err("the request ended before its end of line".to_string()),
    }
}

/// Serves the socket until the task is dropped.
pub async fn serve(
    listener: UnixListener,
    ready: tokio::sync::watch::Receiver<Option<Arc<Shared>>>,
) -> std::io::Result<()> {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of descriptors and the like: pass, rather than stop serving for good.
            Err(e) => {
                tracing::warn!("accepting a CNI request: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let mut ready = ready.clone();
        tokio::spawn(async move {
            let (mut read, mut write) = stream.into_split();
            let line = match read_request(&mut read).await {
                Ok(line) => line,
                Err(why) => {
                    tracing::warn!("a CNI request could not be read: {why}");
                    let error = CniError::new(code::DECODE_FAILURE, "cannot read the request", why);
                    reply(&mut write, &Response::Error(error)).await;
                    // Closing with the rest of a long request unread would reset the
                    // connection and lose the answer: read on a little first.
                    let _ = write.shutdown().await;
                    let mut rest = (&mut read).take(4 * MAX_REQUEST);
                    let mut sink = tokio::io::sink();
                    let drain = tokio::io::copy(&mut rest, &mut sink);
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), drain).await;
                    return;
                }
            };
            // A request that cannot be decoded is answered at once; a good one waits for an
            // agent that is still starting.
            let response = match serde_json::from_str::<Request>(&line) {
                Err(e) => Response::Error(CniError::new(
                    code::DECODE_FAILURE,
                    "cannot decode the plugin's request",
                    e.to_string(),
                )),
                Ok(req) => {
                    let shared: Option<Arc<Shared>> = {
                        let waited = tokio::time::timeout(
                            STARTING_PATIENCE,
                            ready.wait_for(Option::is_some),
                        )
                        .await;
                        match waited {
                            Ok(Ok(s)) => s.clone(),
                            _ => None,
                        }
                    };
                    match shared {
                        Some(shared) => handle(&shared, req).await,
                        None => Response::Error(CniError::new(
                            code::TRY_AGAIN_LATER,
                            "the tartan agent is still starting",
                            "it has not reached the API server or registered this node yet; see its log",
                        )),
                    }
                }
            };
            reply(&mut write, &response).await;
        });
    }
}

/// Sends the one response line; a client that went away or stopped reading is let go.
async fn reply(write: &mut tokio::net::unix::OwnedWriteHalf, response: &Response) {
    let mut out = match serde_json::to_vec(response) {
        Ok(out) => out,
        Err(e) => {
            tracing::error!("encoding a CNI response: {e}");
            return;
        }
    };
    out.push(b'\n');
    match tokio::time::timeout(REQUEST_PATIENCE, write.write_all(&out)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!("the plugin went away before its response: {e}"),
        Err(_) => tracing::warn!("the plugin did not read its response"),
    }
}

async fn handle(shared: &Shared, req: Request) -> Response {
    let what = format!("{:?} {} {} {}", req.command, req.network, req.container_id, req.ifname);
    let started = std::time::Instant::now();
    let req_command = req.command;
    // One request per attachment at a time: a DEL that overtakes a slow ADD of the same
    // container waits for it instead of undoing half of it.
    let key = Endpoint::key(&req.network, &req.container_id, &req.ifname);
    let lock = shared.attachment_lock(&key);
    let _serial = lock.lock().await;
    let result = match req.command {
        Command::Add => add(shared, &req).await.map(Some),
        Command::Del => del(shared, &req).await.map(|()| None),
        Command::Check => check(shared, &req).await.map(|()| None),
    };
    let command = format!("{:?}", req_command).to_uppercase();
    shared.metrics.observe_cni(&command, result.is_ok(), started.elapsed());
    match result {
        Ok(result) => {
            tracing::info!("CNI {what}: done in {:?}", started.elapsed());
            Response::Ok { result }
        }
        Err(e) => {
            tracing::warn!("CNI {what}: {e}");
            Response::Error(e)
        }
    }
}

fn api_error(what: &str, e: ClientError) -> CniError {
    let code = match e.status().map(|s| s.as_u16()) {
        None => code::TRY_AGAIN_LATER,
        Some(503) => code::TRY_AGAIN_LATER,
        Some(409) if e.code() == Some("exhausted") => code::NO_ADDRESS,
        _ => code::AGENT_FAILED,
    };
    CniError::new(code, what.to_string(), e.to_string())
}

fn handle_of(req: &Request) -> String {
    format!("{}.{}", req.network, req.container_id)
}

fn endpoint_name(node: &str, host_if: &str) -> String {
    format!("{node}.{host_if}")
}

/// Which families to allocate: one address of each family that has an enabled pool.
async fn families(shared: &Shared) -> Result<(u32, u32), CniError> {
    let pools = shared
        .client
        .list::<IpPoolSpec>(None)
        .await
        .map_err(|e| api_error("cannot list the IP pools", e))?;
    let node = shared
        .client
        .get::<NodeSpec>(&shared.cfg.node_name)
        .await
        .map_err(|e| api_error("cannot read this host's Node", e))?;
    let labels = &node.metadata.labels;
    let mut v4 = 0;
    let mut v6 = 0;
    for pool in pools.items.iter().map(|p| &p.spec).filter(|p| !p.disabled) {
        // Only pools whose nodeSelector picks this host: asking for a family no pool of ours
        // has would fail the whole (all-or-nothing) allocation.
        if !Selector::parse(pool.selector_text()).is_ok_and(|s| s.matches(labels)) {
            continue;
        }
        match pool.cidr {
            IpNet::V6(_) => v6 = 1,
            IpNet::V4(_) => v4 = 1,
        }
    }
    if v4 + v6 == 0 {
        return Err(CniError::new(
            code::NO_ADDRESS,
            format!("no enabled IP pool selects node {}", shared.cfg.node_name),
            "create one (`tartanctl apply -f pool.yaml`), or check the pools' nodeSelector",
        ));
    }
    Ok((v4, v6))
}

async fn add(shared: &Shared, req: &Request) -> Result<CniResult, CniError> {
    let Some(netns) = req.netns.clone() else {
        return Err(CniError::new(code::INVALID_ENV, "CNI_NETNS is required for ADD", ""));
    };
    if !netns.exists() {
        return Err(CniError::new(
            code::UNKNOWN_CONTAINER,
            format!("network namespace {} does not exist", netns.display()),
            "",
        ));
    }
    let node = shared.cfg.node_name.clone();
    // Checked before any address is taken: a bad label fails the ADD with nothing to undo.
    let labels =
        super::labels::workload_labels(&node, &req.network, req.args.as_deref(), &req.labels)
            .map_err(|e| CniError::new(code::INVALID_CONFIG, e, ""))?;
    let handle = handle_of(req);
    let (v4, v6) = families(shared).await?;
    let body = json!({"node": node, "handle": handle, "ipv4": v4, "ipv6": v6,
        "attributes": {"containerID": req.container_id, "ifname": req.ifname, "network": req.network}});
    // Idempotent by handle: sent again (to another API server) it returns the same addresses.
    let allocated: serde_json::Value = shared
        .client
        .post_idempotent("/v1/ipam/allocate", &body)
        .await
        .map_err(|e| api_error("cannot allocate an address", e))?;
    let ips: Vec<IpNet> = allocated["ips"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().and_then(|s| s.parse().ok()))
        .collect();
    let host_if = veth::host_name(&req.network, &req.container_id, &req.ifname);
    let wired = if ips.len() as u32 == v4 + v6 {
        wire(shared, req, &netns, &host_if, &ips, &labels).await
    } else {
        Err(CniError::new(
            code::AGENT_FAILED,
            "the IPAM's answer is not understood",
            format!("asked for {v4} IPv4 and {v6} IPv6 addresses, got {allocated}"),
        ))
    };
    match wired {
        Ok(result) => Ok(result),
        Err(e) => {
            // Undo: the veth (if any), the routes, the records, the addresses.
            let _ = veth::remove(&shared.host, &host_if).await;
            forget(shared, req, &ips, &host_if).await;
            let wep =
                format!("/v1/workloadendpoints/{}", endpoint_name(&shared.cfg.node_name, &host_if));
            let _ =
                shared.client.call::<serde_json::Value>(Method::DELETE, &wep, None::<&()>).await;
            let release = json!({"handle": handle});
            if let Err(re) = shared
                .client
                .post_idempotent::<serde_json::Value>("/v1/ipam/release", &release)
                .await
            {
                tracing::warn!(
                    "releasing {handle} after a failed ADD: {re} (leak collection will find it)"
                );
            }
            Err(e)
        }
    }
}

async fn wire(
    shared: &Shared,
    req: &Request,
    netns: &Path,
    host_if: &str,
    ips: &[IpNet],
    labels: &std::collections::BTreeMap<String, String>,
) -> Result<CniResult, CniError> {
    let io = |what: &str| {
        let what = what.to_string();
        move |e: veth::VethError| CniError::new(code::IO_FAILURE, what, e.to_string())
    };
    let mtu = req.mtu.unwrap_or(shared.mtu);
    let attachment = Attachment {
        host_if: host_if.to_string(),
        container_if: req.ifname.clone(),
        netns: netns.to_path_buf(),
        mtu,
        ips: ips.to_vec(),
    };
    let mac =
        veth::create(&shared.host, &attachment).await.map_err(io("cannot wire the container"))?;
    let ep = Endpoint {
        network: req.network.clone(),
        container_id: req.container_id.clone(),
        ifname: req.ifname.clone(),
        netns: Some(netns.to_path_buf()),
        host_if: host_if.to_string(),
        ips: ips.to_vec(),
        mac: mac.clone(),
        handle: handle_of(req),
    };
    let wep = json!({"apiVersion": "tartan/v1", "kind": "WorkloadEndpoint",
        "metadata": {"name": endpoint_name(&shared.cfg.node_name, host_if), "labels": labels},
        "spec": {"node": shared.cfg.node_name, "containerID": req.container_id, "handle": ep.handle,
                 "interfaceName": host_if, "ipNetworks": ips, "mac": mac, "profiles": [req.network]}});
    shared
        .client
        .call::<serde_json::Value>(
            Method::PUT,
            &format!("/v1/workloadendpoints/{}", endpoint_name(&shared.cfg.node_name, host_if)),
            Some(&wep),
        )
        .await
        .map_err(|e| api_error("cannot record the workload endpoint", e))?;
    {
        let mut state = shared.state.lock().await;
        state.endpoints.put(ep).map_err(|e| {
            CniError::new(code::IO_FAILURE, "cannot record the endpoint locally", e.to_string())
        })?;
        for ip in ips {
            state.programmer.set_workload(*ip, host_if);
        }
        // The new routes alone; only when one cannot simply be created (a route to the
        // address is there already) does the whole table get read and reconciled.
        let mut failed = state.programmer.create_workloads(ips).await;
        if !failed.is_empty() {
            let report = shared.reconcile(&mut state).await.map_err(|e| {
                CniError::new(code::IO_FAILURE, "cannot program routes", e.to_string())
            })?;
            failed = report.failed;
        }
        if let Some((dst, why)) = failed.iter().find(|(dst, _)| ips.contains(dst)) {
            return Err(CniError::new(
                code::IO_FAILURE,
                format!("cannot install the route to {dst}"),
                why.clone(),
            ));
        }
    }
    shared.kick();
    let mut interfaces = vec![Interface {
        name: host_if.to_string(),
        mac: Some("ee:ee:ee:ee:ee:ee".into()),
        sandbox: None,
    }];
    interfaces.push(Interface {
        name: req.ifname.clone(),
        mac,
        sandbox: Some(netns.display().to_string()),
    });
    let mut routes = Vec::new();
    if ips.iter().any(|ip| ip.addr().is_ipv4()) {
        routes.push(Route {
            dst: "0.0.0.0/0".parse().unwrap_or_default(),
            gw: Some(IpAddr::V4(GATEWAY_V4)),
        });
    }
    if ips.iter().any(|ip| ip.addr().is_ipv6()) {
        routes.push(Route {
            dst: "::/0".parse().unwrap_or_default(),
            gw: Some(IpAddr::V6(GATEWAY_V6)),
        });
    }
    Ok(CniResult {
        cni_version: req.cni_version.clone(),
        interfaces,
        ips: ips
            .iter()
            .map(|ip| IpConfig { version: None, address: *ip, gateway: None, interface: Some(1) })
            .collect(),
        routes,
        dns: Default::default(),
    })
}

/// Drops the endpoint's routes and record (kernel routes go at the next apply).
async fn forget(shared: &Shared, req: &Request, ips: &[IpNet], host_if: &str) {
    let mut state = shared.state.lock().await;
    for ip in ips {
        state.programmer.remove_workload(*ip, host_if);
    }
    let key = Endpoint::key(&req.network, &req.container_id, &req.ifname);
    if let Err(e) = state.endpoints.remove(&key) {
        tracing::warn!("removing the record of {key}: {e}");
    }
    let _ = shared.reconcile(&mut state).await;
}

async fn del(shared: &Shared, req: &Request) -> Result<(), CniError> {
    let key = Endpoint::key(&req.network, &req.container_id, &req.ifname);
    let known = shared.state.lock().await.endpoints.get(&key).cloned();
    let host_if = known
        .as_ref()
        .map(|e| e.host_if.clone())
        .unwrap_or_else(|| veth::host_name(&req.network, &req.container_id, &req.ifname));
    // Local teardown first, then the addresses go back: an address must never be handed
    // out again while this host still routes it to the old veth. If the API is down, the
    // runtime retries DEL; the local part is then already done (and idempotent).
    veth::remove(&shared.host, &host_if)
        .await
        .map_err(|e| CniError::new(code::IO_FAILURE, "cannot remove the veth", e.to_string()))?;
    let ips = known.map(|e| e.ips).unwrap_or_default();
    forget(shared, req, &ips, &host_if).await;
    shared.kick();
    let release = json!({"handle": handle_of(req)});
    shared
        .client
        .post_idempotent::<serde_json::Value>("/v1/ipam/release", &release)
        .await
        .map_err(|e| api_error("cannot release the addresses", e))?;
    let path = format!("/v1/workloadendpoints/{}", endpoint_name(&shared.cfg.node_name, &host_if));
    match shared.client.call::<serde_json::Value>(Method::DELETE, &path, None::<&()>).await {
        Ok(_) => {}
        Err(e) if e.status().map(|s| s.as_u16()) == Some(404) => {}
        Err(e) => return Err(api_error("cannot remove the workload endpoint", e)),
    }
    Ok(())
}

async fn check(shared: &Shared, req: &Request) -> Result<(), CniError> {
    let key = Endpoint::key(&req.network, &req.container_id, &req.ifname);
    let Some(ep) = shared.state.lock().await.endpoints.get(&key).cloned() else {
        return Err(CniError::new(
            code::UNKNOWN_CONTAINER,
            format!("the agent has no endpoint {key}"),
            "ADD it first",
        ));
    };
    let netns = req.netns.clone().or(ep.netns.clone()).unwrap_or_default();
    let attachment = Attachment {
        host_if: ep.host_if.clone(),
        container_if: ep.ifname.clone(),
        netns,
        mtu: 0,
        ips: ep.ips.clone(),
    };
    veth::check(&shared.host, &attachment)
        .await
        .map_err(|e| CniError::new(code::AGENT_FAILED, "CHECK failed", e.to_string()))?;
    let held: HandleView = shared
        .client
        .get_json(&format!("/v1/ipam/handles/{}", tartan_ipam::client::encode(&ep.handle)))
        .await
        .map_err(|e| api_error("CHECK failed: the IPAM does not know the handle", e))?;
    let state = shared.state.lock().await;
    for ip in &ep.ips {
        if !held.ips.contains(&ip.addr()) {
            return Err(CniError::new(
                code::AGENT_FAILED,
                "CHECK failed",
                format!("{ip} is no longer allocated to {}", ep.handle),
            ));
        }
        if state.programmer.workload(*ip) != Some(ep.host_if.as_str()) {
            return Err(CniError::new(
                code::AGENT_FAILED,
                "CHECK failed",
                format!("no host route to {ip}"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixStream;

    use super::*;

    /// A server on a socket of its own whose agent never becomes ready: what it answers is
    /// decided by reading the request alone.
    async fn server(name: &str) -> (std::path::PathBuf, tokio::task::JoinHandle<()>) {
        let dir = std::env::temp_dir().join(format!("tartan-cni-{name}-{}", std::process::id()));
        let path = dir.join("cni.sock");
        let listener = bind(&path).expect("bind");
        let (tx, rx) = tokio::sync::watch::channel(None);
        let task = tokio::spawn(async move {
            let _tx = tx;
            let _ = serve(listener, rx).await;
        });
        (path, task)
    }

    /// Sends `pieces` with a pause between each, closes the writing side if `close`, and
    /// returns the error the server answered.
    async fn ask(path: &Path, pieces: &[&[u8]], close: bool) -> CniError {
        let mut s = UnixStream::connect(path).await.expect("connect");
        for p in pieces {
            s.write_all(p).await.expect("write");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if close {
            s.shutdown().await.expect("shutdown");
        }
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
            .await
            .expect("an answer in time")
            .expect("read");
        match serde_json::from_slice(&out).expect("a JSON response") {
            Response::Error(e) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn requests_are_read_whole_bounded_and_answered_when_broken() {
        let (path, task) = server("read").await;
        let mode = std::fs::metadata(&path).expect("socket").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only root may talk to the socket");

        // A line in pieces is read whole: the JSON is wrong, not the framing.
        let e = ask(&path, &[b"{\"comm", b"and\": 1", b"7}\n"], false).await;
        assert_eq!(e.code, code::DECODE_FAILURE);
        assert_eq!(e.msg, "cannot decode the plugin's request", "{e:?}");

        // A request cut short is answered at once, not after the agent's start-up patience.
        let e = ask(&path, &[b"{\"command\":\"ADD\""], true).await;
        assert_eq!((e.code, e.msg.as_str()), (code::DECODE_FAILURE, "cannot read the request"));
        assert!(e.details.contains("ended before its end of line"), "{e:?}");

        // An endless line stops at the limit.
        let big = vec![b'x'; MAX_REQUEST as usize + 10];
        let e = ask(&path, &[&big], false).await;
        assert!(e.details.contains("longer than"), "{e:?}");

        task.abort();
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }
}
