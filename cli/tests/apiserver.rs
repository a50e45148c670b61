//! `tartan apiserver` as an operator starts it, through the real binaries: token files that are
//! too short or readable by others are refused with the fix; HTTPS with `--tls-cert` /
//! `--tls-key`, reached by `tartanctl --ca-file`; a certificate replaced on SIGHUP; JSON logs
//! with an audit line per write and per refused credential, and no colour codes in a file.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Out;

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("tartan-apiserver-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server process, killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn apiserver(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tartan"));
    cmd.arg("apiserver").args(args).stdin(Stdio::null());
    cmd
}

fn tartanctl(args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tartanctl"));
    cmd.args(args)
        .env_remove("TARTAN_API")
        .env_remove("TARTAN_TOKEN_FILE")
        .env_remove("TARTAN_CA_FILE")
        .env_remove("TARTANCTL_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Out::from(cmd.output().expect("run tartanctl"))
}

#[test]
fn weak_or_exposed_token_files_are_refused_with_the_fix() {
    let dir = TempDir::new("tokens");
    let data = dir.0.join("data");
    let short = dir.0.join("short");
    std::fs::write(&short, "x\n").expect("write");
    std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = Out::from(
        apiserver(&["--listen", "127.0.0.1:0", "--token-file"])
            .arg(&short)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .expect("run"),
    );
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.stderr.contains("has 1 characters; use at least 32"), "{out:#?}");
    let open = dir.0.join("open");
    std::fs::write(&open, "y".repeat(64)).expect("write");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = Out::from(
        apiserver(&["--listen", "127.0.0.1:0", "--token-file"])
            .arg(&open)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .expect("run"),
    );
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(out.stderr.contains("readable by others (mode 644)"), "{out:#?}");
    assert!(out.stderr.contains("chmod 600"), "{out:#?}");
}

/// A test CA.
struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: PathBuf,
}

fn ca(dir: &Path) -> Ca {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(rcgen::DnType::CommonName, "test CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("CA");
    let pem = dir.join("ca.pem");
    std::fs::write(&pem, cert.pem()).expect("write");
    Ca { issuer: rcgen::Issuer::new(params, key), pem }
}

/// A server certificate for 127.0.0.1 and localhost, moved into `server.pem` / `server.key`
/// whole (as a deploy tool does).
fn server_cert(ca: &Ca, dir: &Path, cn: &str) -> (PathBuf, PathBuf) {
    let names = vec!["127.0.0.1".to_string(), "localhost".into()];
    let mut params = rcgen::CertificateParams::new(names).expect("params");
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca.issuer).expect("sign");
    let (c, k) = (dir.join("server.pem"), dir.join("server.key"));
    std::fs::write(dir.join("new.pem"), cert.pem()).expect("write");
    std::fs::write(dir.join("new.key"), key.serialize_pem()).expect("write");
    std::fs::rename(dir.join("new.key"), &k).expect("rename");
    std::fs::rename(dir.join("new.pem"), &c).expect("rename");
    (c, k)
}

#[test]
fn https_json_logs_and_a_certificate_replaced_on_sighup() {
    let dir = TempDir::new("tls");
    let authority = ca(&dir.0);
    let (cert, key) = server_cert(&authority, &dir.0, "first");
    let ca = authority.pem.clone();
    let port = free_port();
    let log = dir.0.join("api.log");
    let data = dir.0.join("data");
    let server = Running(
        apiserver(&["--log-format", "json", "--listen", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(&data)
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start"),
    );
    let token = data.join("token");
    let api = format!("https://127.0.0.1:{port}");
    let (token_s, ca_s) = (token.to_string_lossy().into_owned(), ca.to_string_lossy().into_owned());
    let env =
        [("TARTAN_API", api.as_str()), ("TARTAN_TOKEN_FILE", &token_s), ("TARTAN_CA_FILE", &ca_s)];
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = tartanctl(&["get", "pools"], &env);
        if out.code == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{out:#?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // A write over HTTPS, and a refused token.
    let pool = dir.0.join("pool.yaml");
    std::fs::write(
        &pool,
        "apiVersion: tartan/v1\nkind: IPPool\nmetadata: {name: p}\nspec: {cidr: 10.90.0.0/16}\n",
    )
    .expect("write");
    tartanctl(&["apply", "-f", &pool.to_string_lossy()], &env).ok();
    let wrong = dir.0.join("wrong");
    std::fs::write(&wrong, "w".repeat(40)).expect("write");
    let wrong_s = wrong.to_string_lossy().into_owned();
    let bad =
        [("TARTAN_API", api.as_str()), ("TARTAN_TOKEN_FILE", &wrong_s), ("TARTAN_CA_FILE", &ca_s)];
    assert_eq!(tartanctl(&["get", "pools"], &bad).code, 1);
    // Without the CA: refused, with the way to fix it.
    let no_ca = tartanctl(&["get", "pools"], &env[..2]);
    assert!(no_ca.stderr.contains("--ca-file"), "{no_ca:#?}");

    // A new pair moved into place, then SIGHUP: the server presents it (the old CA still
    // signs it, so clients see no change but the certificate's name).
    server_cert(&authority, &dir.0, "second");
    let pid = server.0.id().to_string();
    assert!(Command::new("kill").args(["-HUP", &pid]).status().expect("kill").success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        // A SIGHUP always reloads and says so, even if the file watch got there first.
        if text.contains("TLS certificate reloaded (SIGHUP)") {
            break;
        }
        assert!(Instant::now() < deadline, "no reload logged: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    tartanctl(&["get", "pools"], &env).ok();

    // The log: JSON lines, no colour codes, an audit line for the write and the refusal.
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(!text.contains('\u{1b}'), "colour codes in a file: {text}");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON log line"))
        .collect();
    assert!(
        lines.iter().any(|l| l["message"] == "request"
            && l["who"] == "admin"
            && l["method"] == "PUT"
            && l["path"] == "/v1/ippools/p"),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l["message"].as_str().is_some_and(|m| m.starts_with("refused"))),
        "{text}"
    );
}
