"""One candidate of the official Python client's leader election, for zen-lead-bench.

Driven as the client's own example (kubernetes/leaderelection/example.py) drives it:
LeaseLock, electionconfig.Config, LeaderElection(config).run(). What the library tells the
application is its two callbacks; while it says "leading" this writes a sample line every
5 ms (the benchmark's line protocol, bench/src/wire.rs), with CLOCK_MONOTONIC nanoseconds.

usage: candidate.py KUBECONFIG POOL IDENTITY LEASE_S RENEW_DEADLINE_S RETRY_PERIOD_S
"""

import os
import sys
import threading
import time

from kubernetes import config
from kubernetes.leaderelection import electionconfig, leaderelection
from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

SAMPLE_EVERY = 0.005
_out = threading.Lock()
_leading = threading.Event()


def emit(line):
    with _out:
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            os._exit(0)


def sample():
    emit("S -1 %d" % time.clock_gettime_ns(time.CLOCK_MONOTONIC))


def sampler():
    while True:
        _leading.wait()
        sample()
        time.sleep(SAMPLE_EVERY)


def on_started_leading():
    _leading.set()
    sample()
    # The application's work would run here, in the library's thread; it idles.
    threading.Event().wait()


def on_stopped_leading():
    _leading.clear()


def exit_when_stdin_closes():
    # The benchmark is gone (or wants no release: this library has none).
    while sys.stdin.readline():
        pass
    os._exit(0)


def main():
    kubeconfig, pool, identity, lease, renew, retry = sys.argv[1:7]
    config.load_kube_config(config_file=kubeconfig)
    lock = LeaseLock(pool, "default", identity)
    # The benchmark's server tells clients apart (faults, accounting) by User-Agent.
    lock.api_instance.api_client.user_agent = identity
    cfg = electionconfig.Config(
        lock,
        lease_duration=int(lease),
        renew_deadline=int(renew),
        retry_period=int(retry),
        onstarted_leading=on_started_leading,
        onstopped_leading=on_stopped_leading,
    )
    emit("ready")
    if sys.stdin.readline().strip() != "go":
        return
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    threading.Thread(target=sampler, daemon=True).start()
    leaderelection.LeaderElection(cfg).run()
    # As in the example, one election per process: it stays up, no longer leading.
    threading.Event().wait()


if __name__ == "__main__":
    main()
