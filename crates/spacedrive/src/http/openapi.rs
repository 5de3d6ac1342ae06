//! The OpenAPI 3.1 document of the HTTP API, generated from the API's own types: JSON Schemas
//! of [`Request`], [`Response`], [`ApiError`] and [`StreamLine`] from their `schemars` derives
//! (which read the same serde attributes that decide the wire format), one path per method
//! taken from `Request`'s schema, and each method's answer found by the method names that
//! `Response`'s variants document. Nothing here lists the methods by hand.

use std::sync::OnceLock;

use sd_api::{ApiError, Request, Response, StreamLine};
use serde_json::{Map, Value, json};

/// The document, built once per process.
pub fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(build)
}

/// Each method of `Request`'s schema with the schema of its `params` (none for a method
/// without parameters).
fn methods(request: &Value) -> Vec<(String, Option<Value>)> {
    let variants = request
        .get("oneOf")
        .or_else(|| request.get("anyOf"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    for v in variants {
        let props = &v["properties"];
        let method = &props["method"];
        let names: Vec<String> = match (method.get("const"), method.get("enum")) {
            (Some(Value::String(s)), _) => vec![s.clone()],
            (_, Some(Value::Array(list))) => list
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        let params = props.get("params").cloned().map(|mut p| {
            if let (Some(obj), Some(desc)) = (p.as_object_mut(), v.get("description")) {
                obj.entry("description").or_insert(desc.clone());
            }
            p
        });
        for n in names {
            out.push((n, params.clone()));
        }
    }
    out
}

/// For each method, the schema of its answer: the `Response` variant whose documentation
/// names the method (`` `library.list` ``).
fn answers(response: &Value) -> Vec<(String, Value)> {
    let variants = response
        .get("anyOf")
        .or_else(|| response.get("oneOf"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    for v in variants {
        let desc = v
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        // The methods are the backquoted names before the first colon (the rest is prose).
        let head = desc.split(':').next().unwrap_or_default();
        for name in head.split('`').skip(1).step_by(2) {
            out.push((name.to_owned(), v.clone()));
        }
    }
    out
}

fn build() -> Value {
    let mut g = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .into_generator();
    let request_ref = g.subschema_for::<Request>().to_value();
    let response_ref = g.subschema_for::<Response>().to_value();
    let error_ref = g.subschema_for::<ApiError>().to_value();
    let line_ref = g.subschema_for::<StreamLine>().to_value();
    let schemas: Map<String, Value> = g.take_definitions(true);
    let request = schemas.get("Request").cloned().unwrap_or(Value::Null);
    let response = schemas.get("Response").cloned().unwrap_or(Value::Null);
    let answer_of = answers(&response);

    let error_body = json!({
        "type": "object",
        "properties": {"error": error_ref},
        "required": ["error"],
    });
    let errors = json!({
        "400": {"description": "bad_request: malformed, oversized or non-UTF-8 request, unknown method",
                "content": {"application/json": {"schema": error_body}}},
        "401": {"description": "no token (cookie, `Authorization: Bearer`, or `X-Spacedrive-Token`)",
                "content": {"application/json": {"schema": error_body}}},
        "403": {"description": "wrong Host, cross-origin change, or `forbidden` / `not_paired`",
                "content": {"application/json": {"schema": error_body}}},
        "default": {"description": "any other error code (not_found 404, conflict/ambiguous 409, invalid 422, unreachable 502, io/database/internal 500, …)",
                    "content": {"application/json": {"schema": error_body}}},
    });
    let ok_of = |schema: Value| {
        json!({
            "200": {"description": "the answer", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"ok": schema}, "required": ["ok"]}}}}
        })
    };
    let with_errors = |mut ok: Value| {
        if let (Some(o), Some(e)) = (ok.as_object_mut(), errors.as_object()) {
            o.extend(e.clone());
        }
        ok
    };

    let mut paths = Map::new();
    paths.insert(
        "/api/v1/rpc".into(),
        json!({"post": {
            "operationId": "rpc",
            "summary": "Any request, exactly as on the Unix socket: {\"method\", \"params\"}",
            "requestBody": {"required": true, "content": {"application/json": {"schema": request_ref}}},
            "responses": with_errors(ok_of(response_ref.clone())),
        }}),
    );
    for (method, params) in methods(&request) {
        if method == "events.subscribe" {
            continue; // a stream: GET /api/v1/events
        }
        let answer = answer_of
            .iter()
            .find(|(m, _)| *m == method)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| response_ref.clone());
        let mut op = json!({
            "operationId": method,
            "summary": format!("`{method}` (see docs/API.md); the body is its params"),
            "responses": with_errors(ok_of(answer)),
        });
        if let Some(p) = params {
            op["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": p}}});
        }
        paths.insert(format!("/api/v1/{method}"), json!({ "post": op }));
    }
    paths.insert(
        "/api/v1/events".into(),
        json!({"get": {
            "operationId": "events.subscribe",
            "summary": "`events.subscribe` as server-sent events: each `data:` is one stream line",
            "parameters": [
                {"name": "library", "in": "query", "required": false, "schema": {"type": "string"}},
                {"name": "job", "in": "query", "required": false, "schema": {"type": "integer", "format": "int64"}}
            ],
            "responses": with_errors(json!({"200": {
                "description": "text/event-stream; every event's data is a StreamLine",
                "content": {"text/event-stream": {"schema": line_ref}}
            }})),
        }}),
    );
    paths.insert(
        "/api/v1/openapi.json".into(),
        json!({"get": {"operationId": "openapi", "summary": "This document",
            "responses": {"200": {"description": "OpenAPI 3.1"}}}}),
    );

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Spacedrive daemon API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The same typed requests and answers as the daemon's Unix socket (docs/API.md). Every request needs the token of <data dir>/http.token: the session cookie set by /login, `Authorization: Bearer TOKEN` or `X-Spacedrive-Token: TOKEN`.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "header": {"type": "apiKey", "in": "header", "name": "X-Spacedrive-Token"},
            },
        },
        "security": [{"bearer": []}, {"header": []}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every method `Request` knows (read from serde's own error, as sd-api's docs test does).
    fn request_methods() -> Vec<String> {
        let e = serde_json::from_str::<Request>(r#"{"method": "no.such.method"}"#).unwrap_err();
        let text = e.to_string();
        let list = text.split_once("expected one of ").unwrap().1;
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_method_has_a_path_and_its_own_answer() {
        let doc = document();
        let paths = doc["paths"].as_object().unwrap();
        let methods = request_methods();
        assert!(methods.len() >= 30, "{methods:?}");
        let response = &doc["components"]["schemas"]["Response"];
        let answered: Vec<String> = answers(response).into_iter().map(|(m, _)| m).collect();
        for m in &methods {
            if m == "events.subscribe" {
                assert!(paths.contains_key("/api/v1/events"));
                continue;
            }
            let path = paths
                .get(&format!("/api/v1/{m}"))
                .unwrap_or_else(|| panic!("no path for {m}"));
            assert_eq!(path["post"]["operationId"], m.as_str());
            assert!(answered.contains(m), "no Response variant documents `{m}`");
        }
        // Parameters come from the types: library.create takes a name.
        let create = &paths["/api/v1/library.create"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"];
        assert_eq!(create["required"], json!(["name"]), "{create}");
        assert!(
            paths["/api/v1/daemon.status"]["post"]
                .get("requestBody")
                .is_none()
        );
        // Every $ref points at a schema in the document.
        let text = doc.to_string();
        for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = part.split('"').next().unwrap();
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "dangling $ref to {name}"
            );
        }
    }
}
