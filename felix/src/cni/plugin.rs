//! The plugin process: what `tartan` does when a runtime executes it with `CNI_COMMAND` set.
//! It checks the environment and configuration, answers VERSION itself, and forwards ADD, DEL
//! and CHECK to the local agent over its unix socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use super::protocol::{Command, Request, Response};
use super::types::{CniError, CniResult, DEFAULT_AGENT_SOCKET, NetConf, SUPPORTED_VERSIONS, code};

/// How long an ADD may take at the agent (allocation, veth, routes) before the plugin gives up.
const AGENT_TIMEOUT: Duration = Duration::from_secs(120);

/// What the plugin prints and its exit status.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: String,
    pub success: bool,
}

fn fail(version: &str, e: CniError) -> Outcome {
    let e = CniError {
        cni_version: if version.is_empty() { "1.0.0".into() } else { version.into() },
        ..e
    };
    Outcome { stdout: serde_json::to_string(&e).unwrap_or_default(), success: false }
}

/// Runs the plugin: `env` reads the CNI variables, `stdin` is the network configuration.
pub fn run(env: impl Fn(&str) -> Option<String>, stdin: &[u8]) -> Outcome {
    let command = env("CNI_COMMAND").unwrap_or_default();
    if command == "VERSION" {
        let asked = serde_json::from_slice::<serde_json::Value>(stdin)
            .ok()
            .and_then(|v| v.get("cniVersion").and_then(|v| v.as_str()).map(String::from))
            .unwrap_or_else(|| "1.0.0".into());
        let out = serde_json::json!({"cniVersion": asked, "supportedVersions": SUPPORTED_VERSIONS});
        return Outcome { stdout: out.to_string(), success: true };
    }
    let conf: NetConf = match serde_json::from_slice(stdin) {
        Ok(c) => c,
        Err(e) => {
            return fail(
                "",
                CniError::new(
                    code::DECODE_FAILURE,
                    "cannot decode the network configuration",
                    e.to_string(),
                ),
            );
        }
    };
    let version = conf.cni_version.clone();
    if !SUPPORTED_VERSIONS.contains(&version.as_str()) {
        return fail(
            &version,
            CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!("CNI version {version} is not supported"),
                format!("the tartan plugin speaks {}", SUPPORTED_VERSIONS.join(", ")),
            ),
        );
    }
    let command = match command.as_str() {
        "ADD" => Command::Add,
        "DEL" => Command::Del,
        "CHECK" => Command::Check,
        "" => {
            return fail(&version, CniError::new(code::INVALID_ENV, "CNI_COMMAND is not set", ""));
        }
        other => {
            return fail(
                &version,
                CniError::new(
                    code::INVALID_ENV,
                    format!("unknown CNI_COMMAND {other:?}"),
                    "ADD, DEL, CHECK and VERSION are supported",
                ),
            );
        }
    };
    let mut missing = Vec::new();
    let mut var = |name: &str, needed: bool| {
        let v = env(name).filter(|v| !v.is_empty());
        if v.is_none() && needed {
            missing.push(name.to_string());
        }
        v
    };
    let container_id = var("CNI_CONTAINERID", true);
    let netns = var("CNI_NETNS", command != Command::Del);
    let ifname = var("CNI_IFNAME", true);
    let args = var("CNI_ARGS", false);
    if !missing.is_empty() {
        return fail(
            &version,
            CniError::new(
                code::INVALID_ENV,
                format!("missing {}", missing.join(", ")),
                "a runtime sets these when it executes a CNI plugin",
            ),
        );
    }
    let (Some(container_id), Some(ifname)) = (container_id, ifname) else {
        return fail(
            &version,
            CniError::new(code::INVALID_ENV, "missing CNI_CONTAINERID or CNI_IFNAME", ""),
        );
    };
    if ifname.len() > 15 || ifname.contains(['/', ':', ' ']) || ifname == "." || ifname == ".." {
        return fail(
            &version,
            CniError::new(
                code::INVALID_ENV,
                format!("CNI_IFNAME {ifname:?} is not a valid interface name"),
                "at most 15 characters, no '/', ':' or spaces",
            ),
        );
    }
    let prev_result = match conf.prev_result.clone().map(serde_json::from_value::<CniResult>) {
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => {
            return fail(
                &version,
                CniError::new(code::DECODE_FAILURE, "cannot decode prevResult", e.to_string()),
            );
        }
        None => None,
    };
    if command == Command::Check && prev_result.is_none() {
        return fail(
            &version,
            CniError::new(
                code::INVALID_CONFIG,
                "CHECK needs prevResult",
                "the runtime passes the cached ADD result",
            ),
        );
    }
    let labels = match conf.labels() {
        Ok(l) => l,
        Err(e) => return fail(&version, CniError::new(code::INVALID_CONFIG, e, "")),
    };
    let request = Request {
        labels,
        command,
        network: conf.name.clone(),
        container_id,
        netns: netns.map(PathBuf::from),
        ifname,
        args,
        cni_version: version.clone(),
        mtu: conf.mtu.filter(|m| *m > 0),
        prev_result,
    };
    let socket = conf.agent_socket.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_AGENT_SOCKET));
    match ask_agent(&socket, &request) {
        Ok(Response::Ok { result: Some(result) }) => {
            let out = result.for_version(&version);
            Outcome { stdout: serde_json::to_string(&out).unwrap_or_default(), success: true }
        }
        Ok(Response::Ok { result: None }) => Outcome { stdout: String::new(), success: true },
        Ok(Response::Error(e)) => fail(&version, e),
        Err(e) => fail(&version, e),
    }
}

fn ask_agent(socket: &std::path::Path, request: &Request) -> Result<Response, CniError> {
    let unreachable = |e: std::io::Error| {
        CniError::new(
            code::TRY_AGAIN_LATER,
            format!("cannot reach the tartan agent at {}", socket.display()),
            format!("{e}: is `tartan node` running on this host?"),
        )
    };
    let mut stream = UnixStream::connect(socket).map_err(unreachable)?;
    stream.set_read_timeout(Some(AGENT_TIMEOUT)).map_err(unreachable)?;
    let mut line = serde_json::to_vec(request)
        .map_err(|e| CniError::new(code::IO_FAILURE, "cannot encode the request", e.to_string()))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(unreachable)?;
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).map_err(unreachable)?;
    serde_json::from_str(&answer).map_err(|e| {
        CniError::new(
            code::IO_FAILURE,
            "the agent's answer is not understood",
            format!("{e}: {answer:?}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn version_is_answered_without_the_agent() {
        let out = run(env(&[("CNI_COMMAND", "VERSION")]), br#"{"cniVersion":"0.4.0"}"#);
        assert!(out.success);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
        assert_eq!(v["cniVersion"], "0.4.0");
        assert!(v["supportedVersions"].as_array().is_some_and(|a| a.len() == 4));
    }

    #[test]
    fn missing_variables_and_a_missing_agent_give_the_spec_errors() {
        let conf = br#"{"cniVersion":"1.0.0","name":"net","type":"tartan","agentSocket":"/nonexistent/agent.sock"}"#;
        let out = run(env(&[("CNI_COMMAND", "ADD"), ("CNI_IFNAME", "eth0")]), conf);
        let e: CniError = serde_json::from_str(&out.stdout).expect("error json");
        assert_eq!(e.code, code::INVALID_ENV);
        assert!(e.msg.contains("CNI_CONTAINERID") && e.msg.contains("CNI_NETNS"), "{e}");
        let out = run(
            env(&[
                ("CNI_COMMAND", "ADD"),
                ("CNI_IFNAME", "eth0"),
                ("CNI_CONTAINERID", "c1"),
                ("CNI_NETNS", "/run/netns/c1"),
            ]),
            conf,
        );
        let e: CniError = serde_json::from_str(&out.stdout).expect("error json");
        assert_eq!(e.code, code::TRY_AGAIN_LATER);
        assert!(e.details.contains("tartan node"), "{e}");
        let out = run(env(&[("CNI_COMMAND", "ADD")]), br#"{"cniVersion":"9.9.9","name":"n"}"#);
        assert!(!out.success && out.stdout.contains("\"code\":1"));
        let out = run(env(&[("CNI_COMMAND", "ADD")]), b"not json");
        assert!(!out.success && out.stdout.contains("\"code\":6"));
    }

    #[test]
    fn old_versions_get_ip_versions_in_results() {
        let r = CniResult {
            ips: vec![super::super::types::IpConfig {
                version: None,
                address: "10.0.0.1/32".parse().expect("net"),
                gateway: None,
                interface: Some(1),
            }],
            ..Default::default()
        };
        assert_eq!(r.clone().for_version("0.4.0").ips[0].version.as_deref(), Some("4"));
        assert_eq!(r.for_version("1.0.0").ips[0].version, None);
    }
}
