//! The API client over real sockets: typed calls against a real API server, failover between
//! several servers, calls side by side on the pool, and no POST sent twice.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use common::{TempDir, open};
use serde_json::{Value, json};
use tartan_ipam::api::{AppState, app};
use tartan_ipam::client::{Client, Method};
use tartan_ipam::resources::IpPoolSpec;

const TOKEN: &str = "secret-token";

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

async fn api_server(dir: &TempDir) -> String {
    let (store, ipam) = open(dir);
    serve(app(AppState::new(store, ipam, Some(TOKEN.into())))).await
}

/// An address where nothing listens: bound, then closed.
async fn dead_address() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}")
}

#[tokio::test]
async fn typed_calls_round_trip_and_selectors_are_encoded() {
    let dir = TempDir::new("client-typed");
    let url = api_server(&dir).await;
    let client = Client::new(&url, Some(TOKEN.into())).expect("client");
    for (name, cidr, tier) in [("web", "10.65.0.0/16", "web"), ("db", "10.66.0.0/16", "db")] {
        let pool = json!({"apiVersion": "tartan/v1", "kind": "IPPool",
            "metadata": {"name": name, "labels": {"tier": tier}}, "spec": {"cidr": cidr}});
        let _: Value = client.call(Method::POST, "/v1/ippools", Some(&pool)).await.expect("create");
    }
    let web = client.get::<IpPoolSpec>("web").await.expect("get");
    assert_eq!(web.spec.cidr.to_string(), "10.65.0.0/16");
    let listed = client.list::<IpPoolSpec>(Some("tier == 'web'")).await.expect("list");
    let names: Vec<&str> = listed.items.iter().map(|p| p.metadata.name.as_str()).collect();
    assert_eq!(names, ["web"]);
    assert!(listed.revision > 0);
    assert!(client.get_optional::<IpPoolSpec>("nope").await.expect("get").is_none());
    client.delete::<IpPoolSpec>("db").await.expect("delete");
    assert_eq!(client.list::<IpPoolSpec>(None).await.expect("list").items.len(), 1);
}

#[tokio::test]
async fn a_dead_server_is_skipped_and_the_next_one_keeps_the_calls() {
    let dir = TempDir::new("client-failover");
    let live = api_server(&dir).await;
    let dead = dead_address().await;
    let client = Client::new(&format!("{dead},{live}"), Some(TOKEN.into())).expect("client");
    assert_eq!(client.url(), dead);
    let pools = client.list::<IpPoolSpec>(None).await.expect("the live server answers");
    assert!(pools.items.is_empty());
    assert_eq!(client.url(), live, "calls now start at the server that answered");
    // A POST that could not even connect is safe to send elsewhere too.
    let client = Client::new(&format!("{dead},{live}"), Some(TOKEN.into())).expect("client");
    let pool = json!({"apiVersion": "tartan/v1", "kind": "IPPool",
        "metadata": {"name": "p"}, "spec": {"cidr": "10.70.0.0/16"}});
    let _: Value = client.call(Method::POST, "/v1/ippools", Some(&pool)).await.expect("create");
    // Every server down: the error names one and says what to check.
    let client = Client::new(&format!("{dead},{dead}"), None).expect("client");
    let e = client.list::<IpPoolSpec>(None).await.expect_err("nobody answers");
    assert!(e.to_string().contains("is `tartan apiserver` running?"), "{e}");
}

/// A server that answers only once `n` requests are in at the same time: a client that
/// serialises its calls never gets an answer.
#[tokio::test]
async fn calls_run_side_by_side() {
    const N: usize = 6;
    let barrier = Arc::new(tokio::sync::Barrier::new(N));
    let router = Router::new().route(
        "/v1/x",
        get(move || {
            let barrier = barrier.clone();
            async move {
                barrier.wait().await;
                axum::Json(json!({"ok": true}))
            }
        }),
    );
    let client = Arc::new(Client::new(&serve(router).await, None).expect("client"));
    let calls = (0..N).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.get_json::<Value>("/v1/x").await })
    });
    let all = tokio::time::timeout(Duration::from_secs(20), futures_join(calls.collect())).await;
    let answers = all.expect("every call answered: they ran side by side");
    assert!(answers.iter().all(|a| a.is_ok()), "{answers:?}");
}

async fn futures_join(
    tasks: Vec<tokio::task::JoinHandle<Result<Value, tartan_ipam::client::ClientError>>>,
) -> Vec<Result<Value, String>> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())));
    }
    out
}

/// Counts requests and answers 503 to each (an API server whose datastore is away).
async fn unavailable(count: Arc<AtomicUsize>) -> String {
    let router = Router::new().fallback(move || {
        let count = count.clone();
        async move {
            count.fetch_add(1, Ordering::SeqCst);
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"error": "unavailable", "message": "no datastore"})),
            )
        }
    });
    serve(router).await
}

#[tokio::test]
async fn a_503_fails_over_for_a_get_and_never_repeats_a_post() {
    let dir = TempDir::new("client-503");
    let live = api_server(&dir).await;
    let hits = Arc::new(AtomicUsize::new(0));
    let busy = unavailable(hits.clone()).await;
    let client = Client::new(&format!("{busy},{live}"), Some(TOKEN.into())).expect("client");
    client.list::<IpPoolSpec>(None).await.expect("the second server answers the GET");
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // A POST that reached a server is not sent to another: it may have been applied.
    let client = Client::new(&format!("{busy},{live}"), Some(TOKEN.into())).expect("client");
    let pool = json!({"apiVersion": "tartan/v1", "kind": "IPPool",
        "metadata": {"name": "p"}, "spec": {"cidr": "10.70.0.0/16"}});
    let e = client
        .call::<Value>(Method::POST, "/v1/ippools", Some(&pool))
        .await
        .expect_err("the POST stays with the server that had it");
    assert_eq!(e.code(), Some("unavailable"));
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert!(client.list::<IpPoolSpec>(None).await.expect("list").items.is_empty());
}
