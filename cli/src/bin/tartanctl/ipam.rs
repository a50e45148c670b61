//! `ipam check`, `ipam release`, `ipam configure` and `ipam allocate` (`ipam show` is in
//! `ipam_show.rs`). Release from a report is guarded by each allocation's sequence number, so an
//! address handed out again since the report is skipped, never taken from its new holder.

use std::collections::BTreeMap;

use hyper::Method;
use tartan_ipam::ipam::allocate::{AllocateRequest, Allocated};
use tartan_ipam::ipam::check::{CheckReport, Problem};
use tartan_ipam::ipam::release::{ReleaseItem, ReleaseRequest, Released, parse_host};
use tartan_ipam::ipam::views::Usage;
use tartan_ipam::resources::{IpamConfigSpec, Kind, RawResource};

use crate::cli::{AllocateArgs, CheckArgs, ConfigureArgs, ReleaseArgs};
use crate::context::{Ctx, Error, Result};
use crate::output::{age, emit};

/// A report older than this is refused by `release --from-report` without --force.
const REPORT_MAX_AGE_SECONDS: u64 = 3600;
/// Read-modify-write attempts of `ipam configure` when someone else writes in between.
const CONFIGURE_ATTEMPTS: usize = 3;

/// Problems by what they mean for the operator.
enum Group {
    Leak,
    Unallocated,
    Structure,
}

fn group(p: &Problem) -> Group {
    match p {
        Problem::AllocatedNotInUse { .. } => Group::Leak,
        Problem::InUseNotAllocated { .. }
        | Problem::InUseOutsidePools { .. }
        | Problem::HandleWithoutAddresses { .. }
        | Problem::HandleMismatch { .. } => Group::Unallocated,
        Problem::BlockWithoutOwner { .. }
        | Problem::BlockOutsidePools { .. }
        | Problem::InvalidBlock { .. }
        | Problem::StuckAffinity { .. } => Group::Structure,
    }
}

/// `ipam check [-o FILE]`.
pub async fn check(ctx: &Ctx, args: CheckArgs) -> Result<()> {
    let api = ctx.connect()?;
    emit("Checking IPAM for inconsistencies...\n\n");
    let report: CheckReport = api.call(Method::POST, "/v1/ipam/check", None::<&()>).await?;
    let usage: Usage = api.get("/v1/ipam/usage").await?;
    let mut out = format!(
        "Found {} IP pools.\nFound {} IPAM blocks.\nFound {} allocated IPs.\nFound {} IPs used by workloads.\n",
        report.pools, report.blocks, report.allocations, report.workload_ips
    );
    let mut nodes: Vec<_> = usage.nodes.iter().filter(|n| n.used > 0).collect();
    nodes.sort_by(|a, b| b.used.cmp(&a.used).then(a.node.cmp(&b.node)));
    out.push_str("Looking for top (up to 20) nodes by allocations...\n");
    for n in nodes.iter().take(20) {
        out.push_str(&format!("  {} has {} allocations\n", n.node, n.used));
    }
    let section = |out: &mut String, scan: &str, wanted: fn(&Problem) -> bool, found: &str| {
        out.push_str(scan);
        let hits: Vec<&Problem> = report.problems.iter().filter(|p| wanted(p)).collect();
        for p in &hits {
            out.push_str(&format!("  {}\n", p.describe()));
        }
        out.push_str(&format!("Found {} {found}\n", hits.len()));
    };
    section(
        &mut out,
        "Scanning for IPs that are allocated but not actually in use...\n",
        |p| matches!(group(p), Group::Leak),
        "IPs that are allocated in IPAM but not actually in use.",
    );
    section(
        &mut out,
        "Scanning for IPs that are in use by a workload but not allocated in IPAM...\n",
        |p| matches!(group(p), Group::Unallocated),
        "problems with in-use IPs that are not allocated in IPAM.",
    );
    section(
        &mut out,
        "Scanning blocks and block claims...\n",
        |p| matches!(group(p), Group::Structure),
        "problems with blocks.",
    );
    out.push_str(&format!("\nCheck complete; found {} problems.\n", report.problems.len()));
    if let Some(path) = &args.output {
        let text = crate::output::json(&report)?;
        std::fs::write(path, text).map_err(|e| {
            Error::new(format!("cannot write the report to {}: {e}", path.display()))
        })?;
        out.push_str(&format!("Report written to {}.\n", path.display()));
        if report.problems.iter().any(|p| matches!(group(p), Group::Leak)) {
            out.push_str(&format!(
                "Release the leaked IPs with `tartanctl ipam release --from-report {}`.\n",
                path.display()
            ));
        }
    }
    emit(&out);
    if !report.problems.is_empty() {
        return Err(Error::with_exit(
            format!("ipam check found {} problem(s) (exit status 2)", report.problems.len()),
            crate::context::EXIT_PROBLEMS,
        ));
    }
    Ok(())
}

/// `ipam release --ip ADDR... | --handle H | --from-report FILE [--force]`.
pub async fn release(ctx: &Ctx, args: ReleaseArgs) -> Result<()> {
    let request = if let Some(path) = &args.from_report {
        match report_request(path, args.force)? {
            Some(r) => r,
            None => {
                emit("The report lists no leaked IPs; nothing to release.\n");
                return Ok(());
            }
        }
    } else if let Some(handle) = &args.handle {
        ReleaseRequest { handle: Some(handle.clone()), ips: Vec::new() }
    } else {
        let mut ips = Vec::new();
        for text in &args.ips {
            let Some(ip) = parse_host(text) else {
                return Err(Error::new(format!("{text:?} is not an IP address (e.g. 10.65.0.5)")));
            };
            ips.push(ReleaseItem::Address(ip.to_string()));
        }
        ReleaseRequest { handle: None, ips }
    };
    let api = ctx.connect()?;
    let out: Released = api.call(Method::POST, "/v1/ipam/release", Some(&request)).await?;
    if let (Some(handle), true) = (&args.handle, out.released.is_empty()) {
        emit(&format!("Handle {handle} holds no address; nothing to release.\n"));
        return Ok(());
    }
    emit(&describe_release(&out));
    Ok(())
}

/// The guarded release of every leak in a report; `None` if it lists none.
fn report_request(path: &std::path::Path, force: bool) -> Result<Option<ReleaseRequest>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::new(format!("cannot read the report {}: {e}", path.display())))?;
    let report: CheckReport = serde_json::from_str(&text).map_err(|e| {
        Error::new(format!(
            "{} is not a report of `tartanctl ipam check -o FILE`: {e}",
            path.display()
        ))
    })?;
    let fresh = crate::output::age_of(&report.generated_at);
    if !force && fresh.is_none_or(|secs| secs > REPORT_MAX_AGE_SECONDS) {
        let how_old =
            fresh.map(|s| format!("{} ago", age(s))).unwrap_or_else(|| "at an unknown time".into());
        return Err(Error::new(format!(
            "the report {} was generated {how_old} ({}); the IPAM may have changed since. Run \
             `tartanctl ipam check -o {}` again, or pass --force (addresses allocated again since \
             are still skipped)",
            path.display(),
            report.generated_at,
            path.display()
        )));
    }
    let ips: Vec<ReleaseItem> = report
        .problems
        .iter()
        .filter_map(|p| match p {
            Problem::AllocatedNotInUse { ip, sequence, .. } => Some(ReleaseItem::Guarded {
                ip: ip.to_string(),
                handle: None,
                sequence: Some(*sequence),
            }),
            _ => None,
        })
        .collect();
    Ok((!ips.is_empty()).then_some(ReleaseRequest { handle: None, ips }))
}

fn describe_release(out: &Released) -> String {
    let mut text = String::new();
    for r in &out.released {
        text.push_str(&format!("Released {} (handle {})\n", r.ip, r.handle));
    }
    for s in &out.skipped {
        text.push_str(&format!("Skipped {}: {}\n", s.ip, s.reason));
    }
    for ip in &out.not_allocated {
        text.push_str(&format!("{ip} was already free\n"));
    }
    text.push_str(&format!(
        "Released {} IP(s); skipped {}; {} already free.\n",
        out.released.len(),
        out.skipped.len(),
        out.not_allocated.len()
    ));
    text
}

/// `ipam configure`: read-modify-write of IPAMConfig `default`, guarded by resourceVersion.
pub async fn configure(ctx: &Ctx, args: ConfigureArgs) -> Result<()> {
    if args.strict_affinity.is_none()
        && args.max_blocks_per_host.is_none()
        && args.ip_cooldown_seconds.is_none()
        && args.leak_grace_period_seconds.is_none()
    {
        return Err(Error::new(
            "nothing to change: give --strict-affinity, --max-blocks-per-host, --ip-cooldown-seconds \
             or --leak-grace-period-seconds (the current values: `tartanctl ipam show --show-configuration`)",
        ));
    }
    let api = ctx.connect()?;
    let path = "/v1/ipamconfigs/default";
    for _ in 0..CONFIGURE_ATTEMPTS {
        let current: Option<RawResource> = api.get_optional(path).await?;
        let mut spec = match &current {
            Some(raw) => raw.typed::<IpamConfigSpec>().map_err(Error::new)?.spec,
            None => IpamConfigSpec::default(),
        };
        if let Some(v) = args.strict_affinity {
            spec.strict_affinity = v;
        }
        if let Some(v) = args.max_blocks_per_host {
            spec.max_blocks_per_host = v;
        }
        if let Some(v) = args.ip_cooldown_seconds {
            spec.ip_cooldown_seconds = v;
        }
        if let Some(v) = args.leak_grace_period_seconds {
            spec.leak_grace_period_seconds = v;
        }
        let spec_value = serde_json::to_value(&spec)
            .map_err(|e| Error::new(format!("cannot encode the configuration: {e}")))?;
        let result: Result<RawResource> = match current {
            Some(mut raw) => {
                // Keeps metadata.resourceVersion: the write fails if someone changed it since.
                raw.spec = spec_value;
                api.call(Method::PUT, path, Some(&raw)).await
            }
            None => {
                let raw = RawResource::new(Kind::IpamConfig, "default", spec_value);
                api.call(Method::POST, "/v1/ipamconfigs", Some(&raw)).await
            }
        };
        match result {
            Ok(stored) => {
                let spec = stored.typed::<IpamConfigSpec>().map_err(Error::new)?.spec;
                emit(&format!(
                    "IPAM configuration updated (resourceVersion {}).\n{}",
                    stored.metadata.resource_version.as_deref().unwrap_or("?"),
                    crate::ipam_show::configuration(&spec)
                ));
                return Ok(());
            }
            Err(e) if e.is("conflict") || e.is("already_exists") => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::new("IPAMConfig default kept changing while being updated; run the command again"))
}

/// `ipam allocate`: a debugging aid.
pub async fn allocate(ctx: &Ctx, args: AllocateArgs) -> Result<()> {
    let ip = match &args.ip {
        Some(text) => Some(parse_host(text).ok_or_else(|| {
            Error::new(format!("{text:?} is not an IP address (e.g. 10.65.0.5)"))
        })?),
        None => None,
    };
    let mut attributes = BTreeMap::new();
    for text in &args.attribute {
        let Some((k, v)) = text.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(Error::new(format!("{text:?} is not an attribute: write key=value")));
        };
        attributes.insert(k.to_string(), v.to_string());
    }
    let default_v4 = if args.ipv6.is_none() && ip.is_none() { 1 } else { 0 };
    let request = AllocateRequest {
        node: args.node.clone(),
        handle: args.handle.clone(),
        ipv4: args.ipv4.unwrap_or(default_v4),
        ipv6: args.ipv6.unwrap_or(0),
        attributes,
        pools: Vec::new(),
        ip,
        retried: false,
    };
    let api = ctx.connect()?;
    let out: Allocated = api.call(Method::POST, "/v1/ipam/allocate", Some(&request)).await?;
    let mut text = format!("Handle {} on node {} holds:\n", out.handle, args.node);
    for net in &out.ips {
        text.push_str(&format!("  {net}\n"));
    }
    text.push_str(&format!(
        "(A debugging allocation: give it back with `tartanctl ipam release --handle {}`.)\n",
        out.handle
    ));
    emit(&text);
    Ok(())
}
