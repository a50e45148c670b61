//! `ipam show`: calicoctl's usage tables (per pool, per block, per node), the borrowed
//! addresses, who holds one address, and the IPAM settings — all from `/v1/ipam/...` and
//! IPAMConfig `default`.

use tartan_ipam::ipam::release::parse_host;
use tartan_ipam::ipam::views::{AllocationView, Usage};
use tartan_ipam::resources::IpamConfigSpec;

use crate::cli::ShowArgs;
use crate::context::{Ctx, Error, Result, encode};
use crate::output::{bordered, count, count_pct, emit};

pub async fn show(ctx: &Ctx, args: ShowArgs) -> Result<()> {
    let api = ctx.connect()?;
    if let Some(ip) = &args.ip {
        let Some(addr) = parse_host(ip) else {
            return Err(Error::new(format!("{ip:?} is not an IP address (e.g. 10.65.0.5)")));
        };
        let found: Option<AllocationView> =
            api.get_optional(&format!("/v1/ipam/ips/{}", encode(&addr.to_string()))).await?;
        emit(&match found {
            Some(a) => describe_ip(&a),
            None => format!("IP {addr} is not assigned\n"),
        });
        return Ok(());
    }
    let usage: Usage = api.get("/v1/ipam/usage").await?;
    let text = if args.show_configuration {
        configuration(&usage.config)
    } else if args.show_borrowed {
        borrowed(&usage)
    } else {
        pools(&usage, args.show_blocks)
    };
    emit(&text);
    Ok(())
}

fn describe_ip(a: &AllocationView) -> String {
    let mut out = format!("IP {} is in use\nHandle ID: {}\n", a.ip, a.handle);
    out.push_str(&format!(
        "Node: {}{}\n",
        a.node,
        if a.borrowed { " (borrowed from another node's block)" } else { "" }
    ));
    out.push_str(&format!("Allocated at: {}\nSequence: {}\n", a.allocated_at, a.sequence));
    if a.attributes.is_empty() {
        out.push_str("Attributes: (none)\n");
    } else {
        out.push_str("Attributes:\n");
        for (k, v) in &a.attributes {
            out.push_str(&format!("  {k}: {v}\n"));
        }
    }
    out
}

/// The pool table (with block rows under --show-blocks) and the per-node table.
fn pools(usage: &Usage, show_blocks: bool) -> String {
    if usage.pools.is_empty() && usage.orphan_blocks.is_empty() {
        return "No IP pools: create one with `tartanctl apply -f pool.yaml`.\n".to_string();
    }
    let mut rows = Vec::new();
    for p in &usage.pools {
        let used = u128::from(p.used);
        let grouping = if p.disabled { "IP Pool (disabled)" } else { "IP Pool" };
        rows.push(vec![
            grouping.to_string(),
            p.cidr.to_string(),
            count(p.total),
            count_pct(used, p.total),
            count_pct(p.total.saturating_sub(used), p.total),
        ]);
        if show_blocks {
            for b in &p.blocks {
                rows.push(block_row("Block", b));
            }
        }
    }
    if show_blocks {
        for b in &usage.orphan_blocks {
            rows.push(block_row("Block (no pool)", b));
        }
    }
    let mut out = bordered(&["GROUPING", "CIDR", "IPS TOTAL", "IPS IN USE", "IPS FREE"], &rows);
    if !usage.orphan_blocks.is_empty() {
        out.push_str(&format!(
            "{} block(s) are in no pool; `tartanctl ipam check` explains.\n",
            usage.orphan_blocks.len()
        ));
    }
    if !usage.nodes.is_empty() {
        let rows: Vec<Vec<String>> = usage
            .nodes
            .iter()
            .map(|n| vec![n.node.clone(), n.blocks.to_string(), n.used.to_string()])
            .collect();
        out.push('\n');
        out.push_str(&bordered(&["NODE", "BLOCKS", "IPS IN USE"], &rows));
    }
    out
}

fn block_row(grouping: &str, b: &tartan_ipam::ipam::views::BlockUsage) -> Vec<String> {
    let size = u128::from(b.size);
    vec![
        grouping.to_string(),
        b.cidr.to_string(),
        count(size),
        count_pct(u128::from(b.used), size),
        count_pct(u128::from(b.free), size),
    ]
}

fn borrowed(usage: &Usage) -> String {
    let blocks = usage.pools.iter().flat_map(|p| &p.blocks).chain(&usage.orphan_blocks);
    let mut rows = Vec::new();
    for b in blocks {
        for ip in &b.borrowed {
            rows.push(vec![
                ip.ip.to_string(),
                ip.node.clone(),
                b.cidr.to_string(),
                b.affinity.clone().unwrap_or_else(|| "(none)".into()),
                ip.handle.clone(),
            ]);
        }
    }
    if rows.is_empty() {
        return "No borrowed IPs found.\n".to_string();
    }
    bordered(&["IP", "BORROWING-NODE", "BLOCK", "BLOCK OWNER", "HANDLE"], &rows)
}

/// The PROPERTY | VALUE table of the IPAM settings.
pub fn configuration(c: &IpamConfigSpec) -> String {
    let or = |n: u64, zero: &str| if n == 0 { format!("0 ({zero})") } else { n.to_string() };
    let rows = vec![
        vec!["strictAffinity".to_string(), c.strict_affinity.to_string()],
        vec!["maxBlocksPerHost".to_string(), or(u64::from(c.max_blocks_per_host), "unlimited")],
        vec!["ipCooldownSeconds".to_string(), or(u64::from(c.ip_cooldown_seconds), "none")],
        vec![
            "leakGracePeriodSeconds".to_string(),
            or(c.leak_grace_period_seconds, "leak collection off"),
        ],
    ];
    bordered(&["PROPERTY", "VALUE"], &rows)
}
