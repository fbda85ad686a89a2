//! Non-resource endpoints: `/version`, discovery, OpenAPI and health checks.

use serde_json::{Value, json};

use crate::app::{self, App, Response};
use crate::openapi::{self, OpenApiResource};

fn resource_list(app: &App, group: &str, version: &str) -> Option<Value> {
    let reg = app.registry();
    let mut resources = Vec::new();
    for t in reg.all() {
        if t.group != group || !t.versions.iter().any(|v| v == version) {
            continue;
        }
        let mut r = json!({
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": t.verbs(),
        });
        if !t.short_names.is_empty() {
            r["shortNames"] = json!(t.short_names);
        }
        if !t.categories.is_empty() {
            r["categories"] = json!(t.categories);
        }
        resources.push(r);
        if t.scale.is_some() {
            resources.push(json!({
                "name": format!("{}/scale", t.plural),
                "singularName": "",
                "namespaced": t.namespaced,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
        if t.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", t.plural),
                "singularName": "",
                "namespaced": t.namespaced,
                "kind": t.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

fn group_list(app: &App) -> Value {
    let groups: Vec<Value> = app
        .registry()
        .groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, versions)| {
            let vs: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            json!({"name": g, "versions": vs, "preferredVersion": vs[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// The resources the OpenAPI documents describe.
pub fn openapi_resources(app: &App) -> Vec<OpenApiResource> {
    let reg = app.registry();
    let mut out = Vec::new();
    for t in reg.all() {
        for v in &t.versions {
            out.push(OpenApiResource {
                group: t.group.clone(),
                version: v.clone(),
                kind: t.kind.clone(),
                plural: t.plural.clone(),
                namespaced: t.namespaced,
                schema: t.raw_schemas.get(v).cloned(),
            });
        }
    }
    out
}

/// Serves a non-resource GET; None when the path is not one.
pub fn serve(app: &App, path: &str) -> Option<Response> {
    let path = path.trim_end_matches('/');
    let ok = |v: Value| Some(app::json(200, &v));
    match path {
        "/version" => ok(json!({
            "major": "1", "minor": "33", "gitVersion": "v1.33.0-testkit",
            "gitCommit": "testkit", "gitTreeState": "clean", "buildDate": "2025-01-01T00:00:00Z",
            "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64",
        })),
        "/healthz" | "/readyz" | "/livez" => Some(
            http::Response::builder()
                .status(200)
                .header(http::header::CONTENT_TYPE, "text/plain")
                .body(app::full("ok"))
                .ok()?,
        ),
        "/api" => ok(json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                "serverAddress": app.url.get().map(|u| u.trim_start_matches("http://").trim_start_matches("https://").to_string()).unwrap_or_default()}],
        })),
        "/apis" => ok(group_list(app)),
        "/openapi/v2" => Some(
            http::Response::builder()
                .status(200)
                .header(
                    http::header::CONTENT_TYPE,
                    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
                )
                .body(app::full(openapi::v2_protobuf()))
                .ok()?,
        ),
        "/openapi/v3" => ok(openapi::v3_root(&openapi_resources(app))),
        _ => {
            if let Some(gv) = path.strip_prefix("/openapi/v3/") {
                return match openapi::v3_group_version(gv, &openapi_resources(app)) {
                    Some(v) => ok(v),
                    None => Some(app::error(&crate::errors::ApiError::path_not_found())),
                };
            }
            let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            match parts.as_slice() {
                ["api", v] => resource_list(app, "", v).map(|v| app::json(200, &v)),
                ["apis", g] => {
                    let list = group_list(app);
                    list["groups"]
                        .as_array()
                        .and_then(|gs| gs.iter().find(|x| x["name"] == *g).cloned())
                        .map(|mut g| {
                            g["kind"] = json!("APIGroup");
                            g["apiVersion"] = json!("v1");
                            app::json(200, &g)
                        })
                }
                ["apis", g, v] => resource_list(app, g, v).map(|v| app::json(200, &v)),
                _ => None,
            }
        }
    }
}
