//! `natOutgoing`: traffic from a pool that has it, to a destination outside every pool, is
//! masqueraded behind the host's address; traffic between pools never is. One nftables table,
//! `inet tartan`, replaced atomically (`nft -f`) whenever the pools change, and removed when
//! no pool asks for it. Tables of others are never touched.

use ipnet::IpNet;
use tartan_ipam::resources::IpPoolSpec;

use crate::nft::{self, NftError};

/// The nftables table we own.
pub const TABLE: &str = "inet tartan";

fn set(name: &str, ty: &str, nets: &[IpNet]) -> String {
    if nets.is_empty() {
        return format!("  set {name} {{ type {ty}; flags interval; }}\n");
    }
    let elems: Vec<String> = nets.iter().map(ToString::to_string).collect();
    format!("  set {name} {{ type {ty}; flags interval; elements = {{ {} }} }}\n", elems.join(", "))
}

/// The script that makes the kernel's `inet tartan` table match the pools: `None` when no pool
/// masquerades (the table is then removed).
pub fn ruleset(pools: &[IpPoolSpec]) -> Option<String> {
    let enabled: Vec<&IpPoolSpec> = pools.iter().filter(|p| !p.disabled).collect();
    if !enabled.iter().any(|p| p.nat_outgoing) {
        return None;
    }
    let nets = |v6: bool, nat_only: bool| -> Vec<IpNet> {
        let mut n: Vec<IpNet> = pools
            .iter()
            .filter(|p| {
                p.cidr.addr().is_ipv6() == v6 && (!nat_only || (p.nat_outgoing && !p.disabled))
            })
            .map(|p| p.cidr)
            .collect();
        n.sort();
        n
    };
    let mut s = String::from("table inet tartan {\n");
    s += &set("nat-pools-v4", "ipv4_addr", &nets(false, true));
    s += &set("all-pools-v4", "ipv4_addr", &nets(false, false));
    s += &set("nat-pools-v6", "ipv6_addr", &nets(true, true));
    s += &set("all-pools-v6", "ipv6_addr", &nets(true, false));
    s += "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n";
    s += "    ip saddr @nat-pools-v4 ip daddr != @all-pools-v4 masquerade\n";
    s += "    ip6 saddr @nat-pools-v6 ip6 daddr != @all-pools-v6 masquerade\n";
    s += "  }\n}\n";
    Some(s)
}

/// Replaces (or removes) our table in one transaction.
pub async fn apply(rules: Option<&str>) -> Result<(), NftError> {
    // Declaring the table first makes the delete succeed when it does not exist yet.
    let mut script = format!("table {TABLE} {{}}\ndelete table {TABLE}\n");
    if let Some(r) = rules {
        script += r;
    }
    match nft::apply(&script).await {
        // Without nftables there is no table of ours to remove.
        Err(NftError::NotInstalled) if rules.is_none() => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(cidr: &str, nat: bool) -> IpPoolSpec {
        serde_json::from_value(serde_json::json!({"cidr": cidr, "natOutgoing": nat})).expect("pool")
    }

    #[test]
    fn only_natoutgoing_pools_masquerade_and_only_to_outside_every_pool() {
        assert_eq!(ruleset(&[pool("10.65.0.0/16", false)]), None);
        let rules = ruleset(&[
            pool("10.65.0.0/16", true),
            pool("10.66.0.0/16", false),
            pool("fd00:65::/112", false),
        ])
        .expect("rules");
        assert!(
            rules.contains(
                "set nat-pools-v4 { type ipv4_addr; flags interval; elements = { 10.65.0.0/16 } }"
            ),
            "{rules}"
        );
        assert!(rules.contains("elements = { 10.65.0.0/16, 10.66.0.0/16 }"), "{rules}");
        assert!(rules.contains("set nat-pools-v6 { type ipv6_addr; flags interval; }"), "{rules}");
        assert!(rules.contains("ip saddr @nat-pools-v4 ip daddr != @all-pools-v4 masquerade"));
    }
}
