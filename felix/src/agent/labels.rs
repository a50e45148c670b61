//! A workload's labels, as its WorkloadEndpoint records them for policy selectors: the
//! reserved `tartan.io/node` and `tartan.io/network`; `tartan.io/namespace` and `tartan.io/pod`
//! from `K8S_POD_NAMESPACE` and `K8S_POD_NAME` in CNI_ARGS; then `args.cni.labels` of the
//! network configuration (which `tartan sandbox add --label` writes). The network Profile's
//! `labelsToApply` go under them where policy is evaluated, so a Profile change reaches every
//! workload without rewriting it.

use std::collections::BTreeMap;

/// The prefix of the labels the agent sets; a runtime may not set them.
pub const RESERVED_PREFIX: &str = "tartan.io/";

/// The merged labels, or what is wrong with them.
pub fn workload_labels(
    node: &str,
    network: &str,
    cni_args: Option<&str>,
    runtime: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    labels.insert(format!("{RESERVED_PREFIX}node"), node.to_string());
    labels.insert(format!("{RESERVED_PREFIX}network"), network.to_string());
    for pair in cni_args.unwrap_or("").split(';').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let label = match key {
            "K8S_POD_NAMESPACE" => "namespace",
            "K8S_POD_NAME" => "pod",
            _ => continue,
        };
        labels.insert(format!("{RESERVED_PREFIX}{label}"), value.to_string());
    }
    for (k, v) in runtime {
        if k.starts_with(RESERVED_PREFIX) {
            return Err(format!(
                "args.cni.labels sets {k}: labels under {RESERVED_PREFIX} are set by the agent"
            ));
        }
        labels.insert(k.clone(), v.clone());
    }
    tartan_ipam::resources::validate::check_labels(&labels)
        .map_err(|e| format!("the workload's labels are not valid: {e}"))?;
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn reserved_then_kubernetes_then_the_runtimes() {
        let got = workload_labels(
            "node1",
            "net1",
            Some("IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-7"),
            &map(&[("app", "web"), ("tier", "")]),
        );
        assert_eq!(
            got,
            Ok(map(&[
                ("app", "web"),
                ("tier", ""),
                ("tartan.io/namespace", "shop"),
                ("tartan.io/network", "net1"),
                ("tartan.io/node", "node1"),
                ("tartan.io/pod", "web-7"),
            ]))
        );
    }

    #[test]
    fn reserved_and_invalid_labels_are_refused() {
        let e = workload_labels("n", "net", None, &map(&[("tartan.io/node", "other")]));
        assert!(e.is_err_and(|e| e.contains("set by the agent")));
        let e = workload_labels("n", "net", None, &map(&[("app", "has space")]));
        assert!(e.is_err_and(|e| e.contains("not valid")));
        let long = "x".repeat(64);
        assert!(workload_labels("n", &long, None, &BTreeMap::new()).is_err());
    }
}
