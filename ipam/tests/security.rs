//! The API as an attacker and a careless client meet it, over real sockets through the real
//! accept loop (`api::listen`): HTTPS with a CA and name checks and a certificate replaced while
//! serving, slow and excess connections, node credentials and what they may not do, secrets
//! that are never read back, and bounded answers to unbounded input.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TempDir, open_async};
use serde_json::{Value, json};
use tartan_ipam::api::listen::{self, ConnStats, Limits};
use tartan_ipam::api::{AppState, app};
use tartan_ipam::client::{Client, ClientError, Method};
use tartan_ipam::tls::ReloadingCert;

const TOKEN: &str = "an-admin-token-of-more-than-32-characters";

/// A CA and what it signs, written as PEM files.
struct Pki {
    ca: PathBuf,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "tartan test CA");
        params.key_usages =
            vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("CA");
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, cert.pem()).expect("write CA");
        Pki { ca, issuer: rcgen::Issuer::new(params, key) }
    }

    /// A server certificate for `names`, written to `<dir>/<file>.pem` and `.key`.
    fn issue(&self, dir: &Path, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).expect("params");
        params.distinguished_name.push(rcgen::DnType::CommonName, file);
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        let (c, k) = (dir.join(format!("{file}.pem")), dir.join(format!("{file}.key")));
        std::fs::write(&c, cert.pem()).expect("write cert");
        std::fs::write(&k, key.serialize_pem()).expect("write key");
        (c, k)
    }
}

/// A server through the real accept loop; stopped when dropped.
struct Served {
    addr: std::net::SocketAddr,
    state: AppState,
    stats: Arc<ConnStats>,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn serve(dir: &TempDir, tls: Option<Arc<ReloadingCert>>, limits: Limits) -> Served {
    let (store, ipam) = open_async(dir).await;
    let state = AppState::new(store, ipam, Some(TOKEN.into()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, rx) = tokio::sync::watch::channel(false);
    let stats = state.0.conns.clone();
    let router = app(state.clone());
    let s = stats.clone();
    tokio::spawn(async move { listen::serve(listener, router, tls, limits, s, rx).await });
    Served { addr, state, stats, _stop: stop }
}

fn pool(name: &str, cidr: &str) -> Value {
    json!({"apiVersion": "tartan/v1", "kind": "IPPool", "metadata": {"name": name}, "spec": {"cidr": cidr}})
}

/// The subject CN of the certificate a TLS server presents.
async fn served_cn(addr: std::net::SocketAddr, ca: &Path) -> String {
    let config = tartan_ipam::tls::client_config(Some(ca), None).expect("client config");
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let tls = connector.connect(name, tcp).await.expect("handshake");
    let der = tls.get_ref().1.peer_certificates().expect("certificates")[0].to_vec();
    // The CN is the only printable run of the subject we set: find it in the DER.
    let text = String::from_utf8_lossy(&der).into_owned();
    ["server-1", "server-2"]
        .iter()
        .find(|cn| text.contains(*cn))
        .map_or(String::new(), |c| c.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_ca_checks_names_and_takes_a_new_certificate_without_a_restart() {
    let dir = TempDir::new("tls");
    let pki = Pki::new(dir.path());
    let (cert, key) = pki.issue(dir.path(), "server-1", &["localhost", "127.0.0.1"]);
    let reloading = ReloadingCert::load(&cert, &key).expect("load");
    let s = serve(&dir, Some(reloading.clone()), Limits::default()).await;
    tokio::spawn(tartan_ipam::api::server::reload_loop(reloading.clone()));
    let port = s.addr.port();

    // Trusting the CA, by address and by name: served.
    for url in [format!("https://127.0.0.1:{port}"), format!("https://localhost:{port}")] {
        let c = Client::with_ca(&url, Some(TOKEN.into()), Some(&pki.ca)).expect("client");
        let _: Value = c.get_json("/v1/ippools").await.expect("served over TLS");
    }
    // Without the CA (the system's CAs do not know it): a TLS error that says what to do.
    let c = Client::with_ca(&format!("https://127.0.0.1:{port}"), None, None).expect("client");
    let err = c.get_json::<Value>("/v1/ippools").await.expect_err("untrusted");
    assert!(matches!(err, ClientError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("--ca-file"), "{err}");
    // A name the certificate does not carry.
    let (other, other_key) = pki.issue(dir.path(), "elsewhere", &["api.example"]);
    let wrong = ReloadingCert::load(&other, &other_key).expect("load");
    let w = serve(&TempDir::new("tls-name"), Some(wrong), Limits::default()).await;
    let c = Client::with_ca(&format!("https://127.0.0.1:{}", w.addr.port()), None, Some(&pki.ca))
        .expect("client");
    let err = c.get_json::<Value>("/v1/ippools").await.expect_err("wrong name");
    assert!(matches!(err, ClientError::Tls { .. }), "{err:?}");
    // Plain HTTP to the HTTPS port gets nothing, and the client hints at https://.
    let c = Client::new(&format!("http://127.0.0.1:{port}"), Some(TOKEN.into())).expect("client");
    let err = c.get_json::<Value>("/v1/ippools").await.expect_err("plain to TLS");
    assert!(err.to_string().contains("https://"), "{err}");
    // A key written before its certificate (a mismatch) is refused, and the old pair keeps
    // serving...
    assert_eq!(served_cn(s.addr, &pki.ca).await, "server-1");
    let (_, new_key) = pki.issue(dir.path(), "server-2-staging", &["localhost"]);
    std::fs::copy(&new_key, &key).expect("replace key");
    assert!(reloading.reload().is_err(), "a key that does not fit its certificate was taken");
    assert_eq!(served_cn(s.addr, &pki.ca).await, "server-1");
    // ...and the whole new pair is taken within seconds of its files changing.
    let (c2, k2) = pki.issue(dir.path(), "server-2", &["localhost", "127.0.0.1"]);
    std::fs::copy(&c2, &cert).expect("replace cert");
    std::fs::copy(&k2, &key).expect("replace key");
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_cn(s.addr, &pki.ca).await != "server-2" {
        assert!(Instant::now() < deadline, "the new certificate was not taken");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reads until EOF or `wait`; whether the server closed the connection.
fn closed_within(mut stream: TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).expect("timeout");
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_excess_connections_are_closed() {
    let dir = TempDir::new("slow");
    let limits = Limits { header_timeout: Duration::from_secs(1), max_connections: 3 };
    let s = serve(&dir, None, limits).await;
    let addr = s.addr;
    let stats = s.stats.clone();
    let open = s.stats.clone();
    tokio::task::spawn_blocking(move || {
        // Half a request, then silence: closed after the header timeout.
        let mut slow = TcpStream::connect(addr).expect("connect");
        slow.write_all(b"GET /v1/ippools HTTP/1.1\r\nHost: x\r\nX-Slow: ").expect("write");
        let started = Instant::now();
        assert!(closed_within(slow, Duration::from_secs(5)), "a slow client stays connected");
        assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
        // Three connections held open: the fourth is closed at once.
        let held: Vec<TcpStream> =
            (0..3).map(|_| TcpStream::connect(addr).expect("connect")).collect();
        let deadline = Instant::now() + Duration::from_secs(5);
        while open.open.load(std::sync::atomic::Ordering::Relaxed) < 3 {
            assert!(Instant::now() < deadline, "the server did not take the three connections");
            std::thread::sleep(Duration::from_millis(10));
        }
        let extra = TcpStream::connect(addr).expect("connect");
        assert!(closed_within(extra, Duration::from_millis(500)), "over the cap but served");
        drop(held);
    })
    .await
    .expect("probe");
    assert!(stats.refused.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    // Once they are gone, a real request is served.
    let c = Client::new(&format!("http://{addr}"), Some(TOKEN.into())).expect("client");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match c.get_json::<Value>("/v1/ippools").await {
            Ok(_) => break,
            Err(e) => assert!(Instant::now() < deadline, "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_credential_writes_only_its_own_node_and_can_be_revoked() {
    let dir = TempDir::new("cred");
    let s = serve(&dir, None, Limits::default()).await;
    let url = format!("http://{}", s.addr);
    let admin = Client::new(&url, Some(TOKEN.into())).expect("client");
    let _: Value = admin
        .call(Method::PUT, "/v1/ippools/p", Some(&pool("p", "10.70.0.0/16")))
        .await
        .expect("pool");
    let issued: Value =
        admin.call(Method::POST, "/v1/credentials/host1", None::<&()>).await.expect("issue");
    let token = issued["token"].as_str().expect("token").to_string();
    assert!(token.starts_with("node.host1."), "{token}");
    let node = Client::new(&url, Some(token.clone())).expect("client");
    let forbidden = |r: Result<Value, ClientError>| {
        let e = r.expect_err("forbidden");
        assert_eq!(e.status().map(|s| s.as_u16()), Some(403), "{e:?}");
    };

    // Its own Node and status, its own endpoints and addresses.
    let me = json!({"apiVersion": "tartan/v1", "kind": "Node", "metadata": {"name": "host1"}, "spec": {}});
    let _: Value = node.call(Method::PUT, "/v1/nodes/host1", Some(&me)).await.expect("own node");
    let alloc: Value = node
        .post_idempotent("/v1/ipam/allocate", &json!({"node": "host1", "handle": "h1", "ipv4": 1}))
        .await
        .expect("own allocation");
    assert_eq!(alloc["ips"].as_array().map(Vec::len), Some(1), "{alloc}");
    let wep = json!({"apiVersion": "tartan/v1", "kind": "WorkloadEndpoint",
        "metadata": {"name": "host1.tap1"}, "spec": {"node": "host1", "containerID": "c1",
        "handle": "h1", "interfaceName": "tap1", "ipNetworks": [alloc["ips"][0].clone()]}});
    let _: Value = node
        .call(Method::PUT, "/v1/workloadendpoints/host1.tap1", Some(&wep))
        .await
        .expect("own endpoint");
    let _: Value = node.get_json("/v1/ippools").await.expect("reads");

    // Nothing of anyone else's, and no fabric-wide settings.
    let other = json!({"apiVersion": "tartan/v1", "kind": "Node", "metadata": {"name": "host2"}, "spec": {}});
    forbidden(node.call(Method::PUT, "/v1/nodes/host2", Some(&other)).await);
    forbidden(node.call(Method::DELETE, "/v1/nodes/host1", None::<&()>).await);
    forbidden(node.call(Method::PUT, "/v1/ippools/q", Some(&pool("q", "10.71.0.0/16"))).await);
    forbidden(
        node.post_idempotent(
            "/v1/ipam/allocate",
            &json!({"node": "host2", "handle": "x", "ipv4": 1}),
        )
        .await,
    );
    let mut theirs = wep.clone();
    theirs["spec"]["node"] = "host2".into();
    forbidden(node.call(Method::PUT, "/v1/workloadendpoints/host1.tap1", Some(&theirs)).await);
    forbidden(node.call(Method::PUT, "/v1/workloadendpoints/host2.tap1", Some(&theirs)).await);
    let _: Value = admin
        .post_idempotent("/v1/ipam/allocate", &json!({"node": "host2", "handle": "h2", "ipv4": 1}))
        .await
        .expect("admin allocates for host2");
    forbidden(node.post_idempotent("/v1/ipam/release", &json!({"handle": "h2"})).await);
    forbidden(node.call(Method::POST, "/v1/ipam/gc", None::<&()>).await);
    forbidden(node.get_json("/v1/nodecredentials").await);
    forbidden(node.call(Method::POST, "/v1/credentials/host1", None::<&()>).await);
    let (status, _) =
        node.send(Method::GET, "/v1/watch?kinds=nodecredentials", None, &[]).await.expect("answer");
    assert_eq!(status.as_u16(), 403);
    // Its own release works.
    let _: Value =
        node.post_idempotent("/v1/ipam/release", &json!({"handle": "h1"})).await.expect("release");
    // A credential cannot be written as a resource, only issued.
    let fake = json!({"apiVersion": "tartan/v1", "kind": "NodeCredential", "metadata": {"name": "host9"},
        "spec": {"node": "host9", "tokenSha256": "0".repeat(64)}});
    let e = admin
        .call::<Value>(Method::PUT, "/v1/nodecredentials/host9", Some(&fake))
        .await
        .expect_err("issued only");
    assert_eq!(e.code(), Some("read_only"), "{e:?}");

    // Re-issued: the old token stops working. Revoked: the new one too.
    let again: Value =
        admin.call(Method::POST, "/v1/credentials/host1", None::<&()>).await.expect("reissue");
    let e = node.get_json::<Value>("/v1/ippools").await.expect_err("old token");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(401));
    let renewed = Client::new(&url, again["token"].as_str().map(String::from)).expect("client");
    let _: Value = renewed.get_json("/v1/ippools").await.expect("new token");
    let _: Value =
        admin.call(Method::DELETE, "/v1/nodecredentials/host1", None::<&()>).await.expect("revoke");
    let e = renewed.get_json::<Value>("/v1/ippools").await.expect_err("revoked");
    assert_eq!(e.status().map(|s| s.as_u16()), Some(401));
    // A forged token for a node without a credential, or with a wrong secret.
    for forged in ["node.host1.00", "node.host2.abc", "node..x", "node.", &format!("{TOKEN}x")] {
        let c = Client::new(&url, Some(forged.into())).expect("client");
        let e = c.get_json::<Value>("/v1/ippools").await.expect_err("forged");
        assert_eq!(e.status().map(|s| s.as_u16()), Some(401), "{forged}");
    }
    drop(s.state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_password_is_never_read_back_but_stays_usable() {
    let dir = TempDir::new("secret");
    let s = serve(&dir, None, Limits::default()).await;
    let url = format!("http://{}", s.addr);
    let admin = Client::new(&url, Some(TOKEN.into())).expect("client");
    let peer = json!({"apiVersion": "tartan/v1", "kind": "BGPPeer", "metadata": {"name": "tor"},
        "spec": {"peerIP": "192.0.2.1", "asNumber": 65000, "password": {"value": "s3cret-md5"}}});
    let (_, watch_from) = admin.send(Method::GET, "/v1/ippools", None, &[]).await.expect("list");
    let since = serde_json::from_slice::<Value>(&watch_from).expect("json")["revision"]
        .as_u64()
        .expect("rev");
    let written: Value =
        admin.call(Method::PUT, "/v1/bgppeers/tor", Some(&peer)).await.expect("put");
    let shown: Value = admin.get_json("/v1/bgppeers/tor").await.expect("get");
    let listed: Value = admin.get_json("/v1/bgppeers").await.expect("list");
    for answer in [&written, &shown, &listed] {
        assert!(!answer.to_string().contains("s3cret-md5"), "{answer}");
        assert!(answer.to_string().contains("(redacted)"), "{answer}");
    }
    // The watch replays the write without the secret.
    let (status, body) = watch_briefly(&url, since).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"tor\"") && !body.contains("s3cret-md5"), "{body}");
    // Applied back as shown: the password stays; then replaced.
    let mut back = shown.clone();
    back["metadata"]["labels"] = json!({"edited": "yes"});
    let _: Value =
        admin.call(Method::PUT, "/v1/bgppeers/tor", Some(&back)).await.expect("apply back");
    let issued: Value =
        admin.call(Method::POST, "/v1/credentials/host1", None::<&()>).await.expect("issue");
    let node = Client::new(&url, issued["token"].as_str().map(String::from)).expect("client");
    let secret: Value = node.get_json("/v1/bgppeers/tor/password").await.expect("agent reads it");
    assert_eq!(secret["value"], "s3cret-md5");
    // The marker with nothing stored is refused.
    let mut orphan = shown.clone();
    orphan["metadata"] = json!({"name": "tor2"});
    let e = admin
        .call::<Value>(Method::PUT, "/v1/bgppeers/tor2", Some(&orphan))
        .await
        .expect_err("orphan");
    assert!(e.to_string().contains("has none"), "{e}");
}

/// A watch read for a moment: the status and what arrived.
async fn watch_briefly(url: &str, since: u64) -> (u16, String) {
    let addr = url.trim_start_matches("http://").to_string();
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(&addr).expect("connect");
        write!(
            s,
            "GET /v1/watch?since={since} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
        )
        .expect("write");
        s.set_read_timeout(Some(Duration::from_millis(800))).expect("timeout");
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        (status, text)
    })
    .await
    .expect("watch")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_answers_to_unbounded_or_impossible_input() {
    let dir = TempDir::new("bounds");
    let s = serve(&dir, None, Limits::default()).await;
    let url = format!("http://{}", s.addr);
    let admin = Client::new(&url, Some(TOKEN.into())).expect("client");
    // A 100,000-character name: refused with a short answer.
    let name = "x".repeat(100_000);
    let body = serde_json::to_vec(&pool(&name, "10.80.0.0/16")).expect("json");
    let (status, answer) =
        admin.send(Method::POST, "/v1/ippools", Some(body), &[]).await.expect("answer");
    assert_eq!(status.as_u16(), 400);
    assert!(answer.len() < 2048, "{} bytes echoed back", answer.len());
    // Reserved space is no pool.
    for cidr in ["0.0.0.0/8", "240.0.0.0/4", "255.255.255.255/32"] {
        let e = admin
            .call::<Value>(Method::PUT, "/v1/ippools/r", Some(&pool("r", cidr)))
            .await
            .expect_err(cidr);
        assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{cidr}: {e}");
    }
    // Allocation attributes and handles are bounded: 10,000 attributes (650 KB, under the
    // body limit) and a handle with a NUL are refused, and nothing is allocated.
    let _: Value = admin
        .call(Method::PUT, "/v1/ippools/p", Some(&pool("p", "10.81.0.0/16")))
        .await
        .expect("pool");
    let many: serde_json::Map<String, Value> =
        (0..10_000).map(|i| (format!("k{i}"), Value::String("v".repeat(50)))).collect();
    for body in [
        json!({"node": "n1", "handle": "a", "ipv4": 1, "attributes": many}),
        json!({"node": "n1", "handle": "bad\u{0}handle", "ipv4": 1}),
    ] {
        let e =
            admin.post_idempotent::<Value>("/v1/ipam/allocate", &body).await.expect_err("bounded");
        assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{e}");
    }
    let usage: Value = admin.get_json("/v1/ipam/usage").await.expect("usage");
    assert_eq!(usage["pools"][0]["used"], 0, "{usage}");
    // A watch from a revision the store has not reached: 410, not silence.
    let (status, body) =
        admin.send(Method::GET, "/v1/watch?since=99999999999999", None, &[]).await.expect("answer");
    assert_eq!(status.as_u16(), 410, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("ahead of the datastore"));
}
