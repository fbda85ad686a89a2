//! Bad input: each gives one line on stderr naming the fix, its documented exit code, and the
//! child never runs (a marker file it would create stays absent).

mod exec_support;

use std::process::{Command, Stdio};

use exec_support::{Scratch, exe};

struct Outcome {
    code: i32,
    stderr: String,
}

fn run(scratch: &Scratch, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let out = Command::new(exe())
        .args(args)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("ZEN_LEAD_POOL")
        .env_remove("RUST_LOG")
        .env("KUBECONFIG", scratch.path("no-such-kubeconfig"))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run zen-lead-exec");
    Outcome {
        code: out.status.code().expect("exit code"),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn assert_bad(scratch: &Scratch, args: &[&str], env: &[(&str, &str)], code: i32, needle: &str) {
    let marker = scratch.path("child-ran");
    let out = run(scratch, args, env);
    assert_eq!(out.code, code, "{args:?}: stderr {:?}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: want one line, got {:?}",
        out.stderr
    );
    assert!(
        lines[0].starts_with("zen-lead-exec: ") && lines[0].contains(needle),
        "{args:?}: {:?} does not mention {needle:?}",
        lines[0]
    );
    assert!(!marker.exists(), "{args:?}: the child ran");
}

fn touch_marker(scratch: &Scratch) -> String {
    format!("touch {}", scratch.path("child-ran").display())
}

#[test]
fn missing_command_is_a_usage_error() {
    let s = Scratch::new("bad");
    assert_bad(&s, &["--pool", "p"], &[], 64, "missing command");
    assert_bad(&s, &["--pool", "p", "--"], &[], 64, "missing command");
}

#[test]
fn missing_pool_is_a_usage_error() {
    let s = Scratch::new("bad");
    let t = touch_marker(&s);
    assert_bad(&s, &["--", "sh", "-c", &t], &[], 64, "--pool");
    assert_bad(
        &s,
        &["--", "sh", "-c", &t],
        &[("ZEN_LEAD_POOL", "")],
        64,
        "--pool",
    );
}

#[test]
fn command_without_double_dash_says_where_it_goes() {
    let s = Scratch::new("bad");
    assert_bad(&s, &["--pool", "p", "sh"], &[], 64, "after --");
}

#[test]
fn bad_durations_are_usage_errors() {
    let s = Scratch::new("bad");
    let t = touch_marker(&s);
    for flag in [
        "--lease-duration",
        "--renew-deadline",
        "--retry-period",
        "--kill-grace",
    ] {
        assert_bad(
            &s,
            &["--pool", "p", flag, "ten", "--", "sh", "-c", &t],
            &[],
            64,
            flag,
        );
    }
    assert_bad(
        &s,
        &["--pool", "p", "--", "sh", "-c", &t],
        &[("ZEN_LEAD_WAIT_TIMEOUT", "soon")],
        64,
        "wait-timeout",
    );
}

#[test]
fn timing_rule_violations_are_config_errors() {
    let s = Scratch::new("bad");
    let t = touch_marker(&s);
    let timing = |lease: &str, renew: &str, retry: &str, grace: &str| {
        vec![
            "--pool".to_owned(),
            "p".into(),
            "--lease-duration".into(),
            lease.into(),
            "--renew-deadline".into(),
            renew.into(),
            "--retry-period".into(),
            retry.into(),
            "--kill-grace".into(),
            grace.into(),
            "--".into(),
            "sh".into(),
            "-c".into(),
            t.clone(),
        ]
    };
    let cases = [
        (timing("15s", "10s", "2s", "5s"), "--kill-grace"),
        (
            timing("15s", "15s", "2s", "1s"),
            "less than --lease-duration",
        ),
        (timing("15s", "2s", "2s", "1s"), "1.2 x --retry-period"),
        (timing("0s", "2s", "1s", "1s"), "--lease-duration"),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_bad(&s, &args, &[], 78, needle);
    }
}

#[test]
fn unreadable_kubeconfig_is_a_config_error() {
    let s = Scratch::new("bad");
    let t = touch_marker(&s);
    let args = ["--pool", "p", "--", "sh", "-c", t.as_str()];
    assert_bad(&s, &args, &[], 78, "KUBECONFIG");
    let garbage = s.path("garbage");
    std::fs::write(&garbage, "{ this is: [not a kubeconfig").expect("write");
    let garbage = garbage.to_string_lossy().into_owned();
    assert_bad(
        &s,
        &args,
        &[("KUBECONFIG", garbage.as_str())],
        78,
        "kubeconfig",
    );
}

#[test]
fn unreachable_api_server_is_69() {
    let s = Scratch::new("bad");
    // A loopback port that nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let kubeconfig = s.path("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\nusers:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n    namespace: default\ncurrent-context: c\n"
    );
    std::fs::write(&kubeconfig, text).expect("write");
    let kubeconfig = kubeconfig.to_string_lossy().into_owned();
    let t = touch_marker(&s);
    assert_bad(
        &s,
        &["--pool", "p", "--", "sh", "-c", &t],
        &[("KUBECONFIG", kubeconfig.as_str())],
        69,
        "unreachable",
    );
}

#[test]
fn gate_refuses_to_skip() {
    let s = Scratch::new("bad");
    assert_bad(
        &s,
        &["gate", "--pool", "p", "--on-follower", "skip"],
        &[],
        64,
        "gate cannot skip",
    );
}

/// Guards docs/EXEC.md (gate mode): the flags that mean nothing without a command are refused,
/// given as flags or as env vars.
#[test]
fn gate_refuses_flags_that_need_a_command() {
    let s = Scratch::new("bad");
    for flag in [
        &["--rejoin"][..],
        &["--signal-group"],
        &["--stop-signal", "SIGINT"],
        &["--kill-grace", "1s"],
    ] {
        let mut args = vec!["gate", "--pool", "p"];
        args.extend_from_slice(flag);
        assert_bad(&s, &args, &[], 64, flag[0]);
    }
    assert_bad(
        &s,
        &["gate", "--pool", "p"],
        &[("ZEN_LEAD_REJOIN", "true")],
        64,
        "--rejoin",
    );
}

#[test]
fn help_exits_zero() {
    let s = Scratch::new("bad");
    let out = run(&s, &["--help"], &[]);
    assert_eq!(out.code, 0);
}
