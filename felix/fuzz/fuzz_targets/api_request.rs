//! Any request to the API (the ipam crate's router; built here to share this crate's build of
//! tartan-ipam): the first byte picks the method, the bytes up to the first newline are the
//! path and query string, the rest is the JSON body. Decoding and validation never panic and
//! never answer 500: bad input is a 4xx that says what is wrong. The datastore is a real sled
//! in `TARTAN_FUZZ_DIR` (scripts/fuzz.sh makes and removes it).
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use tartan_ipam::api::{AppState, app};
use tartan_ipam::ipam::Ipam;
use tartan_ipam::store::Store;
use tower::ServiceExt;

fn setup() -> &'static (tokio::runtime::Runtime, AppState) {
    static SETUP: OnceLock<(tokio::runtime::Runtime, AppState)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = std::env::var_os("TARTAN_FUZZ_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join(format!("tartan-fuzz-api-{}", std::process::id())));
        let store = Arc::new(Store::open(&dir).expect("open the store"));
        let ipam = Ipam::open(store.clone()).expect("open the IPAM");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        (rt, AppState::new(store, ipam, None))
    })
}

const METHODS: [Method; 5] = [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE];

fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else { return };
    let (target, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(target) = std::str::from_utf8(target) else { return };
    let method = METHODS[usize::from(m) % METHODS.len()].clone();
    let Ok(req) = Request::builder()
        .method(method.clone())
        .uri(format!("/{}", target.trim_start_matches('/')))
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
    else {
        return;
    };
    let (rt, state) = setup();
    let status = rt.block_on(async {
        // Watch streams never end: the status is all that is read.
        let resp = app(state.clone()).oneshot(req).await.expect("the router answers");
        resp.status()
    });
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{method} {target} {body:?}");
});
