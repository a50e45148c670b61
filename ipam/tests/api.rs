//! The API through the router (`oneshot`) and over a real socket with the client: auth,
//! resource CRUD with optimistic concurrency, JSON errors for bad input, IPAM endpoints,
//! watch, check → release from the report, leak collection, metrics and OpenAPI.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::{Backend, TempDir, open_async};
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::{Value, json};
use tartan_ipam::api::{AppState, app};
use tartan_ipam::client::{Client, ClientError};
use tartan_ipam::ipam::Ipam;
use tartan_ipam::store::Store;
use tower::ServiceExt;

const TOKEN: &str = "secret-token";

async fn state(dir: &TempDir) -> (Arc<Store>, AppState) {
    let (store, ipam): (Arc<Store>, Ipam) = open_async(dir).await;
    (store.clone(), AppState::new(store, ipam, Some(TOKEN.into())))
}

async fn oneshot(state: &AppState, req: Request<Body>) -> (StatusCode, Value) {
    let resp = app(state.clone()).oneshot(req).await.expect("router answers");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into())),
    )
}

fn req(method: &str, uri: &str, body: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .expect("request")
}

async fn serve(state: AppState) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app(state)).await });
    format!("http://{addr}")
}

fn pool(name: &str, cidr: &str) -> Value {
    json!({"apiVersion": "tartan/v1", "kind": "IPPool", "metadata": {"name": name}, "spec": {"cidr": cidr}})
}

both! {
    async fn bad_input_gets_json_errors_with_the_right_status_never_a_500(backend: Backend) {
    let dir = TempDir::with("api-errors", backend);
    let (_store, st) = state(&dir).await;
    let no_auth = Request::builder().uri("/v1/ippools").body(Body::empty()).expect("req");
    let (s, v) = oneshot(&st, no_auth).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("unauthorized")));
    let health = Request::builder().uri("/healthz").body(Body::empty()).expect("req");
    assert_eq!(oneshot(&st, health).await.0, StatusCode::OK, "healthz needs no token");

    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (req("POST", "/v1/ippools", "{not json"), StatusCode::BAD_REQUEST, "invalid"),
        (
            req("POST", "/v1/ippools", &pool("p", "10.65.0.1/16").to_string()),
            StatusCode::BAD_REQUEST,
            "invalid",
        ),
        (
            req(
                "POST",
                "/v1/ippools",
                r#"{"apiVersion":"tartan/v1","kind":"IPPool","metadata":{"name":"p"},"spec":{"cidr":"10.65.0.0/16","bogus":1}}"#,
            ),
            StatusCode::BAD_REQUEST,
            "invalid",
        ),
        (req("GET", "/v1/widgets", ""), StatusCode::NOT_FOUND, "not_found"),
        (req("GET", "/nowhere", ""), StatusCode::NOT_FOUND, "not_found"),
        (req("DELETE", "/v1/ipam/usage", ""), StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        (
            req("PUT", "/v1/blocks/x", &pool("x", "10.0.0.0/8").to_string()),
            StatusCode::METHOD_NOT_ALLOWED,
            "read_only",
        ),
        (
            req("GET", "/v1/ippools?labelSelector=a%20%3D%20b", ""),
            StatusCode::BAD_REQUEST,
            "invalid",
        ),
        (req("GET", "/v1/ippools?bogus=1", ""), StatusCode::BAD_REQUEST, "invalid"),
        (
            req("POST", "/v1/ipam/allocate", r#"{"node":"n1","handle":"h","ipv4":"one"}"#),
            StatusCode::BAD_REQUEST,
            "invalid",
        ),
        (
            req("POST", "/v1/ipam/allocate", r#"{"node":"n1","handle":"h","ipv4":1}"#),
            StatusCode::CONFLICT,
            "no_pool",
        ),
        (req("POST", "/v1/ipam/release", r#"{}"#), StatusCode::BAD_REQUEST, "invalid"),
        (req("GET", "/v1/ipam/ips/not-an-ip", ""), StatusCode::BAD_REQUEST, "invalid"),
        (req("GET", "/v1/watch?since=abc", ""), StatusCode::BAD_REQUEST, "invalid"),
        (req("DELETE", "/v1/nodes/ghost", ""), StatusCode::NOT_FOUND, "not_found"),
        (req("PATCH", "/v1/nodes/ghost", "{}"), StatusCode::NOT_FOUND, "not_found"),
        (req("PATCH", "/v1/nodes/ghost", "[]"), StatusCode::BAD_REQUEST, "invalid"),
    ];
    for (request, status, code) in cases {
        let what = format!("{} {}", request.method(), request.uri());
        let (s, v) = oneshot(&st, request).await;
        assert_eq!(s, status, "{what}: {v}");
        assert_eq!(v["error"], code, "{what}: {v}");
        assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {v}");
    }
    let xml = Request::builder()
        .method("POST")
        .uri("/v1/ippools")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("content-type", "application/xml")
        .body(Body::from("<pool/>"))
        .expect("req");
    assert_eq!(oneshot(&st, xml).await.0, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = req("POST", "/v1/ippools", &"x".repeat(2 << 20));
    let (s, v) = oneshot(&st, huge).await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::PAYLOAD_TOO_LARGE, Some("too_large")));
    let (_, v) = oneshot(&st, req("POST", "/v1/ippools", r#"{"apiVersion":"tartan/v1","kind":"IPPool","metadata":{"name":"p"},"spec":{"cidr":"10.65.0.0/16","bogus":1}}"#)).await;
    assert!(v["message"].as_str().unwrap_or("").contains("unknown field `bogus`"), "{v}");
}
}

both! {
    async fn resources_round_trip_with_optimistic_concurrency_over_a_real_socket(backend: Backend) {
    let dir = TempDir::with("api-crud", backend);
    let (_store, st) = state(&dir).await;
    let url = serve(st).await;
    let client = Client::new(&url, Some(TOKEN.into())).expect("client");
    let created: Value = client
        .call(Method::POST, "/v1/ippools", Some(&pool("a", "10.65.0.0/16")))
        .await
        .expect("create");
    assert_eq!(created["spec"]["blockSize"], 26, "defaults written out");
    let rv = created["metadata"]["resourceVersion"].as_str().expect("rv").to_string();
    let again =
        client.call::<Value>(Method::POST, "/v1/ippools", Some(&pool("a", "10.65.0.0/16"))).await;
    assert_eq!(again.expect_err("exists").code(), Some("already_exists"));
    let overlap =
        client.call::<Value>(Method::PUT, "/v1/ippools/b", Some(&pool("b", "10.65.3.0/24"))).await;
    assert!(overlap.expect_err("overlap").to_string().contains("overlaps pool \"a\""));

    let mut update = created.clone();
    update["spec"]["natOutgoing"] = json!(true);
    let updated: Value =
        client.call(Method::PUT, "/v1/ippools/a", Some(&update)).await.expect("update with rv");
    assert_eq!(updated["spec"]["natOutgoing"], true);
    let stale = client.call::<Value>(Method::PUT, "/v1/ippools/a", Some(&update)).await;
    let stale = stale.expect_err("stale resourceVersion");
    assert_eq!((stale.status(), stale.code()), (Some(StatusCode::CONFLICT), Some("conflict")));
    assert!(stale.to_string().contains(&format!("resourceVersion {rv}")), "{stale}");

    let patched: Value = client
        .call(
            Method::PATCH,
            "/v1/ippools/a",
            Some(&json!({"metadata": {"labels": {"tier": "web"}}, "spec": {"disabled": true}})),
        )
        .await
        .expect("patch");
    assert_eq!(
        (patched["spec"]["disabled"].clone(), patched["spec"]["natOutgoing"].clone()),
        (json!(true), json!(true))
    );
    let immut = client
        .call::<Value>(Method::PATCH, "/v1/ippools/a", Some(&json!({"spec": {"blockSize": 24}})))
        .await;
    assert!(immut.expect_err("immutable").to_string().contains("blockSize cannot change"));

    client
        .call::<Value>(Method::PUT, "/v1/ippools/b", Some(&pool("b", "10.66.0.0/16")))
        .await
        .expect("b");
    let web: Value =
        client.get_json("/v1/ippools?labelSelector=tier%20%3D%3D%20'web'").await.expect("list");
    assert_eq!(web["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(web["kind"], "IPPoolList");
    let replace_missing = client
        .call_with::<Value>(
            Method::PUT,
            "/v1/ippools/c",
            Some(&pool("c", "10.67.0.0/16")),
            &[("if-match", "*")],
        )
        .await;
    assert_eq!(replace_missing.expect_err("replace only").code(), Some("not_found"));
    let del =
        client.call::<Value>(Method::DELETE, "/v1/ippools/b?resourceVersion=1", None::<&()>).await;
    assert_eq!(del.expect_err("guarded delete").code(), Some("conflict"));
    client.call::<Value>(Method::DELETE, "/v1/ippools/b", None::<&()>).await.expect("delete");

    let bad = Client::new(&url, Some("wrong".into())).expect("client");
    assert_eq!(
        bad.get_json::<Value>("/v1/ippools").await.expect_err("401").code(),
        Some("unauthorized")
    );
    let down = Client::new("http://127.0.0.1:1", None).expect("client");
    let err = down.get_json::<Value>("/v1/ippools").await.expect_err("down");
    assert!(matches!(err, ClientError::Unreachable { .. }));
    assert!(err.to_string().contains("is `tartan apiserver` running?"), "{err}");
}
}

both! {
    async fn watch_streams_changes_from_a_revision_including_block_claims(backend: Backend) {
    let dir = TempDir::with("api-watch", backend);
    let (_store, st) = state(&dir).await;
    let url = serve(st).await;
    let client = Client::new(&url, Some(TOKEN.into())).expect("client");
    client
        .call::<Value>(Method::PUT, "/v1/ippools/a", Some(&pool("a", "10.65.0.0/16")))
        .await
        .expect("pool");
    let list: Value = client.get_json("/v1/ippools").await.expect("list");
    let since = list["revision"].as_u64().expect("revision");
    let mut watch = client.watch(since, "").await.expect("watch");
    assert_eq!(watch.next().await.expect("start")["type"], "BOOKMARK");
    let node =
        json!({"apiVersion": "tartan/v1", "kind": "Node", "metadata": {"name": "n1"}, "spec": {}});
    client.call::<Value>(Method::PUT, "/v1/nodes/n1", Some(&node)).await.expect("node");
    let ev = watch.next().await.expect("event");
    assert_eq!((ev["type"].as_str(), ev["object"]["kind"].as_str()), (Some("ADDED"), Some("Node")));
    client
        .call::<Value>(
            Method::POST,
            "/v1/ipam/allocate",
            Some(&json!({"node": "n1", "handle": "h", "ipv4": 1})),
        )
        .await
        .expect("allocate");
    // sled claims in two steps (pending, then confirmed); etcd in one transaction.
    let expected: &[&str] =
        if backend == Backend::Sled { &["pending", "confirmed"] } else { &["confirmed"] };
    let mut states = Vec::new();
    while states.len() < expected.len() {
        let ev = watch.next().await.expect("affinity event");
        assert_eq!(ev["object"]["kind"], "BlockAffinity");
        states.push(ev["object"]["spec"]["state"].as_str().unwrap_or("").to_string());
    }
    assert_eq!(states, expected);
    // From the start, filtered to pools only.
    let mut pools_only = client.watch(0, "ippools").await.expect("watch");
    pools_only.next().await.expect("bookmark");
    let first = pools_only.next().await.expect("pool event");
    assert_eq!(first["object"]["metadata"]["name"], "a");
}
}

both! {
    async fn check_finds_a_leak_and_release_from_its_report_fixes_it_without_touching_reused_addresses(backend: Backend) {
    let dir = TempDir::with("api-check", backend);
    let (_store, st) = state(&dir).await;
    let url = serve(st).await;
    let c = Client::new(&url, Some(TOKEN.into())).expect("client");
    c.call::<Value>(
        Method::PUT,
        "/v1/ippools/a",
        Some(&json!({"apiVersion": "tartan/v1", "kind": "IPPool",
        "metadata": {"name": "a"}, "spec": {"cidr": "10.65.0.0/28", "blockSize": 28}})),
    )
    .await
    .expect("pool");
    c.call::<Value>(
        Method::PUT,
        "/v1/nodes/n1",
        Some(&json!({"apiVersion": "tartan/v1", "kind": "Node", "metadata": {"name": "n1"}})),
    )
    .await
    .expect("node");
    let alloc = |h: &str| json!({"node": "n1", "handle": h, "ipv4": 1});
    let used: Value =
        c.call(Method::POST, "/v1/ipam/allocate", Some(&alloc("net.used"))).await.expect("used");
    let leaked: Value = c
        .call(Method::POST, "/v1/ipam/allocate", Some(&alloc("net.leaked")))
        .await
        .expect("leaked");
    let wep = json!({"apiVersion": "tartan/v1", "kind": "WorkloadEndpoint", "metadata": {"name": "n1-used"},
        "spec": {"node": "n1", "containerID": "used", "handle": "net.used", "interfaceName": "tt0123456789ab", "ipNetworks": used["ips"]}});
    c.call::<Value>(Method::PUT, "/v1/workloadendpoints/n1-used", Some(&wep)).await.expect("wep");
    let report: Value = c.call(Method::POST, "/v1/ipam/check", None::<&()>).await.expect("check");
    let problems = report["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 1, "{report}");
    assert_eq!(problems[0]["kind"], "allocatedNotInUse");
    assert_eq!(
        format!("{}/32", problems[0]["ip"].as_str().unwrap_or("")),
        leaked["ips"][0].as_str().unwrap_or("-")
    );

    // Release with the report's sequence number: freed. A second time: already free.
    let item = json!({"ips": [{"ip": problems[0]["ip"], "sequence": problems[0]["sequence"]}]});
    let out: Value = c.call(Method::POST, "/v1/ipam/release", Some(&item)).await.expect("release");
    assert_eq!(out["released"].as_array().map(Vec::len), Some(1), "{out}");
    let out: Value =
        c.call(Method::POST, "/v1/ipam/release", Some(&item)).await.expect("idempotent");
    assert_eq!(out["notAllocated"].as_array().map(Vec::len), Some(1), "{out}");
    // Fill the block (FIFO: the released address comes last) so it is handed out again; the
    // old report must not free it.
    for i in 0..15 {
        c.call::<Value>(Method::POST, "/v1/ipam/allocate", Some(&alloc(&format!("net.f{i}"))))
            .await
            .expect("fill");
    }
    let out: Value = c.call(Method::POST, "/v1/ipam/release", Some(&item)).await.expect("stale");
    assert_eq!(out["skipped"].as_array().map(Vec::len), Some(1), "{out}");
    let usage: Value = c.get_json("/v1/ipam/usage").await.expect("usage");
    assert_eq!(usage["pools"][0]["used"], 16);
    let who: Value = c
        .get_json(&format!("/v1/ipam/ips/{}", problems[0]["ip"].as_str().unwrap_or("")))
        .await
        .expect("lookup");
    assert_eq!(who["handle"], "net.f14");
}
}

both! {
    async fn leak_collection_releases_after_the_grace_period_and_keeps_a_nodes_last_block(backend: Backend) {
    let dir = TempDir::with("api-gc", backend);
    let (store, st) = state(&dir).await;
    // The IPAM's calls block (on etcd, a round trip): off the async workers.
    tokio::task::block_in_place(|| {
    let ipam = &st.0.ipam;
    common::put(
        &store,
        tartan_ipam::resources::Kind::IpPool,
        "a",
        json!({"cidr": "10.65.0.0/26", "blockSize": 29}),
    );
    common::put(
        &store,
        tartan_ipam::resources::Kind::IpamConfig,
        "default",
        json!({"leakGracePeriodSeconds": 60}),
    );
    common::nodes(&store, 1);
    let req = |node: &str, h: &str, n: u32| tartan_ipam::ipam::allocate::AllocateRequest {
        node: node.into(),
        handle: h.into(),
        ipv4: n,
        ..Default::default()
    };
    ipam.allocate(&req("n0", "keep", 8)).expect("fills a block");
    ipam.allocate(&req("n0", "spill", 1)).expect("second block");
    ipam.allocate(&req("gone", "ghost", 2)).expect("node never registered");
    let mut gc = tartan_ipam::ipam::gc::GcState::default();
    let now = tartan_ipam::time::now_unix();
    let r = ipam.collect_garbage(&mut gc, now).expect("round");
    assert!(r.released.is_empty(), "fresh allocations wait out the grace period");
    let r = ipam.collect_garbage(&mut gc, now + 61).expect("round");
    assert!(r.released.is_empty(), "first seen leaked now; confirmed a grace period later");
    let r = ipam.collect_garbage(&mut gc, now + 122).expect("round");
    assert_eq!(r.released.len(), 2, "the unregistered node's addresses: {r:?}");
    ipam.release(&tartan_ipam::ipam::release::ReleaseRequest {
        handle: Some("spill".into()),
        ips: vec![],
    })
    .expect("release");
    // The unregistered node's block has been empty since +122; spill's since now.
    let r = ipam.collect_garbage(&mut gc, now + 200).expect("round");
    assert_eq!(r.blocks_released.len(), 1, "the gone node's block: {r:?}");
    let r = ipam.collect_garbage(&mut gc, now + 230).expect("round");
    assert!(r.blocks_released.is_empty(), "spill's block waits out the grace period: {r:?}");
    let r = ipam.collect_garbage(&mut gc, now + 300).expect("round");
    assert_eq!(r.blocks_released.len(), 1, "spill's block: {r:?}");
    assert_eq!(ipam.raw_blocks().expect("blocks").len(), 1, "n0 keeps its last block");
    });
}
}

both! {
    async fn metrics_and_openapi_describe_the_server(backend: Backend) {
    let dir = TempDir::with("api-meta", backend);
    let (_store, st) = state(&dir).await;
    let (s, doc) = oneshot(&st, req("GET", "/openapi.json", "")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.0.3");
    assert!(doc["paths"]["/v1/ippools/{name}"]["put"].is_object());
    assert!(doc["paths"]["/v1/blocks/{name}"]["put"].is_null(), "views are read-only");
    oneshot(&st, req("POST", "/v1/ippools", &pool("a", "10.65.0.0/24").to_string())).await;
    let (s, text) = oneshot(&st, req("GET", "/metrics", "")).await;
    assert_eq!(s, StatusCode::OK);
    let text = text.as_str().unwrap_or("").to_string();
    assert!(text.contains("tartan_ipam_pool_size{pool=\"a\",cidr=\"10.65.0.0/24\"} 256"), "{text}");
    assert!(
        text.contains(
            "tartan_api_requests_total{method=\"POST\",route=\"/v1/{plural}\",status=\"201\"} 1"
        ),
        "{text}"
    );
}
}
