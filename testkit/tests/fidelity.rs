//! Where kube-apiserver says no, the testkit says no: strict MicroTime, Lease and name
//! validation, unknown fields, create-on-update, Event validation, delete shapes, foreground
//! deletion, server-side apply options and CRD status validation, through the real kube client.

use std::time::Duration;

use http_body_util::BodyExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Pod};
use k8s_openapi::api::events::v1::Event as EventV1;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client};
use serde_json::{Value, json};
use zen_lead_testkit::TestServer;

const WAIT: Duration = Duration::from_secs(60);

/// One raw HTTP answer: status code, `Warning` headers and the JSON body.
struct Answer {
    code: u16,
    warnings: Vec<String>,
    body: Value,
}

impl Answer {
    /// The `details.causes[].field` of a Status body.
    fn cause_fields(&self) -> Vec<String> {
        self.body
            .pointer("/details/causes")
            .and_then(Value::as_array)
            .map(|c| {
                c.iter()
                    .filter_map(|c| c["field"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Sends `body` as it is (no typed client normalises it) and returns the answer, errors included.
async fn send(
    client: &Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: Option<&Value>,
) -> Answer {
    let bytes = body
        .map(|b| serde_json::to_vec(b).expect("json"))
        .unwrap_or_default();
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::ACCEPT, "application/json")
        .body(kube::client::Body::from(bytes))
        .expect("request");
    let resp = client.send(req).await.expect("the server answers");
    let code = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all(http::header::WARNING)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    let raw = resp.into_body().collect().await.expect("body").to_bytes();
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    Answer {
        code,
        warnings,
        body,
    }
}

async fn post(client: &Client, path: &str, body: &Value) -> Answer {
    send(client, "POST", path, "application/json", Some(body)).await
}

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/default/leases";

fn lease_body(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
           "metadata": {"name": name}, "spec": spec})
}

async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn micro_time_needs_six_fraction_digits_and_is_stored_in_utc() {
    let server = TestServer::start().await.expect("server");
    let client = server.client().expect("client");
    for (i, bad) in [
        "2026-01-01T00:00:00.123Z",
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00.123456789Z",
        "2026-01-01T00:00:00.123456",
    ]
    .into_iter()
    .enumerate()
    {
        let a = post(
            &client,
            LEASES,
            &lease_body(&format!("bad-{i}"), json!({"renewTime": bad})),
        )
        .await;
        assert_eq!(a.code, 400, "{bad}: {}", a.body);
        assert_eq!(a.body["reason"], "BadRequest", "{bad}");
        let msg = a.body["message"].as_str().unwrap_or("");
        assert!(
            msg.starts_with("Lease in version \"v1\" cannot be handled as a Lease: parsing time")
                && msg.contains("2006-01-02T15:04:05.000000Z07:00"),
            "{msg}"
        );
    }
    let a = post(
        &client,
        LEASES,
        &lease_body(
            "offset",
            json!({"acquireTime": "2026-01-01T02:00:00.123456+02:00", "renewTime": "2026-01-01T00:00:00.000001Z"}),
        ),
    )
    .await;
    assert_eq!(a.code, 201, "{}", a.body);
    assert_eq!(a.body["spec"]["acquireTime"], "2026-01-01T00:00:00.123456Z");
    let stored = Api::<Lease>::default_namespaced(client.clone())
        .get("offset")
        .await
        .expect("get");
    let renew = stored.spec.and_then(|s| s.renew_time).expect("renewTime");
    assert_eq!(renew.0.to_string(), "2026-01-01T00:00:00.000001Z");
    // metav1.Time drops the fraction and is stored in UTC as well.
    let a = post(
        &client,
        "/api/v1/namespaces/default/events",
        &json!({"metadata": {"name": "e1"}, "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
                "reason": "R", "lastTimestamp": "2026-01-01T01:00:00.5+01:00"}),
    )
    .await;
    assert_eq!(a.code, 201, "{}", a.body);
    assert_eq!(a.body["lastTimestamp"], "2026-01-01T00:00:00Z");
}

/// The zen-lead library writes Leases through k8s-openapi: its MicroTime is what the server
/// wants, even for a whole second.
#[tokio::test]
async fn typed_clients_write_micro_time_the_server_accepts() {
    let server = TestServer::start().await.expect("server");
    let leases: Api<Lease> = Api::default_namespaced(server.client().expect("client"));
    let whole_second = jiff::Timestamp::from_second(1_800_000_000).expect("ts");
    let lease: Lease =
        serde_json::from_value(json!({"metadata": {"name": "typed"}, "spec": {}})).expect("lease");
    let mut lease = lease;
    let spec = lease.spec.get_or_insert_with(Default::default);
    spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        whole_second,
    ));
    spec.acquire_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        jiff::Timestamp::now(),
    ));
    leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("a typed Lease is accepted");
}

#[tokio::test]
async fn lease_fields_and_object_names_are_validated() {
    let server = TestServer::start().await.expect("server");
    let client = server.client().expect("client");
    let cases = [
        (lease_body("Bad_Name", json!({})), "metadata.name"),
        (
            lease_body("zero", json!({"leaseDurationSeconds": 0})),
            "spec.leaseDurationSeconds",
        ),
        (
            lease_body("negative", json!({"leaseTransitions": -1})),
            "spec.leaseTransitions",
        ),
    ];
    for (body, field) in cases {
        let a = post(&client, LEASES, &body).await;
        assert_eq!(a.code, 422, "{field}: {}", a.body);
        assert_eq!(a.body["reason"], "Invalid");
        assert_eq!(a.cause_fields(), [field], "{}", a.body);
    }
    let a = post(
        &client,
        LEASES,
        &lease_body("zero", json!({"leaseDurationSeconds": 0})),
    )
    .await;
    assert_eq!(
        a.body["message"],
        "Lease.coordination.k8s.io \"zero\" is invalid: spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"
    );
    // Every kind checks its names: a DNS subdomain for ConfigMaps, a DNS label for namespaces.
    let a = post(
        &client,
        "/api/v1/namespaces/default/configmaps",
        &json!({"metadata": {"name": "Upper"}}),
    )
    .await;
    assert_eq!(
        (a.code, a.cause_fields()),
        (422, vec!["metadata.name".to_string()])
    );
    let a = post(
        &client,
        "/api/v1/namespaces",
        &json!({"metadata": {"name": "with.dot"}}),
    )
    .await;
    assert_eq!(a.code, 422, "{}", a.body);
    let a = post(
        &client,
        "/api/v1/namespaces",
        &json!({"metadata": {"name": "fine-ns"}}),
    )
    .await;
    assert_eq!(a.code, 201, "{}", a.body);
}

#[tokio::test]
async fn unknown_lease_fields_are_dropped_with_a_warning_or_refused_when_strict() {
    let server = TestServer::start().await.expect("server");
    let client = server.client().expect("client");
    let body = lease_body("u", json!({"holderIdentity": "a", "bogus": 1}));
    let a = post(&client, LEASES, &body).await;
    assert_eq!(a.code, 201, "{}", a.body);
    assert_eq!(a.body["spec"], json!({"holderIdentity": "a"}));
    assert!(
        a.warnings
            .iter()
            .any(|w| w.contains("unknown field \\\"spec.bogus\\\"")
                || w.contains("unknown field \"spec.bogus\"")),
        "{:?}",
        a.warnings
    );
    let a = post(
        &client,
        &format!("{LEASES}?fieldValidation=Strict"),
        &lease_body("s", json!({"bogus": 1})),
    )
    .await;
    assert_eq!(a.code, 400, "{}", a.body);
    assert_eq!(
        a.body["message"],
        "Lease in version \"v1\" cannot be handled as a Lease: strict decoding error: unknown field \"spec.bogus\""
    );
    // A wrongly typed field is a decoding error too.
    let a = post(
        &client,
        LEASES,
        &lease_body("t", json!({"leaseDurationSeconds": "15"})),
    )
    .await;
    assert_eq!(a.code, 400, "{}", a.body);
}

#[tokio::test]
async fn put_of_a_missing_lease_creates_it() {
    let server = TestServer::start().await.expect("server");
    let client = server.client().expect("client");
    let leases: Api<Lease> = Api::default_namespaced(client.clone());
    let lease: Lease = serde_json::from_value(
        json!({"metadata": {"name": "fresh"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 10}}),
    )
    .expect("lease");
    let created = leases
        .replace("fresh", &PostParams::default(), &lease)
        .await
        .expect("PUT creates a Lease");
    assert!(created.metadata.uid.is_some());
    let a = send(
        &client,
        "PUT",
        &format!("{LEASES}/fresh2"),
        "application/json",
        Some(&lease_body("fresh2", json!({}))),
    )
    .await;
    assert_eq!(a.code, 201, "{}", a.body);
    // The last state of a deleted Lease carries its uid: that is a precondition, so the PUT
    // fails (409) instead of bringing the Lease back, and zen-lead observes again.
    leases
        .delete("fresh", &DeleteParams::default())
        .await
        .expect("delete");
    let err = leases
        .replace("fresh", &PostParams::default(), &created)
        .await
        .expect_err("no resurrection");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409 && s.message.contains("Precondition failed: UID in precondition")),
        "{err:?}"
    );
    // ConfigMaps do not allow it.
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "c"}})).expect("cm");
    let err = cms
        .replace("c", &PostParams::default(), &cm)
        .await
        .expect_err("no create-on-update for configmaps");
    assert!(matches!(err, kube::Error::Api(s) if s.code == 404));
}

#[tokio::test]
async fn recorder_events_pass_and_incomplete_events_k8s_io_events_are_invalid() {
    let server = TestServer::start().await.expect("server");
    let client = server.client().expect("client");
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "zen-lead-controller".into(),
            instance: None,
        },
    );
    let pod = ObjectReference {
        kind: Some("Pod".into()),
        api_version: Some("v1".into()),
        name: Some("p1".into()),
        namespace: Some("default".into()),
        ..Default::default()
    };
    let ev = Event {
        type_: EventType::Normal,
        reason: "Elected".into(),
        note: Some("p1 leads".into()),
        action: "Elect".into(),
        secondary: None,
    };
    // The second publish patches the series of the first.
    recorder.publish(&ev, &pod).await.expect("create");
    recorder.publish(&ev, &pod).await.expect("series patch");
    let events: Api<EventV1> = Api::default_namespaced(client.clone());
    let list = events.list(&ListParams::default()).await.expect("list");
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].series.as_ref().map(|s| s.count), Some(2));

    let a = post(
        &client,
        "/apis/events.k8s.io/v1/namespaces/default/events",
        &json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "bare"},
                "regarding": {"kind": "Pod", "name": "p1", "namespace": "default"}, "reason": "R", "type": "Normal"}),
    )
    .await;
    assert_eq!(a.code, 422, "{}", a.body);
    assert_eq!(a.cause_fields(), ["eventTime"], "{}", a.body);
    let a = post(
        &client,
        "/apis/events.k8s.io/v1/namespaces/default/events",
        &json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "timed"},
                "eventTime": "2026-01-01T00:00:00.000000Z",
                "regarding": {"kind": "Pod", "name": "p1", "namespace": "default"}, "reason": "R", "type": "Normal"}),
    )
    .await;
    assert_eq!(a.code, 422, "{}", a.body);
    let mut fields = a.cause_fields();
    fields.sort();
    assert_eq!(
        fields,
        ["action", "reportingController", "reportingInstance"],
        "{}",
        a.body
    );
    let a = post(
        &client,
        "/apis/events.k8s.io/v1/namespaces/default/events",
        &json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "weird"},
                "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "c", "reportingInstance": "i",
                "action": "A", "reason": "R", "type": "Odd", "deprecatedCount": 3,
                "regarding": {"kind": "Pod", "name": "p1", "namespace": "default"}}),
    )
    .await;
    assert_eq!(a.code, 422, "{}", a.body);
    let mut fields = a.cause_fields();
    fields.sort();
    assert_eq!(fields, ["deprecatedCount", "type"], "{}", a.body);
}

#[tokio::test]
async fn delete_answers_a_status_for_gone_objects_and_the_object_while_finalizers_hold_it() {
    let server = TestServer::start().await.expect("server");
    let client = server.client().expect("client");
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "gone"}})).expect("cm");
    let created = cms
        .create(&PostParams::default(), &cm)
        .await
        .expect("create");
    let status = cms
        .delete("gone", &DeleteParams::default())
        .await
        .expect("delete")
        .right()
        .expect("a Status for a deleted ConfigMap");
    let details = status.details.expect("details");
    assert_eq!(
        (
            details.name.as_str(),
            details.kind.as_str(),
            details.uid.as_str()
        ),
        (
            "gone",
            "configmaps",
            created.metadata.uid.as_deref().unwrap_or("")
        )
    );
    assert_eq!(
        status.status,
        Some(kube::core::response::StatusSummary::Success)
    );

    let held: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
    )
    .expect("cm");
    cms.create(&PostParams::default(), &held)
        .await
        .expect("create");
    let a = send(
        &client,
        "DELETE",
        "/api/v1/namespaces/default/configmaps/held",
        "application/json",
        None,
    )
    .await;
    assert_eq!(a.code, 200, "{}", a.body);
    assert_eq!(a.body["kind"], "ConfigMap");
    assert!(a.body["metadata"]["deletionTimestamp"].is_string());

    // Pods answer with the deleted object itself.
    let pods: Api<Pod> = Api::default_namespaced(client);
    let pod: Pod = serde_json::from_value(
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}),
    )
    .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create");
    let deleted = pods
        .delete("p", &DeleteParams::default())
        .await
        .expect("delete");
    assert!(deleted.is_left(), "{deleted:?}");
}

#[tokio::test]
async fn foreground_deletion_waits_for_a_blocking_dependent_with_a_finalizer() {
    let server = TestServer::start().await.expect("server");
    let client = server.client().expect("client");
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    let owner: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "owner"}})).expect("cm");
    let uid = cms
        .create(&PostParams::default(), &owner)
        .await
        .expect("owner")
        .metadata
        .uid
        .expect("uid");
    let dependent: ConfigMap = serde_json::from_value(json!({"metadata": {
        "name": "dep", "finalizers": ["example.com/hold"],
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid,
                             "blockOwnerDeletion": true}]}}))
    .expect("dep");
    cms.create(&PostParams::default(), &dependent)
        .await
        .expect("dependent");
    let held = cms
        .delete("owner", &DeleteParams::foreground())
        .await
        .expect("delete")
        .left()
        .expect("the owner lingers");
    assert_eq!(
        held.metadata.finalizers,
        Some(vec!["foregroundDeletion".to_string()])
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let owner_now = cms.get("owner").await.expect("owner still there");
    assert!(owner_now.metadata.deletion_timestamp.is_some());
    let dep_now = cms.get("dep").await.expect("dependent still there");
    assert!(dep_now.metadata.deletion_timestamp.is_some());
    // Removing the dependent's finalizer lets it go, and then the owner.
    cms.patch(
        "dep",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("unhold");
    eventually("the owner is deleted", || async {
        cms.get_opt("owner").await.expect("get").is_none()
    })
    .await;
}

#[tokio::test]
async fn apply_needs_a_field_manager_and_force_is_only_for_apply() {
    let server = TestServer::start().await.expect("server");
    let client = server.client().expect("client");
    let path = "/api/v1/namespaces/default/configmaps/a";
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}});
    let a = send(
        &client,
        "PATCH",
        path,
        "application/apply-patch+yaml",
        Some(&cm),
    )
    .await;
    assert_eq!(a.code, 422, "{}", a.body);
    assert_eq!(
        a.body["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    let a = send(
        &client,
        "PATCH",
        &format!("{path}?fieldManager=m"),
        "application/apply-patch+yaml",
        Some(&cm),
    )
    .await;
    assert_eq!(a.code, 201, "{}", a.body);
    let a = send(
        &client,
        "PATCH",
        &format!("{path}?force=true"),
        "application/merge-patch+json",
        Some(&json!({"data": {"k": "w"}})),
    )
    .await;
    assert_eq!(a.code, 422, "{}", a.body);
    assert_eq!(
        a.body["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch"
    );
}

#[tokio::test]
async fn two_managers_applying_the_same_value_share_it() {
    let server = TestServer::start().await.expect("server");
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client().expect("client"));
    let apply = |manager: &'static str, data: Value| {
        let cms = cms.clone();
        async move {
            cms.patch(
                "shared",
                &PatchParams::apply(manager),
                &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "shared"}, "data": data})),
            )
            .await
            .expect("apply")
        }
    };
    apply("a", json!({"k": "v", "x": "1"})).await;
    let both = apply("b", json!({"k": "v"})).await;
    let owners: Vec<String> = both
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:data/f:k").is_some())
        })
        .filter_map(|m| m.manager)
        .collect();
    assert_eq!(owners, ["a", "b"]);
    // a stops applying k: b still owns it, so it stays; then b lets go and it goes.
    let after_a = apply("a", json!({"x": "1"})).await;
    assert_eq!(
        after_a
            .data
            .unwrap_or_default()
            .get("k")
            .map(String::as_str),
        Some("v")
    );
    let after_b = apply("b", json!({})).await;
    assert!(!after_b.data.unwrap_or_default().contains_key("k"));
}

const CRD: &str = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";

fn crd(schema: Value) -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gauges.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "gauges", "singular": "gauge", "kind": "Gauge"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}}, "schema": {"openAPIV3Schema": schema}}]}})
}

#[tokio::test]
async fn crd_status_is_validated_on_the_status_subresource_and_schemas_must_be_structural() {
    let server = TestServer::start().await.expect("server");
    let client = server.client().expect("client");
    let non_structural = crd(json!({"type": "object", "properties": {
        "spec": {"type": "object", "properties": {"size": {"minimum": 1}}}}}));
    let a = post(&client, CRD, &non_structural).await;
    assert_eq!(a.code, 422, "{}", a.body);
    assert!(
        a.cause_fields().iter().any(|f| f.contains(
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[size].type"
        )),
        "{}",
        a.body
    );
    let a = post(
        &client,
        CRD,
        &crd(json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
            "status": {"type": "object", "properties": {"count": {"type": "integer", "minimum": 0}}}}})),
    )
    .await;
    assert_eq!(a.code, 201, "{}", a.body);
    let gauges = "/apis/example.com/v1/namespaces/default/gauges";
    let a = post(
        &client,
        gauges,
        &json!({"apiVersion": "example.com/v1", "kind": "Gauge", "metadata": {"name": "g"}, "spec": {"size": 1}}),
    )
    .await;
    assert_eq!(a.code, 201, "{}", a.body);
    let status = format!("{gauges}/g/status");
    let a = send(
        &client,
        "PATCH",
        &status,
        "application/merge-patch+json",
        Some(&json!({"status": {"count": -1}})),
    )
    .await;
    assert_eq!(a.code, 422, "{}", a.body);
    assert_eq!(a.cause_fields(), ["status.count"]);
    let a = send(
        &client,
        "PATCH",
        &status,
        "application/merge-patch+json",
        Some(&json!({"status": {"count": 2, "junk": true}})),
    )
    .await;
    assert_eq!(a.code, 200, "{}", a.body);
    assert_eq!(a.body["status"], json!({"count": 2}));
    assert!(!a.warnings.is_empty(), "a warning names the dropped field");
}

/// Core v1 Events keep the legacy rules: the involved object's namespace is the Event's.
#[tokio::test]
async fn core_events_keep_their_legacy_rules() {
    let server = TestServer::start().await.expect("server");
    let client = server.client().expect("client");
    let a = post(
        &client,
        "/api/v1/namespaces/default/events",
        &json!({"metadata": {"name": "mismatch"}, "involvedObject": {"kind": "Pod", "name": "p", "namespace": "other"},
                "reason": "R"}),
    )
    .await;
    assert_eq!(a.code, 422, "{}", a.body);
    assert_eq!(a.cause_fields(), ["involvedObject.namespace"]);
}
