//! Churn: pods created, deleted (gracefully and by force) and flipping readiness. Whatever
//! happens, a watcher of the pool's pods never sees two `zen-lead/role: leader` pods, and a
//! watcher of the Lease never sees one term with two holders or a term going back.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::DeleteParams;
use kube::runtime::watcher;
use serde_json::json;
use support::*;
use zen_lead::lease::record::LeaseRecord;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_never_shows_two_leaders_or_a_repeated_term() {
    let server = server().await;
    let _controller = controller(&server, "ctl-churn");
    policy(&server, "churn", 3, 2, 1, json!({})).await;
    for i in 0..4 {
        run_pod(&server, "churn", &format!("churn-{i}"));
    }
    wait_elected(&server, "churn").await;

    // The pods watcher: roles as a client of the API sees them, event by event.
    let violations = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = Arc::new(Mutex::new((0u64, 0u64)));
    let pods_seen = {
        let violations = violations.clone();
        let seen = seen.clone();
        let stream = watcher(
            pods(&server),
            watcher::Config::default().labels("zen-lead/pool=churn"),
        );
        tokio::spawn(async move {
            let mut roles: BTreeMap<String, String> = BTreeMap::new();
            let mut stream = std::pin::pin!(stream);
            let mut events = 0u64;
            while let Some(event) = stream.next().await {
                let Ok(event) = event else { continue };
                let mut apply = |pod: &Pod, gone: bool| {
                    if gone {
                        roles.remove(&pod.name_any());
                    } else {
                        let role = pod
                            .labels()
                            .get("zen-lead/role")
                            .cloned()
                            .unwrap_or_default();
                        roles.insert(pod.name_any(), role);
                    }
                };
                match &event {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => apply(p, false),
                    watcher::Event::Delete(p) => apply(p, true),
                    watcher::Event::Init | watcher::Event::InitDone => {}
                }
                events += 1;
                seen.lock().unwrap().0 += 1;
                let leaders: Vec<_> = roles
                    .iter()
                    .filter(|(_, r)| *r == "leader")
                    .map(|(n, _)| n.clone())
                    .collect();
                if leaders.len() > 1 {
                    violations
                        .lock()
                        .unwrap()
                        .push(format!("two leaders: {leaders:?}"));
                }
            }
            events
        })
    };
    // The Lease watcher: terms and their holders.
    let terms_seen = {
        let violations = violations.clone();
        let seen = seen.clone();
        let api = leases(&server);
        let stream = watcher(
            api,
            watcher::Config::default().fields("metadata.name=churn"),
        );
        tokio::spawn(async move {
            let mut holders: HashMap<u64, String> = HashMap::new();
            let mut highest = 0u64;
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                let Ok(watcher::Event::Apply(lease) | watcher::Event::InitApply(lease)) = event
                else {
                    continue;
                };
                let lease: Lease = lease;
                seen.lock().unwrap().1 += 1;
                let record = LeaseRecord::from_lease(&lease);
                if record.term < highest {
                    violations
                        .lock()
                        .unwrap()
                        .push(format!("term went back: {} after {highest}", record.term));
                }
                highest = highest.max(record.term);
                if let Some(holder) = record.holder {
                    let first = holders.entry(record.term).or_insert_with(|| holder.clone());
                    if *first != holder {
                        violations
                            .lock()
                            .unwrap()
                            .push(format!("term {} held by {first} and {holder}", record.term));
                    }
                }
            }
            holders.len()
        })
    };

    let kubelet = server.kubelet();
    let api = pods(&server);
    let started = Instant::now();
    let mut next = 4;
    let mut step = 0u32;
    while started.elapsed() < Duration::from_secs(20) {
        let now = roles(&server, "churn").await;
        let leader = now
            .iter()
            .find(|(_, r)| *r == "leader")
            .map(|(n, _)| n.clone());
        let live: Vec<String> = now.into_keys().collect();
        let pick = |k: u32| live.get((k as usize) % live.len().max(1)).cloned();
        match step % 6 {
            0 | 3 => {
                run_pod(&server, "churn", &format!("churn-{next}"));
                next += 1;
            }
            // The leader itself loses readiness every cycle, so leadership is sure to move
            // whatever order the other picks fall in.
            1 => {
                if let Some(p) = leader.or_else(|| pick(step)) {
                    let _ = kubelet.set_ready(NS, &p, false);
                }
            }
            2 => {
                if let Some(p) = pick(step / 2) {
                    let _ = kubelet.set_ready(NS, &p, true);
                }
            }
            4 if live.len() > 2 => {
                if let Some(p) = pick(step) {
                    let _ = api
                        .delete(&p, &DeleteParams::default().grace_period(1))
                        .await;
                }
            }
            5 if live.len() > 2 => {
                if let Some(p) = pick(step / 3) {
                    let _ = api
                        .delete(&p, &DeleteParams::default().grace_period(0))
                        .await;
                }
            }
            _ => {}
        }
        step += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Let it settle: one leader again.
    for p in roles(&server, "churn").await.into_keys() {
        let _ = kubelet.set_ready(NS, &p, true);
    }
    wait_elected(&server, "churn").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    pods_seen.abort();
    terms_seen.abort();
    let violations = violations.lock().unwrap().clone();
    assert!(violations.is_empty(), "{violations:#?}");
    let (pod_events, lease_events) = *seen.lock().unwrap();
    assert!(
        pod_events > 30 && lease_events > 5,
        "the watchers saw the churn: {pod_events} pod, {lease_events} lease events"
    );
    let record = record(&server, "churn").await.expect("lease");
    assert!(
        record.term >= 2,
        "the churn moved leadership (term {})",
        record.term
    );
}
