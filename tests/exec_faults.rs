//! Faults that once let two commands run at once, with real `zen-lead-exec` replicas against the
//! testkit API server and the single-active checker (`zen_lead_testkit::heartbeat`): a deleted
//! Lease, a holder cleared by hand, a stalled stderr reader during a partition; and a `--rejoin`
//! standby through an API outage.

mod exec_support;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use exec_support::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A heartbeat child that, told to stop, keeps working for 0.7 s before it exits: the old
/// holder's work outlives the moment it learns it lost.
const DRAINING: &str = r#"#!/bin/sh
hb() { echo "$ZEN_LEAD_TERM,$1,$(date +%s%N),$ZEN_LEAD_IDENTITY" >> "$HB"; }
drain() {
  end=$(( $(date +%s%N) + 700000000 ))
  while [ "$(date +%s%N)" -lt "$end" ]; do hb beat; sleep 0.05; done
  hb stop
  exit 0
}
hb start
trap drain TERM INT
while :; do hb beat; sleep 0.1 & wait $!; done
"#;

fn draining_replica(pool: &Pool, identity: &str) -> Wrapper {
    let script = pool.scratch.script("draining.sh", DRAINING);
    pool.api
        .launch(&pool.scratch, identity)
        .args(["--pool", pool.name.as_str(), "--identity", identity])
        .args(FAST)
        .env("HB", pool.hb.to_string_lossy())
        .arg_path(&script)
        .spawn()
}

/// Guards docs/PROTOCOL.md §2: `kubectl delete lease` makes the holder stop, and the follower
/// waits the lease duration before it creates the Lease again, so the draining child is gone
/// before the next one starts.
#[test]
fn kubectl_delete_lease_never_runs_two_commands() {
    let pool = Pool::new("deleted");
    let mut replicas = vec![draining_replica(&pool, "r0"), draining_replica(&pool, "r1")];
    let first = pool.wait_for_term_after(0, 3);
    pool.api
        .kubectl_ok(&["delete", "lease", pool.name.as_str(), "--wait=false"]);
    let old = &mut replicas[index_of(&first.identity)];
    assert_eq!(old.exit_code(), 80, "{}", old.stderr());
    pool.wait_for_successor(&first, 3);
    drop(replicas);
    let terms = pool.check();
    assert_eq!(terms.len(), 2, "{terms:?}");
    assert!(terms[1].term > terms[0].term, "{terms:?}");
}

/// Guards docs/PROTOCOL.md §2: an empty holder written by hand (no release marker) is waited
/// out; the holder it names no more stops its draining child first.
#[test]
fn holder_cleared_by_hand_never_runs_two_commands() {
    let pool = Pool::new("cleared");
    let mut replicas = vec![draining_replica(&pool, "r0"), draining_replica(&pool, "r1")];
    let first = pool.wait_for_term_after(0, 3);
    pool.api.kubectl_ok(&[
        "patch",
        "lease",
        pool.name.as_str(),
        "--type=merge",
        "-p",
        r#"{"spec":{"holderIdentity":null}}"#,
    ]);
    let old = &mut replicas[index_of(&first.identity)];
    assert_eq!(old.exit_code(), 80, "{}", old.stderr());
    pool.wait_for_successor(&first, 3);
    drop(replicas);
    let terms = pool.check();
    assert_eq!(terms.len(), 2, "{terms:?}");
}

/// A `cat` that reads a FIFO; stopped and killed on drop.
struct Reader(std::process::Child);

impl Drop for Reader {
    fn drop(&mut self) {
        let pid = Pid::from_raw(self.0.id() as i32);
        let _ = kill(pid, Signal::SIGCONT);
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Guards docs/PROTOCOL.md §4 ("nothing may delay the stop"): the leader's log collector stops
/// reading its stderr (a FIFO whose reader is SIGSTOPped, with the pipe filled), then the leader
/// is partitioned. Its stop must not wait for a log write: the child is dead before the
/// successor starts.
#[test]
fn stalled_stderr_reader_during_a_partition_never_runs_two_commands() {
    let pool = Pool::new("stalled");
    let fifo = pool.scratch.path("r0.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let reader = Reader(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "exec cat {} > {}",
                fifo.display(),
                pool.scratch.path("r0.log").display()
            ))
            .stdin(Stdio::null())
            .spawn()
            .expect("start the reader"),
    );
    // The leader's stderr is the FIFO (opening it for writing waits for the reader).
    let mut leader = Launch::new(pool.api.kubeconfig(), fifo.clone())
        .args(["--pool", pool.name.as_str(), "--identity", "r0"])
        .args(FAST)
        .env("HB", pool.hb.to_string_lossy())
        .env("RUST_LOG", "debug")
        .arg_path(&pool.scratch.path("hb.sh"))
        .spawn();
    let first = pool.wait_for_term_after(0, 3);
    assert_eq!(first.identity, "r0");
    // The collector stalls, and the pipe fills up.
    kill(Pid::from_raw(reader.0.id() as i32), Signal::SIGSTOP).expect("stop the reader");
    let mut filler = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(&fifo)
        .expect("open the FIFO");
    let chunk = [b'x'; 4096];
    while filler.write(&chunk).is_ok_and(|n| n > 0) {}
    let mut follower = pool.replica("r1", &[], false);
    eventually("r1 to follow", || follower.stderr().contains("waiting"));
    pool.api.blackhole("r0", true);
    pool.wait_for_successor(&first, 3);
    // Not `leader.stderr()`: reading the FIFO here would steal the collector's lines.
    assert_eq!(
        leader.wait_timeout(EVENTUALLY).and_then(|s| s.code()),
        Some(80)
    );
    pool.api.blackhole("r0", false);
    follower.kill_all();
    drop(filler);
    drop(reader);
    let terms = pool.check();
    assert_eq!(terms.len(), 2, "{terms:?}");
}

/// Guards docs/EXEC.md `--rejoin`: a standby daemon that loses the lease to an API outage keeps
/// waiting through the outage, with backoff, instead of exiting 69, and leads again after it.
#[test]
fn rejoin_keeps_waiting_through_an_api_outage() {
    let pool = Pool::new("outage");
    let mut daemon = pool.replica("r0", &["--rejoin"], false);
    let first = pool.wait_for_term_after(0, 3);
    pool.api.blackhole("r0", true);
    // Lost (deadline 2s), then campaigns that cannot reach the server (4s each) and backoff.
    eventually("the daemon to wait for the API server", || {
        daemon.stderr().contains("waiting for it (--rejoin)")
    });
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        daemon.running(),
        "exited in the outage: {}",
        daemon.stderr()
    );
    pool.api.blackhole("r0", false);
    let again = pool.wait_for_term_after(first.term, 3);
    assert_eq!(again.identity, "r0");
    assert!(daemon.running(), "{}", daemon.stderr());
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.exit_code(), 0, "{}", daemon.stderr());
    pool.check();
}
