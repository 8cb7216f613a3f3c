#!/usr/bin/python3
"""report.py: turns build/bench/results.json (written by bench.py) into report.md and the data
files plots.gp draws (throughput.dat, scaling.dat, stages.dat, cpu.dat)."""
import argparse
import json
import os
import sys
import time

TARGET_EPS = 10000  # scenario 1: events per second
TARGET_X_PY = 10    # scenario 1: times the Python worker
TARGET_WRK = 0.30   # scenario 1: share of the wrk ceiling
TARGET_BOUND = 0.90  # scenario 2: share of max_in_flight / latency
TARGET_X_NODE = {"0 ms": 4, "100 ms": 3}  # worker CPU per event: times less than the Node peer
TARGET_X_WRK = 3    # worker CPU per call: at most this many times wrk's client CPU per request
TARGET_RSS_MIB = 64  # scenario 2: invoice-worker's peak RSS (VmHWM), 512 in flight, 100 ms
TARGET_IR = 300000  # scenario 5: instructions per event, all threads
SCRIPT_CMDS = ("eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro")
PEER_MIN_EVENTS = 10000  # fewer events: start-up weighs too much to judge the Node comparison


def n(v, digits=0):
    if v is None:
        return "n/a"
    return ("{:,.%df}" % digits).format(v)


def met(ok):
    return "met" if ok else "**not met**"


CLK_TCK = 100  # /proc/PID/stat's unit, replaced by the one the results were measured with


def redis_cpu(x):
    """Redis CPU per event of a run, or n/a (a run without Redis, or results from before);
    below one clock tick, the bound."""
    v = x.get("redis_cpu_us_per_event") if x else None
    if v is None:
        return "n/a"
    if v == 0:
        return "< %s" % n(1e6 / CLK_TCK / (x.get("events") or 1), 1)
    return n(v, 1)


def redis_cmds(x):
    v = x.get("redis_commands_per_event") if x else None
    return n(v, 2) if v is not None else "n/a"


def by_command(x):
    """"evalsha 3.00, get 6.04, ..." per event, most called first."""
    calls = x.get("redis_commands") or {}
    ev = x.get("events") or 1
    return ", ".join("%s %s" % (k.upper() if k in SCRIPT_CMDS else k, n(v / ev, 2))
                     for k, v in sorted(calls.items(), key=lambda kv: (-kv[1], kv[0]))) or "none"


def peer_met(ok, events):
    if events < PEER_MIN_EVENTS:
        return "not judged (%s events; start-up weighs below %s)" % (n(events), n(PEER_MIN_EVENTS))
    return met(ok)


class Report:
    def __init__(self, res, out):
        self.r, self.out, self.lines = res, out, []

    def w(self, text=""):
        self.lines.append(text)

    def table(self, head, rows):
        self.w("| " + " | ".join(head) + " |")
        self.w("|" + "|".join("---" for _ in head) + "|")
        for row in rows:
            self.w("| " + " | ".join(str(c) for c in row) + " |")
        self.w()

    def run_rows(self, runs):
        rows = []
        for x in runs:
            rows.append([x["label"], n(x["events"]), n(x["seconds"], 2), n(x["events_per_s"]),
                         n(x["cpu_us_per_event"]), redis_cpu(x), redis_cmds(x),
                         n(x["peak_rss_kb"] / 1024, 1),
                         n(x["sim_requests"]), ", ".join("%s %s" % (v, k) for k, v in
                                                         sorted(x["statuses"].items()))])
        self.table(["run", "events", "seconds", "events/s", "worker CPU us/event",
                    "Redis CPU us/event", "Redis commands/event", "peak RSS MiB", "calls sent",
                    "results"], rows)

    def redis_table(self, runs):
        """Redis's side of each run: its CPU and its commands per event, by command."""
        runs = [x for x in runs if x and x.get("redis_commands") is not None]
        if not runs:
            return
        self.w("Redis over the same interval (redis-server's CPU and `INFO commandstats`, per "
               "event; commands a Lua script runs count under their own names too):")
        self.w()
        rows = []
        for x in runs:
            rows.append([x["label"], n(x["cpu_us_per_event"], 1), redis_cpu(x), redis_cmds(x),
                         n(x.get("redis_script_calls_per_event"), 2), by_command(x)])
        self.table(["run", "worker CPU us/event", "Redis CPU us/event", "Redis commands/event",
                    "of which script calls", "commands per event"], rows)

    def build(self):
        r = self.r
        m = r["machine"]
        sc = r["scenarios"]
        quick = r["mode"] == "quick"
        self.w("# invoice-worker benchmark")
        self.w()
        self.w("Written by `scripts/bench%s` on %s; the whole run took %s s. %s" % (
            " --quick" if quick else "", time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            n(r.get("runtime_s")),
            "**Quick mode: small sizes, a smoke check; the figures are not the benchmark.**"
            if quick else ""))
        self.w()
        self.w("## Machine")
        self.w()
        self.w("- %d cores, %s, Linux %s; load average %s before, %s after (the machine is shared: "
               "other work ran at the same time, which is why every comparison is measured in "
               "the same run)." % (m["cores"], m["cpu"], m["kernel"], m["load_before"],
                                   m.get("load_after", "n/a")))
        self.w("- %s, build type %s." % (m["worker_version"], m["build_type"]))
        self.w("- Debian packages: " + ", ".join("%s %s" % kv for kv in m["packages"].items()) + ".")
        self.w()
        self.summary(sc)
        self.method()
        self.peers(sc)
        if "s1" in sc:
            self.s1(sc["s1"])
        if "s2" in sc:
            self.s2(sc["s2"])
        if "s3" in sc:
            self.s3(sc["s3"])
        if "s4" in sc:
            self.s4(sc["s4"])
        if "s5" in sc:
            self.s5(sc["s5"])
        self.checks()
        return "\n".join(self.lines) + "\n"

    def summary(self, sc):
        self.w("## Summary")
        self.w()
        rows = []
        if "s1" in sc:
            s = sc["s1"]
            wm, py, wc = s["worker_mixed"], s["python_centra"], s["worker_centra"]
            rows.append(["1. throughput, fast target (mixed adapters)",
                         "%s events/s" % n(wm["events_per_s"]), ">= %s events/s" % n(TARGET_EPS),
                         met(wm["events_per_s"] >= TARGET_EPS)])
            x = wc["events_per_s"] / py["events_per_s"] if py["events_per_s"] else 0
            rows.append(["1. vs the Python reference worker (centra_soap only, same events)",
                         "%.1fx (%s vs %s events/s); CPU per event %.1fx less" % (
                             x, n(wc["events_per_s"]), n(py["events_per_s"]),
                             py["cpu_us_per_event"] / wc["cpu_us_per_event"]),
                         ">= %dx" % TARGET_X_PY, met(x >= TARGET_X_PY)])
            share = wm["events_per_s"] / s["wrk_ceiling"] if s["wrk_ceiling"] else 0
            rows.append(["1. share of the wrk ceiling (same requests, same simulator)",
                         "%.0f%% (%s of %s requests/s)" % (100 * share, n(wm["events_per_s"]),
                                                          n(s["wrk_ceiling"])),
                         ">= %d%%" % (100 * TARGET_WRK), met(share >= TARGET_WRK)])
        for scen, runs in self.peer_rows(sc):
            iw, nd = runs.get("invoice-worker"), runs.get("Node.js peer")
            if iw and nd:
                x = nd["cpu_us_per_event"] / iw["cpu_us_per_event"]
                rows.append(["CPU per event vs the Node.js peer, %s (centra_soap only)" % scen,
                             "%.2fx less (%s vs %s us/event)" % (
                                 x, n(iw["cpu_us_per_event"]), n(nd["cpu_us_per_event"])),
                             ">= %dx" % TARGET_X_NODE[scen],
                             peer_met(x >= TARGET_X_NODE[scen], nd["events"])])
            elif iw:
                rows.append(["CPU per event vs the Node.js peer, %s" % scen,
                             "peer unavailable: %s" % (self.r.get("node_peer") or {}).get("reason"),
                             ">= %dx" % TARGET_X_NODE[scen], "-"])
        if "s2" in sc:
            s = sc["s2"]
            share = s["events_per_s"] / s["bound"]
            rows.append(["2. slow target (100 ms, max_in_flight 512)",
                         "%s events/s = %.0f%% of %s" % (n(s["events_per_s"]), 100 * share,
                                                         n(s["bound"])),
                         ">= %d%% of the bound" % (100 * TARGET_BOUND), met(share >= TARGET_BOUND)])
            mib = s["peak_rss_kb"] / 1024
            rows.append(["2. invoice-worker's peak RSS (VmHWM), %s events, %d in flight, %d ms" % (
                n(s["events"]), s["max_in_flight"], s["latency_ms"]),
                "%s MiB" % n(mib, 1), "<= %d MiB" % TARGET_RSS_MIB, met(mib <= TARGET_RSS_MIB)])
            if s.get("loaded"):
                lm = s["loaded"]["peak_rss_kb"] / 1024
                rows.append(["2. the same, with %d busy loops beside the stack" %
                             s["loaded"]["busy_loops"], "%s MiB" % n(lm, 1),
                             "<= %d MiB" % TARGET_RSS_MIB, met(lm <= TARGET_RSS_MIB)])
        if "s3" in sc:
            s = sc["s3"]
            ok = s["final_ok"] == s["invoices"] and s["regressed"] == 0
            rows.append(["3. hot invoices (coalescing)",
                         "%s calls for %s events (%.1f%%); %d of %d invoices end at v%d" % (
                             n(s["sim_requests"]), n(s["events"]),
                             100.0 * s["sim_requests"] / s["events"], s["final_ok"], s["invoices"],
                             s["highest"]),
                         "final state = highest version", met(ok)])
        if "s4" in sc:
            rows.append(["4. scaling curve (20 ms)", ", ".join(
                "%d: %s/s" % (x["max_in_flight"], n(x["events_per_s"])) for x in sc["s4"]),
                "plotted", "-"])
        if "s5" in sc:
            s = sc["s5"]
            target = s.get("target_per_event", TARGET_IR)
            rows.append(["5. instructions per event (callgrind, %s %s events, all threads)" % (
                n(s["events"]), "centra_soap" if "centra_soap" in s["label"] else "mixed"),
                "%s" % n(s["per_event"]), "<= %s" % n(target), met(s["per_event"] <= target)])
        self.table(["scenario", "measured", "target", ""], rows)

    def peer_rows(self, sc):
        """(scenario, {who: run}) for every scenario that ran the peers side by side."""
        out = []
        if "s1" in sc:
            s = sc["s1"]
            out.append(("0 ms", {"invoice-worker": s.get("worker_centra"),
                                 "Node.js peer": s.get("node_centra"),
                                 "Python reference": s.get("python_centra"),
                                 "wrk": s.get("wrk_centra"),
                                 "libcurl alone": s.get("floor_centra"),
                                 "undici alone": s.get("undici_floor_centra")}))
        if "s2" in sc and sc["s2"].get("peers"):
            p = sc["s2"]["peers"]
            out.append(("100 ms", {"invoice-worker": p.get("worker_centra"),
                                   "Node.js peer": p.get("node_centra"),
                                   "Python reference": p.get("python_centra"),
                                   "wrk": p.get("wrk_centra"),
                                   "libcurl alone": p.get("floor_centra"),
                                   "undici alone": p.get("undici_floor_centra")}))
        return out

    def peers(self, sc):
        rows_by = self.peer_rows(sc)
        if not rows_by:
            return
        info = self.r.get("node_peer") or {}
        self.w("## Against a Node.js peer, the Python reference and wrk")
        self.w()
        if info.get("available"):
            self.w("The Node.js peer (`scripts/bench.d/node_worker/worker.js`, node %s; %s; "
                   "the Kafka client linked to librdkafka %s) does what the Python reference "
                   "does, as a Node team would write it: batch consume, Redis `SET NX EX` per "
                   "(event, target) through ioredis with auto-pipelining, the centra_soap "
                   "request from template literals (the same mapping; the simulator validates "
                   "every call), one keep-alive undici Pool with at most 512 requests in "
                   "flight, one result per event; its result producer has invoice-worker's "
                   "`linger.ms` (20: at 5, librdkafka 2.0's producer threads poll without "
                   "waiting while results trickle in)." % (info.get("node"), ", ".join(
                       "%s %s" % kv for kv in sorted(info.get("dependencies", {}).items())),
                       info.get("librdkafka")))
            if "@confluentinc/kafka-javascript" in info.get("dependencies", {}):
                self.w()
                self.w("Its Kafka client is `@confluentinc/kafka-javascript`, built from source "
                       "against Debian's librdkafka (`BUILD_LIBRDKAFKA=0 CKJS_LINKING=dynamic "
                       "npm ci`: its prebuilt binaries cannot be downloaded here) and used "
                       "through its node-rdkafka-compatible API, whose `consume(n, cb)` reads "
                       "in batches. 0.1.9-devel is an early-access release (its README: \"not "
                       "meant for production use\"), and the newest whose native code compiles "
                       "against librdkafka 2.0.2: 0.1.11-devel to 1.10.1 (from 0.2.0 on they ask "
                       "for librdkafka 2.5.3 to 2.15.1) fail on `rd_kafka_Node_rack` or "
                       "`rd_kafka_Uuid_t`, added in librdkafka 2.3.0. In 0.1.9-devel the "
                       "KafkaJS-compatible API rejects `eachBatch` as not implemented.")
        else:
            self.w("**The Node.js peer is unavailable in this run: %s.**" % info.get("reason"))
        self.w()
        self.w("All workers run the same centra_soap-only events (one event per invoice) against "
               "the same simulator with validation on, one after the other in this run; "
               "`max_in_flight` 512 for invoice-worker and the Node peer (the Python reference has "
               "64 threads). wrk posts invoice-worker's rendered centra_soap request to the same "
               "endpoint (64 connections at 0 ms, 512 at 100 ms). \"libcurl alone\" is "
               "`tests/bench/http_floor` posting the same request the same number of times as "
               "the workers have events, with as many calls in flight as wrk, through libcurl "
               "driven as invoice-worker drives it (epoll, `curl_multi_socket_action`, parked "
               "sockets, reused handles, multi handles of at most 64 transfers, the worker's "
               "options and call headers) and nothing else: the floor of the worker's HTTP cost. "
               "\"undici alone\" is its Node counterpart, `scripts/bench.d/node_worker/"
               "http_floor.js`: the same request, calls and calls in flight through an undici "
               "Pool set up as the Node peer's (a connection per call in flight, each reply "
               "read whole), measured after 20 warm-up calls per connection (its connections "
               "opened and V8's compiling done: about half a second of CPU that would weigh on "
               "short runs): the floor of the Node peer's HTTP cost in its steady state. **CPU** = user + system of the "
               "worker process from `/proc/PID/stat` over the measured interval, divided by "
               "events; for wrk, its rusage divided by the requests it completed. "
               "**RSS** = peak (`VmHWM`). **Redis CPU** = user + system of "
               "redis-server (all its threads) over the same interval, divided by the same "
               "events; **Redis commands** = the growth of `INFO commandstats` over that "
               "interval per event (wrk does not use Redis). Throughput is end to end for the "
               "workers (first produce to last result), requests/s for wrk. Every worker starts cold "
               "and is measured from the first produce, so start-up costs (for Node, most "
               "likely JIT warm-up and opening its pool's connections) weigh more in small runs: with `--quick` sizes the Node peer's CPU "
               "per event is well above its steady state.")
        self.w()
        rows = []
        for scen, runs in rows_by:
            iw = runs.get("invoice-worker")
            for who, x in runs.items():
                if not x:
                    rows.append([scen, who, "not run", "", "", "", "", "", ""])
                    continue
                cpu = x.get("cpu_us_per_event", x.get("cpu_us_per_request"))
                thr = x.get("events_per_s", x.get("requests_per_s"))
                ratio = ("%.2f" % (iw["cpu_us_per_event"] / cpu)
                         if iw and cpu and who != "invoice-worker" else "-")
                rows.append([scen, who, n(x.get("events", x.get("requests"))),
                             n(cpu, 1) if cpu is not None else "n/a",
                             redis_cpu(x), redis_cmds(x),
                             n(x["peak_rss_kb"] / 1024, 1) if x.get("peak_rss_kb") else "n/a",
                             n(thr), ratio])
        self.table(["target latency", "process", "events (wrk: requests)",
                    "CPU us per event (wrk: per request)", "Redis CPU us per event",
                    "Redis commands per event", "peak RSS MiB", "events/s (wrk: requests/s)",
                    "invoice-worker CPU / this"], rows)
        self.w("Redis commands per event by command, for the same runs. invoice-worker claims "
               "and completes each (event, target) with its Lua scripts (`EVALSHA`; the "
               "commands each script runs are counted too, under their own names); the Node "
               "peer and the Python reference send one `SET NX EX` per (event, target) and a "
               "`DEL` when the call fails.")
        self.w()
        self.table(["target latency", "process", "Redis commands per event", "of which script "
                    "calls", "by command (per event)"],
                   [[scen, who, redis_cmds(x), n(x.get("redis_script_calls_per_event"), 2),
                     by_command(x)]
                    for scen, runs in rows_by for who, x in runs.items()
                    if x and x.get("redis_commands") is not None])
        for scen, runs in rows_by:
            iw, nd, wk = runs.get("invoice-worker"), runs.get("Node.js peer"), runs.get("wrk")
            if iw and nd:
                x = nd["cpu_us_per_event"] / iw["cpu_us_per_event"]
                self.w("- %s: invoice-worker/Node CPU per event = %.2f (Node uses %.2fx "
                       "invoice-worker's CPU; goal %dx: %s); RSS %s vs %s MiB." % (
                           scen, iw["cpu_us_per_event"] / nd["cpu_us_per_event"], x,
                           TARGET_X_NODE[scen], peer_met(x >= TARGET_X_NODE[scen], nd["events"]),
                           n(iw["peak_rss_kb"] / 1024, 1), n(nd["peak_rss_kb"] / 1024, 1)))
            if iw and iw.get("redis_commands") is not None:
                parts = ["invoice-worker %s us (%s commands)" % (redis_cpu(iw), redis_cmds(iw))]
                for who in ("Node.js peer", "Python reference"):
                    x = runs.get(who)
                    if x and x.get("redis_commands") is not None:
                        parts.append("%s %s us (%s commands)" % (who, redis_cpu(x),
                                                                 redis_cmds(x)))
                self.w("- %s: Redis CPU per event: %s." % (scen, "; ".join(parts)))
            if iw and wk and wk.get("cpu_us_per_request"):
                x = iw["cpu_us_per_event"] / wk["cpu_us_per_request"]
                self.w("- %s: invoice-worker CPU per call = %.1fx wrk's client CPU per request "
                       "(goal at most %dx: %s)." % (scen, x, TARGET_X_WRK, met(x <= TARGET_X_WRK)))
            fl = runs.get("libcurl alone")
            if iw and fl and fl.get("cpu_us_per_request"):
                self.floor_line(scen, iw, fl["cpu_us_per_request"], wk, nd)
                un = runs.get("undici alone")
                if un and un.get("cpu_us_per_request"):
                    self.client_line(scen, iw, fl["cpu_us_per_request"], un["cpu_us_per_request"],
                                     nd)
        self.w()
        self.thread_table(rows_by)
        cmds = [x for _, runs in rows_by for x in runs.values() if x]
        self.commands(cmds)

    def floor_line(self, scen, iw, c, wk, nd):
        """What libcurl alone costs per call, and what each CPU goal leaves for the rest of the
        worker's work (Kafka, Redis, parse, render, classify, results) once it is paid."""
        left = []
        if wk and wk.get("cpu_us_per_request"):
            left.append("the goal of %dx wrk (%.1fx wrk's CPU per request here) leaves %s us" % (
                TARGET_X_WRK, c / wk["cpu_us_per_request"],
                n(TARGET_X_WRK * wk["cpu_us_per_request"] - c, 1)))
        if nd and nd.get("cpu_us_per_event"):
            left.append("the goal of %dx less than the Node peer leaves %s us" % (
                TARGET_X_NODE[scen], n(nd["cpu_us_per_event"] / TARGET_X_NODE[scen] - c, 1)))
        self.w("- %s: libcurl alone (`http_floor`, the worker's way of driving it, nothing else) "
               "costs %s us per call, %.0f%% of invoice-worker's CPU per event%s." % (
                   scen, n(c, 1), 100 * c / iw["cpu_us_per_event"],
                   "; once it is paid, " + " and ".join(left) + " per event for everything "
                   "else the worker does (%s us today)" % n(iw["cpu_us_per_event"] - c, 1)
                   if left else ""))

    def client_line(self, scen, iw, curl, undici, nd):
        """The two HTTP clients side by side, and what the Node goal asks of everything else."""
        text = ("- %s: the HTTP clients alone, same request, same calls in flight: undici %s us "
                "per call, libcurl %s us (undici uses %.2fx libcurl's CPU)" % (
                    scen, n(undici, 1), n(curl, 1), undici / curl))
        if nd and nd.get("cpu_us_per_event"):
            rest_nd, rest_iw = nd["cpu_us_per_event"] - undici, iw["cpu_us_per_event"] - curl
            goal = TARGET_X_NODE[scen]
            text += ("; without its client, the Node peer spends %s us per event and "
                     "invoice-worker %s us (%.2fx less); for %dx less in all, invoice-worker's "
                     "rest would have to fit in %s us" % (
                         n(rest_nd, 1), n(rest_iw, 1), rest_nd / rest_iw if rest_iw > 0 else 0,
                         goal, n(nd["cpu_us_per_event"] / goal - curl, 1)))
        self.w(text + ".")

    def thread_table(self, rows_by):
        """Each worker's CPU per event by group of threads (bench.thread_cpu_us_per_event)."""
        def switches(x, k):
            sw = x.get("main_switches_per_event")
            return n(sw[k], 2) if sw else "n/a"
        rows = [[scen, who, n(t["main"], 1), n(t["librdkafka"], 1), n(t["other"], 1),
                 switches(x, "voluntary"), switches(x, "involuntary")]
                for scen, runs in rows_by for who, x in runs.items()
                if x and (t := x.get("thread_cpu_us_per_event"))]
        if not rows:
            return
        self.w("The same CPU by thread (`/proc/PID/task/*/stat` over the same interval, us per "
               "event): the main thread (invoice-worker's loop; Node's JavaScript thread), "
               "librdkafka's threads (named `rdk:*`: consumer and producer, brokers and "
               "background) and the rest (Node's libuv and V8 threads, the Python reference's "
               "worker threads, invoice-worker's metrics server). A thread that ended inside the "
               "interval is missed. The last two columns count the main thread's context "
               "switches per event (`/proc/PID/task/PID/status`): voluntary when it waited for "
               "work, involuntary when it could have run but another process took its core. For "
               "invoice-worker, `perf record -g` puts the involuntary ones at the return from "
               "sending a request: the simulator, woken by it, takes the core. Each costs the "
               "measured process a switch out and back and a colder cache, which a target on "
               "another machine would not.")
        self.w()
        self.table(["target latency", "process", "main thread", "librdkafka threads", "other",
                    "voluntary switches", "involuntary switches"], rows)
        self.w()

    def method(self):
        m = self.r["sizes"]
        self.w("## Method")
        self.w()
        self.w("- The local stack (`build/local-stack`), fresh for each measured run: "
               "`redis-server`, `target-sim` (all five APIs, **validation on**: every request is "
               "checked against its contract) and `kafka-local` (librdkafka's mock cluster: 3 "
               "brokers, 32 partitions per topic), so every run starts from an empty ledger, "
               "simulator and topics.")
        self.w("- Events are the complete fixture invoice (`tests/fixtures/events/complete.json`, "
               "2 lines, about 3.5 KB of JSON) with ids, version and target replaced "
               "(`scripts/bench.d/gen_events.py`). \"Mixed adapters\": invoice *i* goes to "
               "adapter *i* mod 5; events of one invoice come in version order.")
        self.w("- The worker is started first and measured once it has joined the group (its "
               "\"partitions assigned\" log line). Then `invoice-worker send --lines` produces "
               "the events (lz4-compressed, so they fit the mock's 5 MB per partition) **while "
               "the worker runs**, on the same 2 cores.")
        self.w("- **End to end** = from the CreateTime of the first input message (the first "
               "produce) to the CreateTime of the last result message, both read back from "
               "Kafka. events/s = events / that time.")
        self.w("- **Worker CPU** = user + system time of the worker process (`/proc/PID/stat`) "
               "from just before the first produce to the last result, divided by events. "
               "**Peak RSS** = `VmHWM`. The worker logs at `info` (one line per result), as "
               "in production.")
        self.w("- **Redis CPU** = user + system time of redis-server (the local stack's; the pid "
               "it reported checked against `INFO server`'s `process_id`; `/proc/PID/stat` covers "
               "all of its threads) over the same interval as the worker's CPU, divided by the "
               "same events. **Redis commands** = the growth of `INFO commandstats` `calls` over "
               "that interval, per command and in all, divided by events; the two `INFO` calls "
               "that take the snapshots are left out. Redis counts each command a Lua script "
               "runs under that command's name as well as the `EVALSHA` that ran the script. "
               "`/proc` counts CPU in clock ticks (%s ms here): a run of 2,000 events sees Redis "
               "CPU in steps of %s us per event, and a run in which Redis used less than one "
               "tick shows \"< tick/events\"; read Redis CPU from the full-size runs." % (
                   n(1000.0 / CLK_TCK), n(1e6 / CLK_TCK / 2000, 1)))
        self.w("- Results are read back and counted; every run must produce exactly one result "
               "per event; the simulator's `/_sim/stats` gives the calls it received and "
               "their statuses.")
        self.w("- Sizes of this run: `%s`." % json.dumps(m))
        self.w()

    def s1(self, s):
        self.w("## 1. Throughput, fast target")
        self.w()
        self.w("Simulator latency 0, validation on, `max_in_flight` 512, `max_concurrency` 32 "
               "per target (the defaults). The Python reference worker "
               "(`scripts/bench.d/reference_worker.py`: confluent-kafka consumer and producer, "
               "Redis `SET NX EX` dedup, xml.etree rendering of centra_soap with the same "
               "mapping, a pool of 64 threads with a keep-alive `requests.Session` each) "
               "implements one adapter, so it is compared on a centra_soap-only event set with "
               "one event per invoice (nothing to coalesce), which invoice-worker also runs.")
        self.w()
        self.run_rows([s["worker_mixed"], s["worker_centra"], s["python_centra"]])
        rows = [[x["label"], x["connections"], x["seconds"], n(x["requests_per_s"]),
                 "%s of %s" % (n(x["sim_2xx"]), n(x["sim_requests"]))]
                for x in s["wrk"] + [s["wrk_centra"]]]
        self.w("The HTTP ceiling: `wrk` (2 threads) sending the requests `invoice-worker render` "
               "prints for one event (one per adapter, round robin; each with its own "
               "Idempotency-Key and X-Request-ID) to the same simulator. The ceiling is the best "
               "mixed figure: **%s requests/s**." % n(s["wrk_ceiling"]))
        self.w()
        self.table(["wrk run", "connections", "seconds", "requests/s", "2xx"], rows)
        wm = s["worker_mixed"]
        if wm.get("other_cpu_us_per_event"):
            self.w("CPU per event of every process in the mixed run (the machine has 2 cores, so "
                   "the sum bounds the throughput at about 2 s / sum):")
            self.w()
            procs = dict(wm["other_cpu_us_per_event"])
            procs = dict({"invoice-worker run": wm["cpu_us_per_event"]}, **procs)
            total = sum(procs.values())
            rows = [[k, n(v), "%.0f%%" % (100 * v / total)] for k, v in procs.items()]
            rows.append(["**sum**", n(total), "-> at most %s events/s on 2 idle cores" %
                         n(2e6 / total)])
            self.table(["process", "CPU us/event", "share"], rows)
        self.redis_table([wm])
        self.w("![throughput](throughput.png)")
        self.w()
        self.w("![cpu](cpu.png)")
        self.w()
        self.commands([wm, s["worker_centra"], s["python_centra"]] + s["wrk"] + [s["wrk_centra"]])

    def commands(self, runs):
        self.w("Command lines (config files are kept under `build/bench/work/`):")
        self.w()
        self.w("```")
        for x in runs:
            self.w(x["command"])
        self.w("invoice-worker send -c runNN-send.json --lines --no-check EVENTS.jsonl  # the producer")
        self.w("```")
        self.w()

    def s2(self, s):
        self.w("## 2. Slow target")
        self.w()
        self.w("Simulator latency 100 ms on every target, %s events over %s invoices, "
               "`max_in_flight` 512 and `max_concurrency` 512 per target (so the global bound "
               "is the one that binds). Concurrency bound: 512 / 0.1 s = %s events/s." % (
                   n(s["events"]), n(self.r["sizes"]["s2_invoices"]), n(s["bound"])))
        self.w()
        self.run_rows([s] + ([s["loaded"]] if s.get("loaded") else []))
        self.w("Measured: **%s events/s = %.0f%% of the bound**. The worker's `iw_in_flight` "
               "gauge (sampled once a second while busy) averaged %s, peak %s; by Little's law "
               "a call took %s ms on average against 100 ms of simulator latency." % (
                   n(s["events_per_s"]), 100 * s["events_per_s"] / s["bound"],
                   n(s["in_flight_mean"]), n(s["in_flight_max"]),
                   n(1000 * s["in_flight_mean"] / s["events_per_s"]) if s["in_flight_mean"]
                   else "n/a"))
        self.w()
        if s.get("wrk"):
            x = s["wrk"]
            self.w("In the same run, `wrk` with %d connections against the same simulator at the "
                   "same 100 ms got **%s requests/s** (%.0f%% of the bound): that is what the "
                   "simulator and this machine allow a client that keeps 512 requests in flight." % (
                       x["connections"], n(x["requests_per_s"]), 100 * x["requests_per_s"] / s["bound"]))
            self.w()
        mib = s["peak_rss_kb"] / 1024
        self.w("invoice-worker's peak RSS (`VmHWM`) in this run: **%s MiB** against the goal of "
               "at most %d MiB: %s.%s" % (
                   n(mib, 1), TARGET_RSS_MIB, met(mib <= TARGET_RSS_MIB),
                   (" The centra_soap-only run at the same latency and bound: %s MiB." %
                    n(s["peers"]["worker_centra"]["peak_rss_kb"] / 1024, 1))
                   if (s.get("peers") or {}).get("worker_centra") else ""))
        self.w()
        if s.get("loaded"):
            x = s["loaded"]
            self.w("The same run with %d busy loops (`while True: pass`) beside the stack, as on a "
                   "machine shared with other work: **%s MiB** peak RSS (%s), %s events/s. Under "
                   "load the sender's batches grow and librdkafka's fetches bring more "
                   "decompressed data beyond its queue (docs/performance.md)." % (
                       x["busy_loops"], n(x["peak_rss_kb"] / 1024, 1),
                       met(x["peak_rss_kb"] / 1024 <= TARGET_RSS_MIB), n(x["events_per_s"])))
            self.w()
        self.redis_table([s])
        self.commands([s] + ([s["wrk"]] if s.get("wrk") else []))

    def s3(self, s):
        self.w("## 3. Hot invoices")
        self.w()
        self.w("%s events over %s invoices (versions 1..%d of each), latency 50 ms." % (
            n(s["events"]), n(s["invoices"]), s["highest"]))
        self.w()
        self.run_rows([s])
        sup = s["statuses"].get("superseded", 0)
        self.w("- Calls sent: **%s for %s events** (%.1f%%); %s events were superseded by a newer "
               "version while they waited behind their invoice's call in flight." % (
                   n(s["sim_requests"]), n(s["events"]), 100.0 * s["sim_requests"] / s["events"],
                   n(sup)))
        self.w("- Final state at the simulator: %d of %d invoices hold version %d (their highest); "
               "%d ever went back to a lower version." % (s["final_ok"], s["final_seen"],
                                                          s["highest"], s["regressed"]))
        self.w()
        self.redis_table([s])
        self.commands([s])

    def s4(self, rows):
        self.w("## 4. Scaling with max_in_flight")
        self.w()
        self.w("Latency 20 ms, one event per invoice, `max_concurrency` 512 per target; the "
               "bound is max_in_flight / 20 ms.")
        self.w()
        self.table(["max_in_flight", "events", "events/s", "bound", "share of bound",
                    "worker CPU us/event", "Redis CPU us/event", "Redis commands/event"],
                   [[x["max_in_flight"], n(x["events"]), n(x["events_per_s"]), n(x["bound"]),
                     "%.0f%%" % (100 * x["events_per_s"] / x["bound"]),
                     n(x["cpu_us_per_event"]), redis_cpu(x), redis_cmds(x)] for x in rows])
        self.w("![scaling](scaling.png)")
        self.w()
        self.commands(rows)

    def s5(self, s):
        self.w("## 5. Cost per event (instructions, callgrind)")
        self.w()
        target = s.get("target_per_event", TARGET_IR)
        centra = "centra_soap" in s["label"]
        self.w("The worker under `valgrind --tool=callgrind --separate-threads=yes "
               "--instr-atstart=no` for %s %s events (one event per invoice, latency 0); "
               "instrumentation is switched on with `callgrind_control` once the worker has "
               "joined the group and off after the last result, so startup and shutdown are not "
               "counted. Instruction counts do not depend on the machine's load: this is the "
               "figure to compare between commits. **%s instructions per event** against the "
               "target of %s: %s (main thread %s, librdkafka threads %s; the metrics HTTP "
               "thread, polled by the benchmark, %s, not counted)." % (
                   n(s["events"]), "centra_soap" if centra else "mixed-adapter",
                   n(s["per_event"]), n(target), met(s["per_event"] <= target),
                   n(s.get("main_per_event")),
                   n(s.get("kafka_thread_per_event", s["stages"][-1]["per_event"])),
                   n(s.get("metrics_thread_per_event"))))
        self.w()
        self.w("The main thread split by stage through the call graph in `%s`: a function "
               "named in \"counted as\" (or any function of the library named there) and "
               "everything it calls belong to that stage, except what another stage claims "
               "(malloc and free are the allocator's wherever they are called from; the "
               "adapters' render and classify, called by the dispatcher, are stages of their "
               "own); a function several stages call "
               "has its own instructions shared among them in proportion to what each "
               "caller's calls to it cost. The stages do not overlap and add up to the total." %
               s["annotate"].rsplit(" ", 1)[-1])
        self.w()
        total = s["total_ir"] or 1
        rows = [[x["stage"], n(x["per_event"]), "%.1f%%" % (100.0 * x["ir"] / total),
                 x["functions"]] for x in s["stages"]]
        rows.append(["**total**", "**%s**" % n(s["per_event"]), "100%",
                     "main thread + librdkafka threads; target %s per event: %s" % (
                         n(target), met(s["per_event"] <= target))])
        self.table(["stage", "instructions/event", "share", "counted as"], rows)
        if s.get("malloc_by_stage"):
            self.w("The allocator's %s instructions per event by the stage that called it: %s." % (
                n(next((x["per_event"] for x in s["stages"] if x["stage"] == "malloc"), None)),
                ", ".join("%s %s" % (k, n(v)) for k, v in s["malloc_by_stage"].items()
                          if v >= 0.5)))
            self.w()
        if s.get("missing"):
            self.w("Stages with no instructions (functions renamed or inlined?): %s." %
                   ", ".join(s["missing"]))
            self.w()
        self.redis_table([s])
        self.w("![stages](stages.png)")
        self.w()
        self.w("The full inclusive listing is `callgrind-inclusive.txt` (`%s`); open "
               "`callgrind.out-01` with `callgrind_annotate --tree=calling` or KCachegrind "
               "for call trees." % s["annotate"])
        self.w()
        self.commands([s])

    def checks(self):
        self.w("## Checks")
        self.w()
        for c in self.r["checks"]:
            self.w("- [%s] %s%s" % ("x" if c["ok"] else " ", c["what"],
                                    (" (%s)" % c["detail"]) if c["detail"] and not c["ok"] else ""))
        self.w()

    def data(self):
        sc = self.r["scenarios"]
        if "s1" in sc:
            s = sc["s1"]
            with open(os.path.join(self.out, "throughput.dat"), "w") as f:
                f.write("# label value\n")
                f.write('"invoice-worker\\nmixed" %.1f\n' % s["worker_mixed"]["events_per_s"])
                f.write('"invoice-worker\\ncentra_soap" %.1f\n' % s["worker_centra"]["events_per_s"])
                f.write('"Python worker\\ncentra_soap" %.1f\n' % s["python_centra"]["events_per_s"])
                if s.get("node_centra"):
                    f.write('"Node.js peer\\ncentra_soap" %.1f\n' % s["node_centra"]["events_per_s"])
                f.write('"wrk ceiling\\nmixed" %.1f\n' % s["wrk_ceiling"])
                f.write('"wrk\\ncentra_soap" %.1f\n' % s["wrk_centra"]["requests_per_s"])
            wm = s["worker_mixed"]
            with open(os.path.join(self.out, "cpu.dat"), "w") as f:
                f.write("# process cpu_us_per_event\n")
                f.write('"invoice-worker" %.1f\n' % wm["cpu_us_per_event"])
                for k, v in (wm.get("other_cpu_us_per_event") or {}).items():
                    f.write('"%s" %.1f\n' % (k, v))
        if "s4" in sc:
            with open(os.path.join(self.out, "scaling.dat"), "w") as f:
                f.write("# max_in_flight events_per_s bound\n")
                for x in sc["s4"]:
                    f.write("%d %.1f %.1f\n" % (x["max_in_flight"], x["events_per_s"], x["bound"]))
        if "s5" in sc:
            with open(os.path.join(self.out, "stages.dat"), "w") as f:
                f.write("# stage instructions_per_event\n")
                for x in sc["s5"]["stages"]:
                    f.write('"%s" %.0f\n' % (x["stage"], max(0, x["per_event"])))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    with open(os.path.join(a.out, "results.json")) as f:
        res = json.load(f)
    global CLK_TCK
    CLK_TCK = res.get("machine", {}).get("clk_tck", CLK_TCK)
    rep = Report(res, a.out)
    text = rep.build()
    rep.data()
    with open(os.path.join(a.out, "report.md"), "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
