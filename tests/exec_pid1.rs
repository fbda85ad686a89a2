//! PID 1 duties, black-box: the real `zen-lead-exec` as PID 1 of a new PID namespace
//! (`unshare --pid --fork`), holding a lease on the testkit API server. Exit-code sweep, death by
//! signal, forwarding of every catchable signal, zombie reaping, exec failures.

mod exec_support;

use exec_support::*;
use nix::sys::signal::Signal;

/// Starts `sh -c SCRIPT` under the wrapper in `pool` as `identity`.
fn spawn_sh(
    api: &ApiServer,
    scratch: &Scratch,
    pool: &str,
    identity: &str,
    script: &str,
    pid1: bool,
) -> Wrapper {
    api.launch(scratch, pool)
        .args(["--pool", pool, "--identity", identity])
        .args(FAST)
        .args(["--", "sh", "-c", script])
        .pid1_when(pid1)
        .spawn()
}

/// Runs `sh -c SCRIPT` under the wrapper in `pool` and returns the wrapper's exit code.
fn run_sh(api: &ApiServer, scratch: &Scratch, pool: &str, script: &str, pid1: bool) -> i32 {
    spawn_sh(api, scratch, pool, pool, script, pid1).exit_code()
}

/// Starts a wrapper for each of `items`, `at_once` at a time, and checks each wrapper of a batch
/// before starting the next batch.
fn in_batches<T>(
    items: &[T],
    at_once: usize,
    start: impl Fn(&T) -> Wrapper,
    check: impl Fn(&T, &mut Wrapper),
) {
    for batch in items.chunks(at_once) {
        let mut running: Vec<Wrapper> = batch.iter().map(&start).collect();
        for (item, w) in batch.iter().zip(&mut running) {
            check(item, w);
        }
    }
}

#[test]
fn exit_code_sweep_as_pid1() {
    if skip_without_unshare() {
        return;
    }
    let api = ApiServer::start();
    let scratch = Scratch::new("sweep");
    // Every code from 0 to 255 (it takes a few seconds, eight wrappers at a time).
    let codes: Vec<i32> = (0..=255).collect();
    in_batches(
        &codes,
        8,
        |code| {
            let pool = format!("sweep-{code}");
            spawn_sh(
                &api,
                &scratch,
                &pool,
                "sweeper",
                &format!("exit {code}"),
                true,
            )
        },
        |code, w| assert_eq!(w.exit_code(), *code, "child exit {code}: {}", w.stderr()),
    );
}

#[test]
fn death_by_signal_exits_128_plus_n_as_pid1() {
    if skip_without_unshare() {
        return;
    }
    let api = ApiServer::start();
    let scratch = Scratch::new("sigdeath");
    // Every signal whose default action terminates the process.
    let signals = [
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGILL,
        Signal::SIGTRAP,
        Signal::SIGABRT,
        Signal::SIGBUS,
        Signal::SIGFPE,
        Signal::SIGKILL,
        Signal::SIGUSR1,
        Signal::SIGSEGV,
        Signal::SIGUSR2,
        Signal::SIGPIPE,
        Signal::SIGALRM,
        Signal::SIGTERM,
        Signal::SIGSTKFLT,
        Signal::SIGXCPU,
        Signal::SIGXFSZ,
        Signal::SIGVTALRM,
        Signal::SIGPROF,
        Signal::SIGIO,
        Signal::SIGPWR,
        Signal::SIGSYS,
    ];
    in_batches(
        &signals,
        4,
        |signal| {
            let n = *signal as i32;
            let pool = format!("sig-{n}");
            // No core files: the signal, not the dump, is under test.
            let script = format!("ulimit -c 0; kill -{n} $$; sleep 30");
            spawn_sh(&api, &scratch, &pool, "sig", &script, true)
        },
        |signal, w| {
            assert_eq!(
                w.exit_code(),
                128 + *signal as i32,
                "{signal:?}: {}",
                w.stderr()
            );
        },
    );
}

#[test]
fn exec_failures_are_126_and_127_as_pid1() {
    if skip_without_unshare() {
        return;
    }
    let api = ApiServer::start();
    let scratch = Scratch::new("execfail");
    let not_exec = scratch.path("not-executable");
    std::fs::write(&not_exec, "#!/bin/sh\necho hi\n").expect("write");
    let cases = [
        ("nf", scratch.path("no-such-command"), 127),
        ("ne", not_exec, 126),
        ("dir", scratch.path(""), 126),
    ];
    for (pool, program, code) in cases {
        let mut w = api
            .launch(&scratch, pool)
            .args(["--pool", pool, "--identity", pool])
            .args(FAST)
            .arg_path(&program)
            .pid1()
            .spawn();
        assert_eq!(w.exit_code(), code, "{program:?}: {}", w.stderr());
        let err = w.stderr();
        assert!(err.contains("cannot run"), "{err}");
        // The lease is released after an exec failure: nobody runs, nobody holds.
        let record = api.lease(pool).expect("lease exists");
        assert_eq!(record.holder, None, "{pool}: still held after exec failure");
    }
}

/// A bash child that records every signal it receives into `file`, one name per line, and exits
/// 0 on SIGTERM (after recording it).
fn recorder(scratch: &Scratch, file: &std::path::Path, names: &[&str]) -> std::path::PathBuf {
    let mut body = format!("#!/bin/bash\nout={}\n", file.display());
    for name in names {
        if *name == "TERM" {
            body.push_str("trap 'echo TERM >> $out; exit 0' TERM\n");
        } else {
            body.push_str(&format!("trap 'echo {name} >> $out' {name}\n"));
        }
    }
    // No child processes: with --signal-group a `sleep` would get every signal too, and
    // SIGTSTP/SIGTTIN/SIGTTOU would stop it. `read -t` on a FIFO opened read-write waits in
    // bash itself, which runs the traps.
    body.push_str("fifo=$out.fifo\nmkfifo $fifo\nexec 9<>$fifo\necho READY >> $out\nwhile :; do read -t 0.05 -u 9; done\n");
    scratch.script("recorder.sh", &body)
}

fn signal_name(signal: Signal) -> &'static str {
    signal.as_str().trim_start_matches("SIG")
}

fn forwarding(pid1: bool, group: bool) {
    let api = ApiServer::start();
    let scratch = Scratch::new("fwd");
    let file = scratch.path("received");
    let signals: Vec<Signal> = zen_lead::exec::signals::forwarded()
        .filter(|s| *s != Signal::SIGTERM)
        .chain(std::iter::once(Signal::SIGTERM))
        .collect();
    let names: Vec<&str> = signals.iter().map(|s| signal_name(*s)).collect();
    let script = recorder(&scratch, &file, &names);
    let mut launch = api
        .launch(&scratch, "fwd")
        .args(["--pool", "fwd", "--identity", "fwd"])
        .args(FAST);
    if group {
        launch = launch.args(["--signal-group"]);
    }
    let mut w = launch.arg_path(&script).pid1_when(pid1).spawn();
    let read = || std::fs::read_to_string(&file).unwrap_or_default();
    eventually("the child to start", || read().contains("READY"));
    for (signal, name) in signals.iter().zip(&names) {
        w.signal(*signal);
        eventually(&format!("the child to receive {name}"), || {
            read().lines().any(|l| l == *name)
        });
    }
    assert_eq!(w.exit_code(), 0, "{}", w.stderr());
    let received: Vec<String> = read().lines().skip(1).map(str::to_owned).collect();
    let expected: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    assert_eq!(received, expected, "each signal once, in order");
}

#[test]
fn forwards_every_catchable_signal_as_pid1() {
    if skip_without_unshare() {
        return;
    }
    forwarding(true, false);
}

#[test]
fn forwards_every_catchable_signal_to_the_group() {
    forwarding(false, true);
}

/// Zombies: the child starts orphans (their parent exits at once) that live a little and exit.
/// They are re-parented to the wrapper (PID 1, or the subreaper), which must reap them.
fn reaping(pid1: bool) {
    let api = ApiServer::start();
    let scratch = Scratch::new("zombies");
    let file = scratch.path("orphans");
    let script = scratch.script(
        "orphans.sh",
        &format!(
            "#!/bin/sh\nfor i in 1 2 3 4 5; do ( sleep 2 & echo $! >> {} ) ; done\nsleep 600\n",
            file.display()
        ),
    );
    let mut w = api
        .launch(&scratch, "zombies")
        .args(["--pool", "zombies", "--identity", "z"])
        .args(FAST)
        .arg_path(&script)
        .pid1_when(pid1)
        .spawn();
    // The orphans are first seen as live children of the wrapper (so this test can fail) ...
    eventually("orphans re-parented to the wrapper", || {
        children_of(w.pid).len() >= 6
    });
    // ... and once they exit, none stays a zombie.
    eventually("orphans exited and reaped", || {
        let procs = processes();
        let kids: Vec<&Proc> = procs.iter().filter(|p| p.ppid == w.pid.as_raw()).collect();
        kids.len() == 1 && kids.iter().all(|p| p.state != 'Z')
    });
    assert!(w.running());
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 128 + 15, "{}", w.stderr());
}

#[test]
fn reaps_orphaned_zombies_as_pid1() {
    if skip_without_unshare() {
        return;
    }
    reaping(true);
}

#[test]
fn reaps_orphaned_zombies_as_subreaper() {
    reaping(false);
}

#[test]
fn child_gets_the_lease_environment_and_default_signal_state() {
    let api = ApiServer::start();
    let scratch = Scratch::new("env");
    let out = scratch.path("env");
    let script = format!(
        "env | grep ^ZEN_LEAD_ | sort > {0}; grep -E '^(SigIgn|SigBlk)' /proc/self/status >> {0}",
        out.display()
    );
    assert_eq!(run_sh(&api, &scratch, "envpool", &script, false), 0);
    let text = std::fs::read_to_string(&out).expect("env file");
    let term = api.lease("envpool").expect("lease").term;
    // The child gets back what the wrapper inherited from this test process: its ignored
    // signals except SIGPIPE (which std ignores in every Rust program), and nothing blocked.
    let own = std::fs::read_to_string("/proc/self/status").expect("status");
    let own_ign = own
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).expect("hex"))
        .expect("SigIgn");
    let inherited_ign = own_ign & !(1u64 << (13 - 1));
    for want in [
        "ZEN_LEAD_POOL=envpool".to_owned(),
        "ZEN_LEAD_NAMESPACE=default".to_owned(),
        "ZEN_LEAD_IDENTITY=envpool".to_owned(),
        format!("ZEN_LEAD_TERM={term}"),
        "ZEN_LEAD_HELD=true".to_owned(),
        format!("SigIgn:\t{inherited_ign:016x}"),
        "SigBlk:\t0000000000000000".to_owned(),
    ] {
        assert!(
            text.lines().any(|l| l == want),
            "missing {want:?} in\n{text}"
        );
    }
}

/// Guards single-active against daemons: a grandchild that left the child's process group
/// (`setsid`) must not run on after the child exits and the lease is released.
#[test]
fn a_daemonized_grandchild_is_killed_before_the_lease_is_released() {
    let api = ApiServer::start();
    let scratch = Scratch::new("daemon");
    let pid_file = scratch.path("daemon.pid");
    let script = format!(
        "setsid sh -c 'echo $$ > {f}.tmp; mv {f}.tmp {f}; while :; do sleep 0.1; done' & \
         while [ ! -s {f} ]; do sleep 0.05; done; exit 0",
        f = pid_file.display()
    );
    let code = run_sh(&api, &scratch, "daemon", &script, false);
    let daemon: i32 = std::fs::read_to_string(&pid_file)
        .expect("daemon pid")
        .trim()
        .parse()
        .expect("pid");
    let alive = processes()
        .iter()
        .any(|p| p.pid == daemon && p.state != 'Z');
    // Never leave it behind, whatever the outcome.
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(daemon), Signal::SIGKILL);
    assert_eq!(code, 0);
    assert!(!alive, "the daemon (pid {daemon}) outlived the wrapper");
    let record = api.lease("daemon").expect("lease");
    assert_eq!(record.holder, None, "released after the daemon was gone");
}

/// Guards docs/EXEC.md "forward every catchable signal": the real-time signals too.
#[test]
fn forwards_real_time_signals() {
    let api = ApiServer::start();
    let scratch = Scratch::new("fwd-rt");
    let file = scratch.path("received");
    let script = recorder(&scratch, &file, &["RTMIN+1", "RTMAX", "TERM"]);
    let mut w = api
        .launch(&scratch, "fwd-rt")
        .args(["--pool", "fwd-rt", "--identity", "fwd-rt"])
        .args(FAST)
        .arg_path(&script)
        .spawn();
    let read = || std::fs::read_to_string(&file).unwrap_or_default();
    eventually("the child to start", || read().contains("READY"));
    for name in ["RTMIN+1", "RTMAX"] {
        // bash's kill names the real-time signals as the child's bash does.
        let sent = std::process::Command::new("bash")
            .args(["-c", &format!("kill -s {name} {}", w.pid)])
            .status()
            .expect("run bash kill");
        assert!(sent.success(), "send {name}");
        eventually(&format!("the child to receive {name}"), || {
            read().lines().any(|l| l == name)
        });
    }
    w.signal(Signal::SIGTERM);
    assert_eq!(w.exit_code(), 0, "{}", w.stderr());
}

/// Guards the rule that a test never skips silently: without `unshare`, the PID 1 tests skip on
/// a developer's machine but fail when `CI` is set.
#[test]
fn missing_unshare_fails_under_ci_instead_of_skipping() {
    assert_eq!(skip_or_fail(true, true), Ok(false));
    assert_eq!(skip_or_fail(true, false), Ok(false));
    assert_eq!(skip_or_fail(false, false), Ok(true));
    let failure = skip_or_fail(false, true).unwrap_err();
    assert!(failure.contains("unshare"), "{failure}");
}

/// Guards docs/EXEC.md (PID 1 duties): as PID 1 the wrapper does not warn about not being PID 1.
#[test]
fn pid1_does_not_warn_about_not_being_pid1() {
    if skip_without_unshare() {
        return;
    }
    let api = ApiServer::start();
    let scratch = Scratch::new("pid1-warn");
    let mut w = spawn_sh(&api, &scratch, "pid1-warn", "pid1-warn", "true", true);
    assert_eq!(w.exit_code(), 0, "{}", w.stderr());
    assert!(!w.stderr().contains("not PID 1"), "{}", w.stderr());
    let mut plain = spawn_sh(&api, &scratch, "pid1-warn", "plain", "true", false);
    assert_eq!(plain.exit_code(), 0, "{}", plain.stderr());
    assert!(plain.stderr().contains("not PID 1"), "{}", plain.stderr());
}
