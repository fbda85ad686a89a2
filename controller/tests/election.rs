//! The controller elects for annotation-only pods (docs/PATTERNS.md): one leader of three, roles,
//! status and the seed's kubectl commands, with the real controller and the testkit's kubelet.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;
use zen_lead::lease::record::Renewer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_annotated_pods_give_one_leader() {
    let server = server().await;
    let _controller = controller(&server, "ctl-a");
    policy(&server, "my-pool", 4, 2, 1, json!({})).await;
    for name in ["web-0", "web-1", "web-2"] {
        run_pod(&server, "my-pool", name);
        // Distinct Ready times: web-0 is Ready the longest.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let (leader, term) = wait_elected(&server, "my-pool").await;
    assert_eq!(leader, "web-0", "the candidate Ready the longest leads");
    let roles = roles(&server, "my-pool").await;
    assert_eq!(
        roles.values().filter(|r| *r == "follower").count(),
        2,
        "{roles:?}"
    );
    let record = record(&server, "my-pool").await.expect("lease");
    assert_eq!(record.holder.as_deref(), Some("web-0"));
    assert_eq!(record.renewer, Renewer::Controller);
    assert_eq!(record.term, term);

    // The controller renews while web-0 is Ready: past two lease durations, same term.
    let before = record.renew_time;
    tokio::time::sleep(Duration::from_secs(9)).await;
    let later = support::record(&server, "my-pool").await.expect("lease");
    assert_eq!((later.holder.as_deref(), later.term), (Some("web-0"), term));
    assert!(later.renew_time > before, "renewed");
    assert_eq!(leaders(&server, "my-pool").await, ["web-0"]);

    let status = policies(&server)
        .get("my-pool")
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(
        (status.candidates, status.ready_candidates),
        (Some(3), Some(3))
    );
    let elected = status
        .conditions
        .iter()
        .find(|c| c.type_ == "LeaderElected")
        .unwrap();
    assert_eq!(
        (elected.status.as_str(), elected.reason.as_str()),
        ("True", "LeaderActive")
    );
    assert!(
        event_reasons(&server, "web-0")
            .await
            .contains(&"LeaderElected".to_string())
    );
}
