//! Calico's policy manifests read as Tartan's: the fields of GlobalNetworkPolicy and its rules
//! that Tartan does not implement (tiers, namespaces, service accounts, host-endpoint modes,
//! Istio's `http`) are refused with what to do instead when set, and dropped when empty.

use serde_json::{Map, Value};

use super::calico::{only, unset};

const NO_NAMESPACES: &str = "Tartan has no namespaces: give the workloads a label and select on it";
const NO_HOST_ENDPOINTS: &str =
    "Tartan polices workloads only (host endpoints are not supported yet): remove it";

/// A GlobalNetworkPolicy's spec.
pub fn global_network_policy(spec: &mut Map<String, Value>) -> Result<(), String> {
    only(spec, "tier", &["default"], "tiers are not supported yet: remove it (the default tier)")?;
    unset(spec, "namespaceSelector", NO_NAMESPACES)?;
    unset(spec, "serviceAccountSelector", "Tartan has no service accounts: select on a label")?;
    for mode in ["doNotTrack", "preDNAT", "applyOnForward"] {
        unset(spec, mode, NO_HOST_ENDPOINTS)?;
    }
    // A hint to Calico's felix about where to program the policy; Tartan needs none.
    spec.remove("performanceHints");
    rules(spec)
}

/// A Profile's spec.
pub fn profile(spec: &mut Map<String, Value>) -> Result<(), String> {
    rules(spec)
}

fn rules(spec: &mut Map<String, Value>) -> Result<(), String> {
    for dir in ["ingress", "egress"] {
        let Some(list) = spec.get_mut(dir).and_then(Value::as_array_mut) else { continue };
        for (i, rule) in list.iter_mut().enumerate() {
            let Some(rule) = rule.as_object_mut() else { continue };
            rule_fields(rule)
                .map_err(|e| format!("spec.{dir}[{i}].{}", e.trim_start_matches("spec.")))?;
        }
    }
    Ok(())
}

fn rule_fields(rule: &mut Map<String, Value>) -> Result<(), String> {
    unset(rule, "http", "HTTP matches need Istio; Tartan matches addresses and ports")?;
    for side in ["source", "destination"] {
        let Some(e) = rule.get_mut(side).and_then(Value::as_object_mut) else { continue };
        let fail = |e: String| format!("{side}.{}", e.trim_start_matches("spec."));
        unset(e, "namespaceSelector", NO_NAMESPACES).map_err(fail)?;
        unset(e, "serviceAccounts", "Tartan has no service accounts: select on a label")
            .map_err(fail)?;
        unset(e, "services", "Tartan has no Kubernetes services: match their addresses with nets")
            .map_err(fail)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn convert(spec: Value) -> Result<Value, String> {
        let mut spec = spec;
        let map = spec.as_object_mut().ok_or("not an object")?;
        global_network_policy(map)?;
        Ok(spec)
    }

    #[test]
    fn empty_calico_fields_drop_and_set_ones_say_what_to_do() {
        let spec = convert(json!({"tier": "default", "doNotTrack": false, "namespaceSelector": "",
            "performanceHints": ["AssumeNeededOnEveryNode"], "selector": "all()",
            "ingress": [{"action": "Allow", "source": {"serviceAccounts": {}}}]}))
        .expect("converts");
        assert_eq!(
            spec,
            json!({"selector": "all()", "ingress": [{"action": "Allow", "source": {}}]})
        );
        let e = convert(json!({"tier": "security"})).expect_err("tier");
        assert!(e.contains("tiers are not supported"), "{e}");
        let e = convert(json!({"egress": [{"action": "Allow"}, {"action": "Deny",
            "destination": {"namespaceSelector": "team == 'a'"}}]}))
        .expect_err("namespace");
        assert!(e.starts_with("spec.egress[1].destination.namespaceSelector"), "{e}");
        assert!(convert(json!({"preDNAT": true})).is_err());
    }
}
