//! The admin HTTP endpoint under `/testkit/`: faults, accounting, kubelet, tokens.
//!
//! | Method | Path | Effect |
//! |---|---|---|
//! | GET | `/testkit/accounting` | `{client: {verb: count}}` |
//! | DELETE | `/testkit/accounting` | reset the counters |
//! | GET | `/testkit/faults?client=UA` | the fault spec in force |
//! | PUT | `/testkit/faults[?client=UA]` | set a `FaultSpec` JSON (global without `client`) |
//! | DELETE | `/testkit/faults` | clear every fault |
//! | POST | `/testkit/faults/drop-watches` | close every open watch |
//! | POST | `/testkit/faults/compact` | forget the event history (410 for older versions) |
//! | POST | `/testkit/faults/restart` | drop every connection |
//! | POST | `/testkit/kubelet/pods/NS` | create a Running/Ready pod from the JSON body |
//! | POST | `/testkit/kubelet/pods/NS/NAME/ready?ready=false` | flip readiness |
//! | POST | `/testkit/kubelet/pods/NS/NAME/phase?phase=Failed` | set the phase |
//! | POST | `/testkit/kubelet/pods/NS/NAME/restart[?container=C]` | a container (every one without `container`) crashed and restarted |
//! | POST | `/testkit/kubelet/pods/NS/NAME/stopped` | containers stopped: remove a terminating pod |
//! | POST | `/testkit/tokens` | `{"token","user","groups"}` or `{"token","serviceAccount":"NS/NAME"}` |

use std::collections::HashMap;
use std::sync::Arc;

use http::Method;
use serde_json::{Value, json};

use crate::app::{self, App, Response};
use crate::errors::ApiError;
use crate::faults::FaultSpec;
use crate::kubelet::Kubelet;

/// Path prefix of the admin endpoint.
pub const PREFIX: &str = "/testkit/";

fn ok(v: Value) -> Response {
    app::json(200, &v)
}

/// Serves an admin request.
pub async fn serve(
    app: &Arc<App>,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Response {
    match route(app, method, path, query, body) {
        Ok(v) => ok(v),
        Err(e) => app::error(&e),
    }
}

fn route(
    app: &Arc<App>,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    body: &[u8],
) -> Result<Value, ApiError> {
    let rest = path.trim_start_matches(PREFIX).trim_end_matches('/');
    let parts: Vec<&str> = rest.split('/').collect();
    let client = query.get("client").map(String::as_str);
    let parse = || -> Result<Value, ApiError> {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("bad JSON body: {e}")))
    };
    let kubelet = Kubelet::new(app.clone());
    let done = json!({"ok": true});
    match (method.clone(), parts.as_slice()) {
        (Method::GET, ["accounting"]) => Ok(json!(app.accounting.snapshot())),
        (Method::DELETE, ["accounting"]) => {
            app.accounting.reset();
            Ok(done)
        }
        (Method::GET, ["faults"]) => Ok(json!(app.faults.spec_for(client.unwrap_or("")))),
        (Method::PUT | Method::POST, ["faults"]) => {
            let spec: FaultSpec = serde_json::from_value(parse()?)
                .map_err(|e| ApiError::bad_request(format!("bad fault spec: {e}")))?;
            match client {
                Some(c) => app.faults.set_for(c, spec),
                None => app.faults.set_global(spec),
            }
            Ok(done)
        }
        (Method::DELETE, ["faults"]) => {
            app.faults.clear();
            Ok(done)
        }
        (Method::POST, ["faults", "drop-watches"]) => {
            app.faults.drop_watches();
            Ok(done)
        }
        (Method::POST, ["faults", "compact"]) => {
            app.faults.compact();
            Ok(done)
        }
        (Method::POST, ["faults", "restart"]) => {
            app.faults.restart();
            Ok(done)
        }
        (Method::POST, ["kubelet", "pods", ns]) => kubelet.run_pod(ns, parse()?),
        (Method::POST, ["kubelet", "pods", ns, name, "ready"]) => {
            let ready = query.get("ready").is_none_or(|r| r != "false");
            kubelet.set_ready(ns, name, ready)
        }
        (Method::POST, ["kubelet", "pods", ns, name, "phase"]) => {
            let phase = query.get("phase").map_or("Running", String::as_str);
            kubelet.set_phase(ns, name, phase)
        }
        (Method::POST, ["kubelet", "pods", ns, name, "restart"]) => {
            kubelet.restart_container(ns, name, query.get("container").map(String::as_str))
        }
        (Method::POST, ["kubelet", "pods", ns, name, "stopped"]) => {
            kubelet.containers_stopped(ns, name)?;
            Ok(done)
        }
        (Method::POST, ["tokens"]) => {
            let v = parse()?;
            let token = v["token"]
                .as_str()
                .ok_or_else(|| ApiError::bad_request("token is required"))?;
            if let Some(sa) = v["serviceAccount"].as_str() {
                let (ns, name) = sa
                    .split_once('/')
                    .ok_or_else(|| ApiError::bad_request("serviceAccount must be NS/NAME"))?;
                app.tokens.add_service_account(token, ns, name);
            } else {
                let user = v["user"]
                    .as_str()
                    .ok_or_else(|| ApiError::bad_request("user is required"))?;
                let groups: Vec<&str> = v["groups"]
                    .as_array()
                    .map(|g| g.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                app.tokens.add_user(token, user, &groups);
            }
            Ok(done)
        }
        _ => Err(ApiError::path_not_found()),
    }
}
