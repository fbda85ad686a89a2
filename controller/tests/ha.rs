//! Two controller processes (the built binary): one leads through its own Lease; a SIGKILL of
//! the leader loses no pool. Also the metrics and health endpoints as a scraper sees them.

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Child;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use support::*;

/// `GET path` over plain HTTP/1.1: (status code, body).
fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((code, body))
}

struct Killed(Option<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn own_holder(server: &zen_lead_testkit::TestServer) -> Option<String> {
    let api: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(server.client().expect("client"), "zen-lead-system");
    api.get_opt("zen-lead-controller")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec?.holder_identity)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_of_the_leading_controller_loses_no_pool() {
    let server = server().await;
    let addrs = free_addrs(2);
    let mut procs = [
        Killed(Some(controller_process(&server, "ctl-1", addrs[0]))),
        Killed(Some(controller_process(&server, "ctl-2", addrs[1]))),
    ];
    // The pool's lease (15s) is longer than the controller's own (3s), as deploy/ sets them.
    policy(&server, "ha", 15, 10, 2, json!({})).await;
    run_pod(&server, "ha", "ha-a");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    run_pod(&server, "ha", "ha-b");
    let (leader, term) = wait_elected(&server, "ha").await;
    assert_eq!(leader, "ha-a");

    // Both replicas are ready (warm caches), one leads.
    for &addr in &addrs {
        eventually(EVENTUALLY, "readyz", || async move {
            (get(addr, "/readyz")?.0 == 200).then_some(())
        })
        .await;
    }
    let holder = eventually(EVENTUALLY, "a leading controller", || own_holder(&server)).await;
    let (dead, survivor) = if holder == "ctl-1" { (0, 1) } else { (1, 0) };
    let leading = |addr| {
        get(addr, "/metrics")
            .is_some_and(|(_, m)| m.lines().any(|l| l == "zen_lead_controller_leading 1"))
    };
    eventually(EVENTUALLY, "the leader's metric", || async {
        leading(addrs[dead]).then_some(())
    })
    .await;
    assert!(
        !leading(addrs[survivor]),
        "only one replica leads: {holder} leads, yet {:?}",
        get(addrs[survivor], "/metrics")
    );

    // SIGKILL the leading controller.
    let child = procs[dead].0.as_ref().expect("child");
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).expect("kill");
    let killed_at = Instant::now();
    procs[dead].0.take().map(|mut c| c.wait());

    // The pool's controller-held Lease keeps being renewed by the new leader before it expires:
    // the same holder and term throughout, and never a gap of a lease duration between renewals.
    let mut last = record(&server, "ha").await.expect("lease");
    let mut last_change = Instant::now();
    let mut longest = Duration::ZERO;
    while killed_at.elapsed() < Duration::from_secs(25) {
        let now = record(&server, "ha").await.expect("lease");
        assert_eq!(
            (now.holder.as_deref(), now.term),
            (Some("ha-a"), term),
            "no failover of the pool"
        );
        if now.renew_time != last.renew_time {
            longest = longest.max(last_change.elapsed());
            last_change = Instant::now();
            last = now;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    longest = longest.max(last_change.elapsed());
    assert!(
        longest < Duration::from_secs(15),
        "renewal gap {longest:?} reached the lease duration"
    );
    let survivor_id = if survivor == 0 { "ctl-1" } else { "ctl-2" };
    assert_eq!(own_holder(&server).await.as_deref(), Some(survivor_id));
    assert!(leading(addrs[survivor]));

    // Roles and status keep converging under the new leader.
    run_pod(&server, "ha", "ha-c");
    eventually(EVENTUALLY, "ha-c labelled follower", || async {
        (roles(&server, "ha").await.get("ha-c").map(String::as_str) == Some("follower"))
            .then_some(())
    })
    .await;
    eventually(EVENTUALLY, "status counts ha-c", || async {
        let status = policies(&server).get("ha").await.ok()?.status?;
        (status.candidates == Some(3)).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_endpoints() {
    let server = server().await;
    let addr = free_addrs(1)[0];
    let _proc = Killed(Some(controller_process(&server, "ctl-metrics", addr)));
    eventually(EVENTUALLY, "healthz", || async move {
        (get(addr, "/healthz")?.0 == 200).then_some(())
    })
    .await;
    eventually(EVENTUALLY, "readyz", || async move {
        (get(addr, "/readyz")?.0 == 200).then_some(())
    })
    .await;
    policy(&server, "metered", 4, 2, 1, json!({})).await;
    for name in ["metered-a", "metered-b", "metered-c"] {
        run_pod(&server, "metered", name);
    }
    wait_elected(&server, "metered").await;
    server
        .kubelet()
        .set_ready(NS, "metered-c", false)
        .expect("not ready");
    let want = [
        r#"zen_lead_candidates{namespace="default",pool="metered"} 3"#,
        r#"zen_lead_ready_candidates{namespace="default",pool="metered"} 2"#,
        r#"zen_lead_leader_present{namespace="default",pool="metered"} 1"#,
        r#"zen_lead_transitions_total{namespace="default",pool="metered",reason="new"} 1"#,
        "zen_lead_controller_leading 1",
        "zen_lead_reconcile_duration_seconds_count",
    ];
    let text = eventually(EVENTUALLY, "the metrics", || async move {
        let (code, text) = get(addr, "/metrics")?;
        let missing: Vec<_> = want.iter().filter(|w| !text.contains(*w)).collect();
        if !missing.is_empty() {
            eprintln!("missing {missing:?} in\n{text}");
        }
        (code == 200 && missing.is_empty()).then_some(text)
    })
    .await;
    // A failover on evidence shows in the histogram and the transitions.
    let leader = leaders(&server, "metered").await.remove(0);
    server
        .kubelet()
        .set_phase(NS, &leader, "Failed")
        .expect("fail");
    eventually(EVENTUALLY, "the evidence transition", || async move {
        let (_, text) = get(addr, "/metrics")?;
        (text.contains(
            r#"zen_lead_transitions_total{namespace="default",pool="metered",reason="evidence"} 1"#,
        ) && text
            .contains(r#"zen_lead_failover_seconds_count{namespace="default",pool="metered"} 1"#))
        .then_some(())
    })
    .await;
    // API errors on the controller's writes show as Lease write errors and reconcile errors.
    let agent = zen_lead::client::user_agent("ctl-metrics");
    server.faults().errors(Some(&agent), 500, 1.0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.faults().clear();
    eventually(EVENTUALLY, "the error metrics", || async move {
        let (_, text) = get(addr, "/metrics")?;
        (text.contains(r#"zen_lead_lease_write_errors_total{namespace="default",pool="metered",operation="renew"}"#)
            && text.contains(r#"zen_lead_reconcile_errors_total{error="lease_write_500"}"#))
        .then_some(())
    })
    .await;
    assert_eq!(get(addr, "/nope").map(|r| r.0), Some(404));
    drop(text);
}
