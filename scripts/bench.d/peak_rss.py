#!/usr/bin/python3
"""peak_rss.py: one run of scripts/bench's scenario 2 with invoice-worker alone (no peers, no wrk):
N centra_soap events, one per invoice, every target answering after L ms, max_in_flight M, on the
same local stack. Prints the run's figures, peak RSS (VmHWM) among them.

    /usr/bin/python3 scripts/bench.d/peak_rss.py --build build [--events 20000] [--latency-ms 100]
        [--max-in-flight 512] [--max-concurrency N] [--mixed] [--worker path/to/invoice-worker] [--prop KEY=VALUE]...
        [--setting worker.KEY=VALUE]... [--fault JSON]... [--load N]

--prop adds a kafka.properties entry to the worker's config, --setting sets a worker.* key
(both for experiments: which setting moves the peak). --fault installs a target-sim fault spec
(POST /_sim/faults) on the fresh stack before the run, e.g. a flaky target whose retries hold
the messages behind them: '{"target": "centra_soap", "kind": "error", "status": 503,
"rate": 0.02}'. Every result must still succeed. --load N runs N busy loops beside the stack for
the whole run (a machine shared with other work), and ends them, by their pids, at the end.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="build folder with kafka-local, target-sim")
    ap.add_argument("--out", help="output folder (default BUILD/bench-rss)")
    ap.add_argument("--worker", help="the invoice-worker to measure (default BUILD/invoice-worker)")
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--latency-ms", type=int, default=100)
    ap.add_argument("--max-in-flight", type=int, default=512)
    ap.add_argument("--max-concurrency", type=int, default=0,
                    help="each target's max_concurrency (default: --max-in-flight); scenario 1 "
                    "runs with the worker's default, 32")
    ap.add_argument("--mixed", action="store_true",
                    help="scenario 2's own event set: every adapter, two events per invoice")
    ap.add_argument("--prop", action="append", default=[], help="kafka.properties KEY=VALUE")
    ap.add_argument("--setting", action="append", default=[], help="worker.KEY=VALUE (a number)")
    ap.add_argument("--fault", action="append", default=[], help="target-sim fault spec (JSON)")
    ap.add_argument("--load", type=int, default=0, help="busy loops running beside the stack")
    a = ap.parse_args()
    build = os.path.abspath(a.build)  # redis-server resolves its paths after changing directory
    out = os.path.abspath(a.out or os.path.join(build, "bench-rss"))
    os.makedirs(out, exist_ok=True)
    b = bench.Bench(argparse.Namespace(build=build, out=out, quick=False, only=None, node=None,
                                       node_unavailable="not run here"))
    if a.worker:  # the worker only: the sender stays BUILD/invoice-worker
        plain_start = bench.start

        def start(argv, name, **kw):
            if name == "invoice-worker":
                argv = [os.path.abspath(a.worker)] + argv[1:]
            return plain_start(argv, name, **kw)
        bench.start = start
    extra = {}
    for kv in a.prop:
        k, v = kv.split("=", 1)
        extra.setdefault("kafka", {}).setdefault("properties", {})[k] = v
    for kv in a.setting:
        k, v = kv.split("=", 1)
        extra.setdefault("worker", {})[k.split(".", 1)[1]] = int(v)
    b.worker_extra = extra or None  # the measured worker's config only, not the sender's
    if a.fault:
        plain_new_stack = b.new_stack

        def new_stack(*args, **kw):
            st = plain_new_stack(*args, **kw)
            for spec in a.fault:
                st.sim_call("POST", "/_sim/faults", json.loads(spec))
            return st
        b.new_stack = new_stack
    n = a.events
    if a.mixed:
        label, events = "invoice-worker alone, mixed", b.events("s2", n, n // 2)
    else:
        label, events = "invoice-worker alone, centra_soap only", b.events("s2centra", n, n,
                                                                             "centra_soap")
    with bench.busy_loops(a.load):
        r = b.run(label, events, n, n, latency_ms=a.latency_ms,
                  max_in_flight=a.max_in_flight, max_concurrency=a.max_concurrency or a.max_in_flight)
    ok = r["statuses"].get("succeeded", 0) == n
    shown = {k: r[k] for k in ("label", "events", "latency_ms", "max_in_flight", "events_per_s",
                               "cpu_us_per_event", "thread_cpu_us_per_event", "main_switches_per_event",
                               "fetch_wakes", "peak_rss_kb",
                               "statuses", "command")}
    shown["load"] = a.load
    print(json.dumps(shown, indent=2))
    print("peak RSS %.1f MiB%s" % (r["peak_rss_kb"] / 1024, "" if ok else " (NOT every result succeeded)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
