//! `/openapi.json`: an OpenAPI 3.0 document of the API, generated from the kind registry so a
//! new kind appears in it without another edit.

use axum::Json;
use serde_json::{Value, json};

use crate::resources::Kind;
use crate::resources::kinds::Writer;

fn error_responses() -> Value {
    let e = json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    json!({"400": e, "401": e, "404": e, "409": e, "503": e})
}

fn op(summary: &str, body: Option<&str>, ok: &str) -> Value {
    let mut responses = error_responses();
    responses["200"] = json!({"description": "success", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{ok}")}}}});
    let mut o = json!({"summary": summary, "responses": responses});
    if let Some(b) = body {
        o["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{b}")}}}});
    }
    o
}

/// The document.
pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for kind in Kind::all() {
        let info = kind.info();
        let name_param =
            json!([{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}]);
        let mut list =
            json!({"get": op(&format!("List {} ({})", info.kind, info.summary), None, "List")});
        list["get"]["parameters"] = json!([{"name": "labelSelector", "in": "query", "required": false, "schema": {"type": "string"}}]);
        let mut item = json!({"parameters": name_param, "get": op(&format!("Read one {}", info.kind), None, "Resource")});
        if info.writer != Writer::Ipam {
            list["post"] = op(&format!("Create a {}", info.kind), Some("Resource"), "Resource");
            item["put"] = op(
                &format!("Create or replace a {} (If-Match: * = replace only)", info.kind),
                Some("Resource"),
                "Resource",
            );
            item["patch"] =
                op(&format!("Merge-patch a {} (RFC 7396)", info.kind), Some("Patch"), "Resource");
            item["delete"] = op(
                &format!("Delete a {} (?resourceVersion= to guard)", info.kind),
                None,
                "Resource",
            );
        }
        paths.insert(format!("/v1/{}", info.plural), list);
        paths.insert(format!("/v1/{}/{{name}}", info.plural), item);
    }
    paths.insert("/v1/ipam/allocate".into(), json!({"post": op("Allocate addresses for a handle on a node", Some("AllocateRequest"), "Allocated")}));
    paths.insert("/v1/ipam/release".into(), json!({"post": op("Release by handle or by address (idempotent)", Some("ReleaseRequest"), "Released")}));
    paths.insert(
        "/v1/ipam/check".into(),
        json!({"post": op("Report every IPAM inconsistency", None, "Object")}),
    );
    paths.insert(
        "/v1/ipam/gc".into(),
        json!({"post": op("Run one leak-collection round now", None, "Object")}),
    );
    paths.insert(
        "/v1/ipam/blocks".into(),
        json!({"get": op("Every block with its allocations", None, "Object")}),
    );
    paths.insert(
        "/v1/ipam/usage".into(),
        json!({"get": op("Usage per pool, block and node", None, "Object")}),
    );
    paths.insert("/v1/ipam/ips/{ip}".into(), json!({"parameters": [{"name": "ip", "in": "path", "required": true, "schema": {"type": "string"}}], "get": op("Who holds an address", None, "Object")}));
    paths.insert("/v1/ipam/handles/{handle}".into(), json!({"parameters": [{"name": "handle", "in": "path", "required": true, "schema": {"type": "string"}}], "get": op("The addresses of a handle", None, "Object")}));
    let mut watch = json!({"get": {"summary": "Stream changes after a revision as newline-delimited JSON events",
        "parameters": [{"name": "since", "in": "query", "schema": {"type": "integer"}}, {"name": "kinds", "in": "query", "schema": {"type": "string"}}],
        "responses": error_responses()}});
    watch["get"]["responses"]["200"] = json!({"description": "event stream", "content": {"application/x-ndjson": {"schema": {"type": "string"}}}});
    watch["get"]["responses"]["410"] = json!({"description": "since is older than the kept history", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    paths.insert("/v1/watch".into(), watch);
    paths.insert("/healthz".into(), json!({"get": {"summary": "Liveness (no token needed)", "security": [], "responses": {"200": {"description": "ok"}}}}));
    paths.insert("/metrics".into(), json!({"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition", "content": {"text/plain": {"schema": {"type": "string"}}}}}}}));
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Tartan API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Resources, block IPAM and watch of a Tartan fabric. Every error is {error, message}."},
        "servers": [{"url": "http://127.0.0.1:7180"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error", "message"], "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
                "Object": {"type": "object"},
                "Patch": {"type": "object", "description": "RFC 7396 JSON merge patch"},
                "Metadata": {"type": "object", "required": ["name"], "additionalProperties": false, "properties": {
                    "name": {"type": "string"}, "resourceVersion": {"type": "string"},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}}, "creationTimestamp": {"type": "string"}}},
                "Resource": {"type": "object", "required": ["apiVersion", "kind", "metadata"], "additionalProperties": false, "properties": {
                    "apiVersion": {"type": "string", "enum": ["tartan/v1"]}, "kind": {"type": "string"},
                    "metadata": {"$ref": "#/components/schemas/Metadata"}, "spec": {"type": "object"}}},
                "List": {"type": "object", "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                    "revision": {"type": "integer"}, "items": {"type": "array", "items": {"$ref": "#/components/schemas/Resource"}}}},
                "AllocateRequest": {"type": "object", "required": ["node", "handle"], "additionalProperties": false, "properties": {
                    "node": {"type": "string"}, "handle": {"type": "string"}, "ipv4": {"type": "integer", "minimum": 0, "maximum": 256},
                    "ipv6": {"type": "integer", "minimum": 0, "maximum": 256}, "attributes": {"type": "object", "additionalProperties": {"type": "string"}},
                    "pools": {"type": "array", "items": {"type": "string"}}, "ip": {"type": "string"}}},
                "Allocated": {"type": "object", "properties": {"handle": {"type": "string"}, "ips": {"type": "array", "items": {"type": "string"}}}},
                "ReleaseRequest": {"type": "object", "additionalProperties": false, "properties": {
                    "handle": {"type": "string"},
                    "ips": {"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "object", "required": ["ip"], "properties": {
                        "ip": {"type": "string"}, "handle": {"type": "string"}, "sequence": {"type": "integer"}}}]}}}},
                "Released": {"type": "object", "properties": {"released": {"type": "array", "items": {"type": "object"}},
                    "notAllocated": {"type": "array", "items": {"type": "string"}}, "skipped": {"type": "array", "items": {"type": "object"}}}}
            }
        }
    })
}

pub async fn openapi() -> Json<Value> {
    Json(document())
}
