#!/usr/bin/python3
"""bench.py: the scenarios behind scripts/bench. Starts the local stack (build/local-stack:
redis-server, kafka-local, target-sim) on free loopback ports, fresh for each measured run, runs
invoice-worker, the Python reference worker, the Node.js peer (node_worker/, when scripts/bench
could install it) and wrk against it, runs the worker under
callgrind, and writes results.json, report.md and the plots' data under the output folder
(plots.gp turns the data into PNGs). Every comparison is measured in the same run as the figure it
is compared with.
"""
import argparse
import atexit
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from confluent_kafka import Consumer, TopicPartition

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "events", "complete.json")
ADAPTERS = ["centra_soap", "centra_navision", "midnight", "ebizcharge", "invoicexpress"]
PARTITIONS = 32
LOAD_LOOPS = 6  # scenario 2's run under load: busy loops beside the stack (2 cores here)
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Sizes per mode: the full run and --quick (a smoke check).
SIZES = {
    "full": dict(s1_events=100000, s1_invoices=10000, py_events=100000, wrk_s=10,
                 s2_events=20000, s2_invoices=10000, s3_events=50000, s3_invoices=100,
                 s4_seconds=8, s4_max=20000, s5_events=10000),
    "quick": dict(s1_events=3000, s1_invoices=600, py_events=1500, wrk_s=2,
                  s2_events=2000, s2_invoices=1000, s3_events=2000, s3_invoices=100,
                  s4_seconds=1, s4_max=1000, s5_events=300),
}

T0 = time.monotonic()
PROCS = []  # (Popen, name): everything this script started, stopped at exit


def say(msg):
    print("[%6.1fs] %s" % (time.monotonic() - T0, msg), flush=True)


def progress(msg):
    """A progress line that rewrites itself on a terminal and prints plainly otherwise."""
    if sys.stdout.isatty():
        sys.stdout.write("\r[%6.1fs]   %s\033[K" % (time.monotonic() - T0, msg))
        sys.stdout.flush()
    else:
        say("  " + msg)


def progress_end():
    if sys.stdout.isatty():
        sys.stdout.write("\n")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(argv, name, **kw):
    p = subprocess.Popen(argv, **kw)
    PROCS.append((p, name))
    return p


def stop(p, timeout=30):
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    for i, (q, _) in enumerate(PROCS):
        if q is p:
            del PROCS[i]
            break


def stop_all():
    for p, _ in reversed(PROCS[:]):
        stop(p, 10)


atexit.register(stop_all)


@contextlib.contextmanager
def busy_loops(n):
    """n processes spinning for as long as the block runs (a machine shared with other work),
    ended by their pids when it ends."""
    hogs = [start([sys.executable, "-c", "while True: pass"], "busy loop") for _ in range(n)]
    try:
        yield
    finally:
        for h in hogs:
            stop(h, 5)


def http(method, url, body=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def proc_cpu_s(pid):
    """user + system CPU seconds of a process (and its reaped children: none here)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_threads_cpu_s(pid):
    """{tid: (thread name, user + system CPU seconds)} for every thread of a process."""
    out = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for t in tids:
        try:
            with open("/proc/%d/task/%s/stat" % (pid, t)) as f:
                s = f.read()
        except OSError:  # the thread ended
            continue
        fields = s.rsplit(")", 1)[1].split()
        out[int(t)] = (s[s.index("(") + 1:s.rindex(")")],
                       (int(fields[11]) + int(fields[12])) / CLK_TCK)
    return out


def thread_cpu_us_per_event(pid, before, after, n_events):
    """CPU us per event over an interval by group of threads: the main thread (invoice-worker's
    loop, Node's JavaScript thread), librdkafka's threads (named rdk:*) and the rest. A thread
    that ended inside the interval is not counted."""
    groups = {"main": 0.0, "librdkafka": 0.0, "other": 0.0}
    for tid, (name, cpu) in after.items():
        g = "main" if tid == pid else "librdkafka" if name.startswith("rdk:") else "other"
        groups[g] += cpu - before.get(tid, (name, 0.0))[1]
    return {k: v * 1e6 / n_events for k, v in groups.items()}


def main_thread_switches(pid):
    """(voluntary, involuntary) context switches of pid's main thread so far: it gave up the
    core to wait, or was put off it while it could run (a woken process on the same core)."""
    out = [0, 0]
    with open("/proc/%d/task/%d/status" % (pid, pid)) as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                out[0] = int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                out[1] = int(line.split()[1])
    return out


def proc_hwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def fmt(n, digits=0):
    return ("{:,.%df}" % digits).format(n)


# The config keys whose values `invoice-worker render` prints as ***, in the order it prints them.
SECRET_KEYS = {"centra_soap": ["username", "password"], "centra_navision": [],
               "midnight": ["prc_token", "midnight_token", "mis_key"],
               "ebizcharge": ["security_id"], "invoicexpress": ["api_key"]}


def stack_config(build, path, brokers, redis_port, sim_base, http_port, max_in_flight=512,
                 max_concurrency=None, compress=False, extra=None):
    """The worker config of the local stack (`local-stack config`: the one template, all five
    targets pointing at the simulator) with the bench's settings merged over it; extra is merged
    over the whole config."""
    argv = [os.path.join(build, "local-stack"), "config", "--kafka", brokers,
            "--redis-port", str(redis_port), "--sim", sim_base, "--http-port", str(http_port),
            "--config", path,
            "--worker", json.dumps({"id": "bench-worker", "max_in_flight": max_in_flight}),
            "--set", json.dumps({"kafka": {"group_id": "bench"}})]
    if compress:  # only the sender's copy: the input must fit the mock's 5 MB per partition
        argv += ["--set", json.dumps({"kafka": {"properties": {"compression.type": "lz4"}}})]
    if extra:
        argv += ["--set", json.dumps(extra)]
    if max_concurrency:
        argv += ["--targets", json.dumps({"max_concurrency": max_concurrency})]
    subprocess.run(argv, check=True)
    return path


class Stack:
    """One local stack from build/local-stack: redis-server, kafka-local (PARTITIONS per topic)
    and target-sim (validation on, every reply delayed latency_ms), fresh for each measured run
    (an empty ledger, topics and simulator). It stops what it started when stopped or when this
    script ends (its stdin closes)."""

    def __init__(self, build, work, tag, latency_ms=0, kafka=True):
        self.build, self.work = build, work
        argv = [os.path.join(build, "local-stack"), "--dir", os.path.join(work, tag + "-stack"),
                "--partitions", str(PARTITIONS), "--validate", "on", "--latency", str(latency_ms)]
        if not kafka:
            argv.append("--no-kafka")
        log = os.path.join(work, tag + "-stack.log")
        self.proc = start(argv, "local-stack", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=open(log, "ab"))
        info = {}
        for line in self.proc.stdout:  # KEY=value lines up to READY=1
            k, _, v = line.decode().rstrip("\n").partition("=")
            info[k] = v
            if k == "READY":
                break
        if "READY" not in info:
            raise RuntimeError("local-stack did not start; see %s" % log)
        self.redis_port, self.redis_pid = int(info["REDIS_PORT"]), int(info["REDIS_PID"])
        self.sim_port, self.sim_pid, self.sim_base = (int(info["SIM_PORT"]), int(info["SIM_PID"]),
                                                      info["SIM_URL"])
        self.brokers = info.get("BROKERS")
        self.kafka_pid = int(info["KAFKA_PID"]) if "KAFKA_PID" in info else None
        with open(info["ENV_FILE"]) as f:  # the simulator's credentials: ${IW_SIM_*} in configs
            for line in f:
                k, eq, v = line.strip().partition("=")
                if eq and not k.startswith("#"):
                    os.environ.setdefault(k, v)
        # the pid whose /proc/PID/stat is read for Redis CPU: the server's own word for it (the
        # process the stack started, all of its threads)
        reported = int(self.redis_client().info("server")["process_id"])
        if reported != self.redis_pid:
            raise RuntimeError("redis-server reports pid %d, started as %d" % (reported,
                                                                                self.redis_pid))

    def stop(self):
        stop(self.proc)

    def redis_client(self):
        import redis
        return redis.Redis(port=self.redis_port)

    def redis_calls(self):
        """Calls per command so far ({"evalsha": n, "set": n, ...}) from INFO commandstats.
        Redis counts the commands a Lua script runs under their own names as well."""
        stats = self.redis_client().info("commandstats")
        return {k[len("cmdstat_"):]: v["calls"] for k, v in stats.items()
                if k.startswith("cmdstat_")}

    def sim_call(self, method, path, body=None):
        st, text = http(method, self.sim_base + path, body)
        if st >= 300:
            raise RuntimeError("target-sim %s %s: %d %s" % (method, path, st, text[:200]))
        return json.loads(text) if text.strip().startswith("{") else text

    def worker_config(self, path, http_port, **kw):
        return stack_config(self.build, path, self.brokers, self.redis_port, self.sim_base,
                            http_port, **kw)


# ---- Kafka read-back ----

def _consumer(brokers):
    return Consumer({"bootstrap.servers": brokers, "group.id": "bench-reader",
                     "enable.auto.commit": False, "enable.partition.eof": True,
                     "fetch.max.bytes": 52428800})


def first_timestamp(brokers, topic):
    """CreateTime (ms) of the earliest message of topic: the first produce."""
    c = _consumer(brokers)
    parts = list(c.list_topics(topic, timeout=10).topics[topic].partitions)
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    first, seen, end = None, set(), time.monotonic() + 30
    while len(seen) < len(parts) and time.monotonic() < end:
        for m in c.consume(num_messages=len(parts), timeout=1):
            if m.partition() in seen:
                continue
            seen.add(m.partition())
            if not m.error():
                ts = m.timestamp()[1]
                first = ts if first is None else min(first, ts)
            c.pause([TopicPartition(topic, m.partition())])
    c.close()
    return first


def read_results(brokers, topic, want, timeout=120):
    """Reads topic from the start: count, first and last CreateTime (ms), statuses."""
    c = _consumer(brokers)
    parts = list(c.list_topics(topic, timeout=10).topics[topic].partitions)
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    n, first, last, statuses, eof = 0, None, 0, {}, set()
    end = time.monotonic() + timeout
    while time.monotonic() < end and not (n >= want and len(eof) == len(parts)):
        for m in c.consume(num_messages=10000, timeout=1):
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    eof.add(m.partition())
                continue
            eof.discard(m.partition())
            n += 1
            last = max(last, m.timestamp()[1])
            first = m.timestamp()[1] if first is None else min(first, m.timestamp()[1])
            try:
                st = json.loads(m.value()).get("status")
            except ValueError:
                st = "unparsable"
            statuses[st] = statuses.get(st, 0) + 1
    c.close()
    return {"count": n, "first_ts": first, "last_ts": last, "statuses": statuses}


def metric_sum(port, name):
    try:
        st, text = http("GET", "http://127.0.0.1:%d/metrics" % port, timeout=5)
    except OSError:
        return None
    if st != 200:
        return None
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_log(path, text, proc, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("process exited (%s) before '%s'; see %s" % (proc.returncode, text, path))
        try:
            with open(path, errors="replace") as f:
                if text in f.read():
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.1)
    raise RuntimeError("no '%s' in %s within %d s" % (text, path, timeout))


# ---- one measured run ----

class Bench:
    def __init__(self, a):
        self.a = a
        self.sz = dict(SIZES["quick" if a.quick else "full"])
        for k in self.sz:  # IW_BENCH_<KEY>=N overrides a size (for experiments)
            v = os.environ.get("IW_BENCH_" + k.upper())
            if v:
                self.sz[k] = int(v)
        self.build = a.build
        self.bin = os.path.join(a.build, "invoice-worker")
        self.out = a.out
        self.work = os.path.join(a.out, "work")
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work)
        self.results = {"mode": "quick" if a.quick else "full", "scenarios": {}, "checks": []}
        self.stack = None  # the current run's local stack
        self.worker_extra = None  # merged over the measured worker's config (peak_rss.py)
        self.run_no = 0
        self.node_bin = shutil.which("node") if a.node else None
        self.results["node_peer"] = self.node_peer_info()

    def node_peer_info(self):
        """What the Node.js peer is built from, or why it is not measured."""
        if not self.a.node:
            return {"available": False, "reason": self.a.node_unavailable or "not requested"}
        if not self.node_bin:
            return {"available": False, "reason": "node is not on PATH"}
        info = {"available": True, "node": subprocess.run([self.node_bin, "--version"],
                                                          capture_output=True, text=True).stdout.strip()}
        with open(os.path.join(self.a.node, "package.json")) as f:
            info["dependencies"] = json.load(f).get("dependencies", {})
        r = subprocess.run([self.node_bin, "-e", "process.stdout.write(require('@confluentinc/kafka-javascript')"
                            ".librdkafkaVersion)"], cwd=self.a.node, capture_output=True, text=True)
        info["librdkafka"] = r.stdout.strip() or "unknown"
        return info

    def check(self, what, ok, detail=""):
        self.results["checks"].append({"what": what, "ok": bool(ok), "detail": detail})
        if not ok:
            say("CHECK FAILED: %s %s" % (what, detail))

    def events(self, name, n, invoices, targets="mixed"):
        path = os.path.join(self.work, name + ".jsonl")
        if not os.path.exists(path):
            subprocess.run([sys.executable, os.path.join(HERE, "gen_events.py"), "--fixture", FIXTURE,
                            "--events", str(n), "--invoices", str(invoices), "--targets", targets,
                            "--prefix", name.upper(), "-o", path], check=True,
                           stdout=subprocess.DEVNULL)
        return path

    def run(self, label, events_path, n_events, expect, latency_ms=0, max_in_flight=512,
            max_concurrency=None, python=False, node=False, valgrind_out=None, timeout=600):
        """Runs one worker (invoice-worker, the Python reference when python, the Node.js peer
        when node) over a fresh Kafka, produces the events while it runs and waits for `expect`
        results."""
        self.run_no += 1
        tag = "run%02d" % self.run_no
        st = self.new_stack(tag, latency_ms)
        http_port = free_port()
        cfg = st.worker_config(os.path.join(self.work, tag + "-worker.json"), http_port,
                               max_in_flight=max_in_flight, max_concurrency=max_concurrency,
                               extra=self.worker_extra)
        send_cfg = st.worker_config(os.path.join(self.work, tag + "-send.json"), free_port(),
                                    compress=True)
        log = os.path.join(self.work, tag + "-worker.log")
        if python:
            argv = [sys.executable, os.path.join(HERE, "reference_worker.py"),
                    "--brokers", st.brokers, "--redis-port", str(st.redis_port),
                    "--url", st.sim_base + "/amsdocs/system/service/module/soap/api"]
            out_path = os.path.join(self.work, tag + "-reference.out")
            w = start(argv, "reference worker", stdout=open(out_path, "wb"), stderr=open(log, "wb"))
        elif node:
            argv = [self.node_bin, os.path.join(self.a.node, "worker.js"),
                    "--brokers", st.brokers, "--redis-port", str(st.redis_port),
                    "--url", st.sim_base + "/amsdocs/system/service/module/soap/api",
                    "--max-in-flight", str(max_in_flight)]
            out_path = os.path.join(self.work, tag + "-node.out")
            w = start(argv, "node peer", stdout=open(out_path, "wb"), stderr=open(log, "wb"))
        else:
            argv = [self.bin, "run", "-c", cfg]
            if valgrind_out:
                # instrumentation is switched on once the worker is in the group and off after
                # the last result: the counts cover exactly the events' processing
                argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes",
                        "--callgrind-out-file=" + valgrind_out] + argv
            w = start(argv, "invoice-worker", stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
        say("%s: %s (%s events, latency %d ms, max_in_flight %d)" %
            (tag, label, fmt(n_events), latency_ms, max_in_flight))
        if python or node:
            wait_log(out_path, "assigned", w, 60)
        else:
            wait_log(log, "partitions assigned", w, 300 if valgrind_out else 60)
        if valgrind_out:
            subprocess.run(["callgrind_control", "--instr=on", str(w.pid)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu0 = proc_cpu_s(w.pid)
        threads0 = proc_threads_cpu_s(w.pid)
        switches0 = main_thread_switches(w.pid)
        others = {"target-sim": st.sim_pid, "redis-server": st.redis_pid, "kafka-local": st.kafka_pid}
        others0 = {k: proc_cpu_s(pid) for k, pid in others.items()}
        calls0 = st.redis_calls()
        wall0 = time.time()
        sender = start([self.bin, "send", "-c", send_cfg, "--lines", "--no-check", events_path],
                       "send", stdout=subprocess.DEVNULL, stderr=open(log + ".send", "wb"))
        done, last_print, last_done, last_t = 0, 0.0, 0, time.monotonic()
        samples = []  # the worker's iw_in_flight gauge (updated once a second) while busy
        end = time.monotonic() + timeout
        while done < expect:
            if w.poll() is not None:
                raise RuntimeError("%s exited with %s; see %s" % (label, w.returncode, log))
            if time.monotonic() > end:
                raise RuntimeError("%s: %d of %d results after %d s" % (label, done, expect, timeout))
            time.sleep(1.0 if valgrind_out else 0.25)
            if python or node:
                with open(out_path) as f:
                    lines = [l for l in f.read().split("\n") if l.startswith("results ")]
                done = int(lines[-1].split()[1]) if lines else 0
            else:
                v = metric_sum(http_port, "iw_results_total")
                done = int(v) if v is not None else done
                inf = metric_sum(http_port, "iw_in_flight")
                if inf is not None and 0 < done < expect:
                    samples.append(inf)
            now = time.monotonic()
            if now - last_print >= 1.0:
                rate = (done - last_done) / (now - last_t) if now > last_t else 0
                progress("%s: %s/%s results, %s/s" % (label, fmt(done), fmt(expect), fmt(rate)))
                last_print, last_done, last_t = now, done, now
        progress_end()
        if valgrind_out:
            subprocess.run(["callgrind_control", "--instr=off", str(w.pid)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall1 = time.time()
        cpu1 = proc_cpu_s(w.pid)
        threads1 = proc_threads_cpu_s(w.pid)
        switches1 = main_thread_switches(w.pid)
        hwm = proc_hwm_kb(w.pid)
        others1 = {k: proc_cpu_s(pid) for k, pid in others.items()}
        calls1 = st.redis_calls()
        # how often the worker woke librdkafka's fetchers early (pipeline.c, wake_fetchers)
        wakes = None if python or node or valgrind_out else metric_sum(
            http_port, "iw_consumer_fetch_wakes_total")
        _, status, ru = os.wait4(sender.pid, 0)  # reaps it, with its CPU time
        sender.returncode = os.waitstatus_to_exitcode(status)
        stop(sender)
        if sender.returncode != 0:
            raise RuntimeError("send failed; see %s.send" % log)
        first = first_timestamp(st.brokers, "invoice-events")
        res = read_results(st.brokers, "invoice-results", expect)
        stats = st.sim_call("GET", "/_sim/stats")
        r = {
            "label": label, "events": n_events, "expect": expect, "latency_ms": latency_ms,
            "max_in_flight": max_in_flight, "max_concurrency": max_concurrency or 32,
            "results": res["count"], "statuses": res["statuses"],
            "seconds": (res["last_ts"] - first) / 1000.0 if first and res["last_ts"] else None,
            # from the first produce to the first result: start-up (fetch, connections, linger)
            "first_result_ms": res["first_ts"] - first if first and res["first_ts"] else None,
            "wall_seconds": wall1 - wall0, "cpu_s": cpu1 - cpu0, "peak_rss_kb": hwm,
            "sim_requests": stats.get("requests", 0),
            "sim_2xx": sum(v for k, v in stats.get("by_status", {}).items() if k.startswith("2")),
            "command": " ".join(argv),
            "other_cpu_us_per_event": dict(
                {k: (others1[k] - others0[k]) * 1e6 / n_events for k in others},
                **{"invoice-worker send": (ru.ru_utime + ru.ru_stime) * 1e6 / n_events}),
            "fetch_wakes": wakes,
            "in_flight_max": max(samples) if samples else None,
            "in_flight_mean": sum(samples) / len(samples) if samples else None,
        }
        r["events_per_s"] = n_events / r["seconds"] if r["seconds"] else 0
        r["cpu_us_per_event"] = r["cpu_s"] * 1e6 / n_events
        if not valgrind_out:  # under valgrind the threads are valgrind's
            r["thread_cpu_us_per_event"] = thread_cpu_us_per_event(w.pid, threads0, threads1,
                                                                   n_events)
            r["main_switches_per_event"] = {
                k: (switches1[i] - switches0[i]) / n_events
                for i, k in enumerate(("voluntary", "involuntary"))}
        # Redis over the same interval: redis-server's CPU, and its commands by name (the two
        # INFO commandstats calls that take the snapshots are left out)
        calls = {k: v - calls0.get(k, 0) for k, v in calls1.items()}
        calls["info"] = calls.get("info", 0) - 1
        calls = {k: v for k, v in calls.items() if v > 0}
        r["redis_cpu_us_per_event"] = r["other_cpu_us_per_event"]["redis-server"]
        r["redis_commands"] = calls
        r["redis_commands_per_event"] = sum(calls.values()) / n_events
        r["redis_script_calls_per_event"] = sum(
            v for k, v in calls.items() if k in ("eval", "evalsha", "eval_ro", "evalsha_ro",
                                                  "fcall", "fcall_ro")) / n_events
        self._stop_worker(w, valgrind_out)  # the stack stays until the next run (scenario 3 reads it)
        say("   %s events/s end to end (%.2f s, the first result after %s ms), %s us CPU/event, "
            "peak RSS %s MiB, %s calls (%s 2xx); Redis %s us CPU/event, %s commands/event" % (
                fmt(r["events_per_s"]), r["seconds"] or 0, fmt(r["first_result_ms"] or 0),
                fmt(r["cpu_us_per_event"]),
                fmt(hwm / 1024, 1), fmt(r["sim_requests"]), fmt(r["sim_2xx"]),
                fmt(r["redis_cpu_us_per_event"], 1), fmt(r["redis_commands_per_event"], 2)))
        self.check("%s: %d results" % (label, expect), res["count"] == expect,
                   "read %d" % res["count"])
        return r

    def new_stack(self, tag, latency_ms=0, kafka=True):
        """Stops the last run's stack and starts a fresh one."""
        if self.stack:
            self.stack.stop()
        self.stack = None
        self.stack = Stack(self.build, self.work, tag, latency_ms, kafka)
        return self.stack

    def _stop_worker(self, w, valgrind_out):
        stop(w, timeout=120 if valgrind_out else 30)

    # ---- scenario 1 ----

    def wrk_requests(self, event_path, targets):
        """The exact requests the worker sends for one event, one per target, via
        `invoice-worker render` (secrets are printed as *** and put back here)."""
        with open(event_path) as f:
            ev = json.loads(f.readline())
        one = os.path.join(self.work, "wrk-event.json")
        # render connects to nothing: the addresses only have to be well-formed
        cfg = stack_config(self.build, os.path.join(self.work, "wrk-render.json"), "127.0.0.1:9",
                           9, "http://127.0.0.1:9", 1)
        with open(cfg) as f:
            conf = json.load(f)["targets"]
        secrets = {t: [os.path.expandvars(conf[t][k]) for k in keys]
                   for t, keys in SECRET_KEYS.items()}
        reqs = []
        for t in targets:
            e = dict(ev, targets=[t])
            with open(one, "w") as f:
                json.dump(e, f)
            text = subprocess.run([self.bin, "render", "-c", cfg, "--target", t, one], check=True,
                                  capture_output=True).stdout.decode("utf-8")
            for s in secrets[t]:
                text = text.replace("***", s, 1)
            if "***" in text:
                raise RuntimeError("render of %s hides a secret this script does not know" % t)
            head, body = text.split("\n\n", 1)
            lines = head.split("\n")
            method, url = lines[0].split(" ", 1)
            path = "/" + url.split("/", 3)[3]
            hdrs = [l for l in lines[1:] if l and not l.lower().startswith(("idempotency-key:", "x-request-id:"))]
            if body.endswith("\n"):  # render ends its output with a newline; the body has none
                body = body[:-1]
            body = body.encode()
            reqs.append({"target": t, "method": method, "path": path, "headers": hdrs,
                         "body": body})
        return reqs

    def wrk(self, label, reqs, connections, seconds, latency_ms=0):
        """wrk POSTing the rendered requests round-robin, each with its own request id."""
        self.new_stack("wrk-%s-%d" % (label, connections), latency_ms, kafka=False)
        lua = os.path.join(self.work, "wrk-%s.lua" % label)
        parts = []
        for r in reqs:
            head = "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\nContent-Length: %d\r\n" % (
                r["method"], r["path"], self.stack.sim_port, "\r\n".join(r["headers"]), len(r["body"]))
            parts.append((head, r["target"], r["body"]))

        def lstr(b):
            """A Lua quoted string holding exactly the bytes b (long brackets would fold CR LF)."""
            out = []
            for c in b:
                ch = chr(c)
                if ch in '"\\':
                    out.append("\\" + ch)
                elif 32 <= c < 127:
                    out.append(ch)
                else:
                    out.append("\\%03d" % c)
            return '"' + "".join(out) + '"'
        with open(lua, "w") as f:
            f.write("-- generated by scripts/bench.d/bench.py: the worker's rendered requests\n")
            f.write("local reqs = {\n")
            for head, t, body in parts:
                f.write("  {%s, %s, %s},\n" % (lstr(head.encode()), lstr(t.encode()),
                                               lstr(b"\r\n" + body)))
            f.write("}\n")
            f.write("""
local n = 0 -- tid is set per thread by setup()
local threads = 0
function setup(thread) threads = threads + 1; thread:set("tid", threads) end
function request()
  n = n + 1
  local r = reqs[(n % #reqs) + 1]
  local id = string.format("WRK-%d-%d:%s", tid, n, r[2])
  return r[1] .. "Idempotency-Key: " .. id .. "\\r\\nX-Request-ID: " .. id .. ":1\\r\\n" .. r[3]
end
""")
        argv = ["wrk", "-t2", "-c%d" % connections, "-d%ds" % seconds, "-s", lua,
                self.stack.sim_base + "/"]
        say("wrk: %s, %d connections, %d s, latency %d ms" % (label, connections, seconds, latency_ms))
        # wrk's own CPU (user + system of all its threads, from wait4's rusage) per request it
        # completed: the client-side cost of one HTTP call, to compare with a worker's per event
        out_path = os.path.join(self.work, "wrk-%s-%d.out" % (label, connections))
        p = subprocess.Popen(argv, stdout=open(out_path, "w"), stderr=subprocess.STDOUT)
        # wrk's peak RSS is its VmHWM, read while it runs: wait4's ru_maxrss would be this
        # script's, which Linux carries across the fork and exec into the child
        hwm = 0
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            try:
                hwm = max(hwm, proc_hwm_kb(p.pid))
            except OSError:
                pass
            time.sleep(0.05)
        p.returncode = os.waitstatus_to_exitcode(status)
        with open(out_path) as f:
            out = f.read()
        m = re.search(r"Requests/sec:\s*([\d.]+)", out)
        mn = re.search(r"(\d+) requests in", out)
        done = int(mn.group(1)) if mn else 0
        cpu_s = ru.ru_utime + ru.ru_stime
        total, ok = self.sim_counts()
        rps = float(m.group(1)) if m else 0.0
        say("   %s requests/s, %s of %s answered 2xx, client CPU %s us/request, peak RSS %s MiB" % (
            fmt(rps), fmt(ok), fmt(total), fmt(cpu_s * 1e6 / done if done else 0, 1),
            fmt(hwm / 1024, 1)))
        self.check("wrk %s: every request accepted (2xx)" % label, total > 0 and ok == total,
                   "%d of %d" % (ok, total))
        return {"label": label, "connections": connections, "seconds": seconds,
                "requests_per_s": rps, "sim_requests": total, "sim_2xx": ok,
                "requests": done, "cpu_s": cpu_s,
                "cpu_us_per_request": cpu_s * 1e6 / done if done else None,
                "peak_rss_kb": hwm, "command": " ".join(argv)}

    def sim_counts(self):
        """(requests, 2xx) as the current stack's simulator counted them."""
        stats = self.stack.sim_call("GET", "/_sim/stats")
        return (stats.get("requests", 0),
                sum(v for k, v in stats.get("by_status", {}).items() if k.startswith("2")))

    def http_floor(self, label, req, connections, requests, latency_ms=0, node=False):
        """tests/bench/http_floor: libcurl alone, driven as the worker drives it (epoll,
        multi_socket_action, reused handles, the worker's options and call headers), posting
        req to a fresh simulator: the floor of the worker's HTTP cost on this machine. With
        node, the Node peer's counterpart (node_worker/http_floor.js: undici alone, its Pool set
        up as the peer's) posts the same request the same way."""
        who = "undici_floor" if node else "http_floor"
        self.new_stack("%s-%s-%d" % (who, label, connections), latency_ms, kafka=False)
        path = os.path.join(self.work, "floor-%s.req" % label)
        with open(path, "wb") as f:
            f.write(("%s URL\n%s\n\n" % (req["method"], "\n".join(req["headers"]))).encode())
            f.write(req["body"])
        prog = ([self.node_bin, os.path.join(self.a.node, "http_floor.js")] if node
                else [os.path.join(self.build, "http_floor")])
        argv = prog + [path, self.stack.sim_base + req["path"], str(connections), str(requests)]
        say("%s: %s, %d connections, %d requests, latency %d ms" % (
            who, label, connections, requests, latency_ms))
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = p.communicate(timeout=600)
        r = json.loads(out.decode()) if p.returncode in (0, 1) and out else {}
        total, ok = self.sim_counts()
        say("   %s requests/s, %s of %s answered 2xx, CPU %s us/request" % (
            fmt(r.get("requests_per_s", 0)), fmt(ok), fmt(total),
            fmt(r.get("cpu_us_per_request", 0), 1)))
        warm = r.get("warmup", 0)  # undici's warm-up calls, not measured
        self.check("%s %s: every request accepted (2xx)" % (who, label),
                   p.returncode == 0 and total == requests + warm and ok == total,
                   "%d of %d (exit %d, %s)" % (ok, total, p.returncode, err.decode().strip()))
        r.update({"label": label, "connections": connections, "sim_requests": total,
                  "sim_2xx": ok, "command": " ".join(argv)})
        return r

    def scenario1(self):
        sz = self.sz
        n, inv = sz["s1_events"], sz["s1_invoices"]
        mixed = self.events("s1mixed", n, inv)
        # one event per invoice: nothing to coalesce, so both workers make one call per event
        centra = self.events("s1centra", sz["py_events"], sz["py_events"], "centra_soap")
        s = {}
        s["worker_mixed"] = self.run("invoice-worker, mixed adapters", mixed, n, n)
        s["worker_centra"] = self.run("invoice-worker, centra_soap only", centra, sz["py_events"],
                                      sz["py_events"])
        s["python_centra"] = self.run("Python reference worker, centra_soap only", centra,
                                      sz["py_events"], sz["py_events"], python=True,
                                      timeout=1800)
        if self.node_ok():
            s["node_centra"] = self.run("Node.js peer, centra_soap only", centra, sz["py_events"],
                                        sz["py_events"], node=True, timeout=1800)
            self.peer_checks("node (0 ms)", s["node_centra"])
        reqs = self.wrk_requests(mixed, ADAPTERS)
        s["wrk"] = []
        for c in (64, 160):
            s["wrk"].append(self.wrk("mixed", reqs, c, sz["wrk_s"]))
        centra_reqs = [r for r in reqs if r["target"] == "centra_soap"]
        s["wrk_centra"] = self.wrk("centra_soap", centra_reqs, 64, sz["wrk_s"])
        s["floor_centra"] = self.http_floor("centra_soap", centra_reqs[0], 64, sz["py_events"])
        if self.node_ok():
            s["undici_floor_centra"] = self.http_floor("centra_soap", centra_reqs[0], 64,
                                                       sz["py_events"], node=True)
        s["wrk_ceiling"] = max(x["requests_per_s"] for x in s["wrk"])
        for k in ("worker_mixed", "worker_centra"):
            ok = s[k]["statuses"].get("succeeded", 0)
            sup = s[k]["statuses"].get("superseded", 0)
            self.check("%s: every result succeeded or superseded" % k, ok + sup == s[k]["expect"],
                       str(s[k]["statuses"]))
            self.check("%s: one accepted call per succeeded result" % k,
                       s[k]["sim_2xx"] == s[k]["sim_requests"] == ok,
                       "%d 2xx of %d calls, %d succeeded" % (s[k]["sim_2xx"], s[k]["sim_requests"], ok))
        p = s["python_centra"]
        self.check("python: every result succeeded", p["statuses"].get("succeeded", 0) == p["expect"],
                   str(p["statuses"]))
        self.check("python: every call accepted by the simulator (validation on)",
                   p["sim_2xx"] == p["sim_requests"] == p["expect"],
                   "%d 2xx of %d calls" % (p["sim_2xx"], p["sim_requests"]))
        self.results["scenarios"]["s1"] = s

    # ---- scenario 2 ----

    def scenario2(self):
        n, inv = self.sz["s2_events"], self.sz["s2_invoices"]
        path = self.events("s2", n, inv)
        r = self.run("slow target", path, n, n, latency_ms=100, max_in_flight=512,
                     max_concurrency=512)
        r["bound"] = 512 / 0.1
        # the same simulator at the same latency driven by wrk with 512 connections: what a
        # client holding 512 requests in flight gets from it on this machine right now
        r["wrk"] = self.wrk("slow", self.wrk_requests(path, ADAPTERS), 512,
                            max(3, self.sz["wrk_s"]), latency_ms=100)
        self.check("slow target: every result succeeded", r["statuses"].get("succeeded", 0) == n,
                   str(r["statuses"]))
        # the same run on a machine busy with other work: batches and fetches grow, and the
        # memory bound must hold there too
        with busy_loops(LOAD_LOOPS):
            r["loaded"] = self.run("slow target, %d busy loops beside the stack" % LOAD_LOOPS, path,
                                   n, n, latency_ms=100, max_in_flight=512, max_concurrency=512)
        r["loaded"]["busy_loops"] = LOAD_LOOPS
        self.check("slow target under load: every result succeeded",
                   r["loaded"]["statuses"].get("succeeded", 0) == n, str(r["loaded"]["statuses"]))
        # the peers at the same latency and bound: they implement centra_soap only, so all
        # three run one centra_soap event set (one event per invoice), and wrk posts the same
        # centra_soap request with 512 connections
        centra = self.events("s2centra", n, n, "centra_soap")
        peers = {"worker_centra": self.run("slow target, invoice-worker, centra_soap only", centra,
                                           n, n, latency_ms=100, max_in_flight=512,
                                           max_concurrency=512)}
        w = peers["worker_centra"]
        self.check("slow target, centra_soap only: every result succeeded",
                   w["statuses"].get("succeeded", 0) == n, str(w["statuses"]))
        if self.node_ok():
            peers["node_centra"] = self.run("slow target, Node.js peer, centra_soap only", centra,
                                            n, n, latency_ms=100, max_in_flight=512, node=True,
                                            timeout=1800)
            self.peer_checks("node (100 ms)", peers["node_centra"])
        peers["python_centra"] = self.run("slow target, Python reference, centra_soap only",
                                          centra, n, n, latency_ms=100, python=True, timeout=1800)
        self.peer_checks("python (100 ms)", peers["python_centra"])
        centra_reqs = self.wrk_requests(centra, ["centra_soap"])  # rendered once for both
        peers["wrk_centra"] = self.wrk("slow-centra", centra_reqs, 512, max(3, self.sz["wrk_s"]),
                                       latency_ms=100)
        peers["floor_centra"] = self.http_floor("slow-centra", centra_reqs[0], 512, n,
                                                latency_ms=100)
        if self.node_ok():
            peers["undici_floor_centra"] = self.http_floor("slow-centra", centra_reqs[0], 512, n,
                                                           latency_ms=100, node=True)
        r["peers"] = peers
        self.results["scenarios"]["s2"] = r

    def node_ok(self):
        return bool(self.a.node) and self.node_bin is not None

    def peer_checks(self, who, p):
        self.check("%s: every result succeeded" % who, p["statuses"].get("succeeded", 0) == p["expect"],
                   str(p["statuses"]))
        self.check("%s: every call accepted by the simulator (validation on)" % who,
                   p["sim_2xx"] == p["sim_requests"] == p["expect"],
                   "%d 2xx of %d calls" % (p["sim_2xx"], p["sim_requests"]))

    # ---- scenario 3 ----

    def scenario3(self):
        n, inv = self.sz["s3_events"], self.sz["s3_invoices"]
        path = self.events("s3", n, inv)
        r = self.run("hot invoices", path, n, n, latency_ms=50)
        highest = n // inv  # every invoice gets the same number of versions
        final_ok, regressed, seen = 0, 0, 0
        for t in ADAPTERS:
            state = self.stack.sim_call("GET", "/_sim/state?target=" + t)
            invs = state.get("targets", {}).get(t, {}).get("invoices", {})
            for rec in invs.values():
                seen += 1
                if int(rec.get("version") or 0) == highest:
                    final_ok += 1
                if int(rec.get("version") or 0) < int(rec.get("max_version") or 0):
                    regressed += 1
        r.update(highest=highest, invoices=inv, final_ok=final_ok, final_seen=seen,
                 regressed=regressed)
        self.check("hot invoices: every invoice ends at its highest version (%d)" % highest,
                   final_ok == inv and seen == inv and regressed == 0,
                   "%d of %d at v%d, %d regressed" % (final_ok, seen, highest, regressed))
        sup = r["statuses"].get("superseded", 0)
        self.check("hot invoices: calls + superseded = events",
                   r["statuses"].get("succeeded", 0) + sup == n, str(r["statuses"]))
        self.results["scenarios"]["s3"] = r

    # ---- scenario 4 ----

    def scenario4(self):
        rows = []
        for mif in (1, 8, 64, 512):
            bound = mif / 0.02
            n = int(min(self.sz["s4_max"], max(50, bound * self.sz["s4_seconds"])))
            path = self.events("s4n%d" % n, n, n)
            r = self.run("scaling, max_in_flight %d" % mif, path, n, n, latency_ms=20,
                         max_in_flight=mif, max_concurrency=512)
            r["bound"] = bound
            rows.append(r)
        self.results["scenarios"]["s4"] = rows

    # ---- scenario 5 ----

    # Stages of the main thread. Every function is given to a stage: a function that matches a
    # rule (its name, or the library it is in) is that stage's entry point and all of its own
    # instructions are that stage's; any other function's own instructions are shared among its
    # callers' stages in proportion to the inclusive cost of each caller's calls to it
    # (gprof-style), through the call graph callgrind recorded. The rules are tried in order, so
    # malloc and free are the allocator's wherever they are called from: the stages below add up
    # to the main thread's total with no overlap.
    STAGE_RULES = [
        # (stage, function name regex or None, object regex or None, what it counts)
        ("malloc", r"^(malloc|free|calloc|realloc|reallocarray|cfree|posix_memalign|"
                   r"aligned_alloc|memalign|valloc|pvalloc|_int_malloc|_int_free|_int_realloc|"
                   r"_int_memalign|malloc_consolidate|sysmalloc|systrim|unlink_chunk|"
                   r"tcache_\w+|__libc_(malloc|free|calloc|realloc|memalign))$", r"libc\.so",
         "glibc's malloc, free, calloc, realloc and their internals, whoever calls them"),
        ("parse", r"^iw_event_parse$", None,
         "iw_event_parse: the one-pass read into the model, and freeing it"),
        ("render", r"(_render|_validate)$|^iw_request_add_call_headers$", None,
         "the adapters' *_render and *_validate (the buffer writer, decimal formatting), "
         "iw_request_add_call_headers"),
        ("HTTP/libcurl", r"^iw_dispatch_run$", r"libcurl\.so",
         "every libcurl function (requests, sockets, reply bodies, completion handling) and "
         "iw_dispatch_run; the dispatcher's own bookkeeping on the loop counts under other"),
        ("classify", r"_classify$", None, "the adapters' *_classify (reply parsing)"),
        ("ledger/hiredis", r"^iw_a?ledger_", r"libhiredis\.so",
         "iw_ledger_*/iw_aledger_* (claim, complete, renew, release: EVALSHA commands) and every hiredis "
         "function"),
        ("kafka", r"^take_message$", r"librdkafka\.so",
         "every librdkafka call on the main thread: consumer poll, produce, statistics, and "
         "delivery reports with what they finish (offsets; freeing the message and its parsed "
         "invoice); take_message (the message copied into the pipeline)"),
        ("result", r"^publish$", None, "publish: the result JSON (the buffer writer) and its bookkeeping"),
        ("log", r"^iw_log$", None, "iw_log (one JSON line per result at info level)"),
    ]
    STAGE_OTHER = ("other", "the rest of the main thread: the loop, lanes, queues, flow "
                   "control, metrics")
    TARGET_IR = 300000  # instructions per event, all threads

    @staticmethod
    def annotate(path):
        """callgrind_annotate's inclusive listing of one profile: (text, total)."""
        text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100",
                               "--auto=no", path], capture_output=True, text=True, check=True).stdout
        total = 0
        for line in text.splitlines():
            m = re.match(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+PROGRAM TOTALS", line)
            if m:
                total = int(m.group(1).replace(",", ""))
        return text, total

    @staticmethod
    def callgraph(path):
        """Reads a callgrind profile (format version 1, one event): ({fn: own Ir},
        {(caller, callee): inclusive Ir of the calls}, totals). A function is (object, name),
        recursion levels (name'2) folded into their function."""
        names = {"ob": {}, "fn": {}}
        own, arcs, totals = {}, {}, 0
        ob = cob = fn = cfn = None
        in_call = False

        def name(kind, v):
            m = re.match(r"^\((\d+)\)(?:\s+(.*))?$", v)
            if not m:
                return v
            if m.group(2) is not None:
                names[kind][m.group(1)] = m.group(2)
            return names[kind].get(m.group(1), v)

        def fold(v):
            return re.sub(r"'\d+$", "", v)

        with open(path, errors="replace") as f:
            for line in f:
                line = line.rstrip("\n")
                c = line[:1]
                if (c.isdigit() or c in "+-*") and fn is not None:
                    parts = line.split()
                    ir = int(parts[1]) if len(parts) > 1 else 0
                    if in_call:
                        if cfn != fn:
                            arcs[(fn, cfn)] = arcs.get((fn, cfn), 0) + ir
                        in_call = False
                    else:
                        own[fn] = own.get(fn, 0) + ir
                    continue
                key, _, val = line.partition("=")
                if key == "ob":
                    ob = name("ob", val)
                elif key == "fn":
                    fn = (ob, fold(name("fn", val)))
                    cob = None
                elif key == "cob":
                    cob = name("ob", val)
                elif key == "cfn":
                    cfn = (cob or ob, fold(name("fn", val)))
                elif key == "calls":
                    in_call = True
                    cob = None
                elif line.startswith("totals:"):
                    totals = int(line.split()[1])
        return own, arcs, totals

    def stage_split(self, path, skip=()):
        """{stage: Ir} over one thread's profile (see STAGE_RULES, less the stages in skip),
        its total, and {function: {stage: share of its own instructions}}."""
        own, arcs, totals = self.callgraph(path)
        rules = [(st, re.compile(fr) if fr else None, re.compile(orx) if orx else None)
                 for st, fr, orx, _ in self.STAGE_RULES if st not in skip]
        fns = set(own) | {a for a, _ in arcs} | {b for _, b in arcs}
        share = {}
        for f in fns:
            for st, fr, orx in rules:
                by_name = bool(fr and fr.search(f[1]))
                in_obj = bool(orx and orx.search(f[0] or ""))
                # malloc: those names in libc only; the others: the name, or anything in the
                # library
                if (by_name and in_obj) if st == "malloc" else (by_name or in_obj):
                    share[f] = {st: 1.0}
                    break
        callers = {}
        for (a, b), ir in arcs.items():
            callers.setdefault(b, []).append((a, ir))
        other = self.STAGE_OTHER[0]
        for f in fns:  # called by nothing recorded (the loop, already running at --instr=on)
            if f not in share and f not in callers:
                share[f] = {other: 1.0}
        entries = set(share)
        for _ in range(200):  # to a fixed point: call cycles converge within a few passes
            changed = False
            for f in fns:
                if f in entries:
                    continue
                acc, weight = {}, 0
                for a, ir in callers.get(f, []):
                    sa = share.get(a)
                    if sa is None or ir <= 0:
                        continue
                    weight += ir
                    for st, v in sa.items():
                        acc[st] = acc.get(st, 0.0) + v * ir
                if not weight:
                    continue
                new = {st: v / weight for st, v in acc.items()}
                old = share.get(f)
                if old is None or any(abs(new.get(k, 0) - old.get(k, 0)) > 1e-9
                                      for k in set(new) | set(old)):
                    share[f] = new
                    changed = True
            if not changed:
                break
        out = {st: 0.0 for st, _, _, _ in self.STAGE_RULES if st not in skip}
        out[other] = 0.0
        for f, ir in own.items():
            for st, v in (share.get(f) or {other: 1.0}).items():
                out[st] += ir * v
        return out, totals, share

    def scenario5(self):
        n = self.sz["s5_events"]
        path = self.events("s5centra", n, n, "centra_soap")
        cg = os.path.join(self.out, "callgrind.out")
        for old in os.listdir(self.out):
            if old.startswith("callgrind.out"):
                os.remove(os.path.join(self.out, old))
        r = self.run("callgrind, %d centra_soap events" % n, path, n, n, valgrind_out=cg,
                     timeout=3600)
        # one profile per thread (--separate-threads=yes): -01 is the main thread (the loop)
        files = sorted(f for f in os.listdir(self.out) if re.match(r"callgrind\.out-\d+$", f))
        main_path = os.path.join(self.out, files[0])
        main_text, main_total = self.annotate(main_path)
        with open(os.path.join(self.out, "callgrind-inclusive.txt"), "w") as f:
            f.write(main_text)
        split, totals, share = self.stage_split(main_path)
        # the allocator's instructions by the stage that called it: the same split without the
        # malloc rule, read for the functions that rule took
        _, _, share_nm = self.stage_split(main_path, skip=("malloc",))
        own, _, _ = self.callgraph(main_path)
        malloc_by = {}
        for f, ir in own.items():
            if share.get(f) == {"malloc": 1.0}:
                for st, v in (share_nm.get(f) or {self.STAGE_OTHER[0]: 1.0}).items():
                    malloc_by[st] = malloc_by.get(st, 0.0) + ir * v
        kafka_ir, http_ir = 0, 0
        for f in files[1:]:
            p = os.path.join(self.out, f)
            _, t = self.annotate(p)
            with open(p, errors="replace") as fh:
                if "libmicrohttpd" in fh.read():
                    http_ir += t
                else:
                    kafka_ir += t
        notes = dict((st, note) for st, _, _, note in self.STAGE_RULES)
        notes[self.STAGE_OTHER[0]] = self.STAGE_OTHER[1]
        stages = [{"stage": st, "ir": v, "per_event": v / n, "functions": notes[st]}
                  for st, v in split.items()]
        stages.append({"stage": "kafka: librdkafka threads", "ir": kafka_ir,
                       "per_event": kafka_ir / n,
                       "functions": "librdkafka's broker and background threads (fetch, "
                                    "decompression, produce requests)"})
        unmatched = [st for st, _, _, _ in self.STAGE_RULES if not split.get(st)]
        total = main_total + kafka_ir
        r.update(total_ir=total, per_event=total / n, main_per_event=main_total / n,
                 kafka_thread_per_event=kafka_ir / n, metrics_thread_per_event=http_ir / n,
                 target_per_event=self.TARGET_IR, stages=stages, missing=unmatched,
                 malloc_by_stage={k: v / n for k, v in sorted(malloc_by.items(),
                                                              key=lambda kv: -kv[1])},
                 attribution_gap=abs(sum(split.values()) - main_total),
                 annotate="callgrind_annotate --inclusive=yes " + main_path)
        if unmatched:
            say("callgrind: no instructions in stage " + ", ".join(unmatched) +
                " (functions renamed or inlined?)")
        self.check("callgrind: every stage has instructions", not unmatched, ", ".join(unmatched))
        self.check("callgrind: the stages add up to the main thread's total",
                   totals == main_total and abs(sum(split.values()) - main_total) <= n,
                   "stages %d, callgrind_annotate %d, file totals %d" % (
                       sum(split.values()), main_total, totals))
        say("   %s instructions/event (main thread %s, librdkafka threads %s; target %s)" % (
            fmt(total / n), fmt(main_total / n), fmt(kafka_ir / n), fmt(self.TARGET_IR)))
        self.results["scenarios"]["s5"] = r

    # ---- all ----

    def machine(self):
        model = ""
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break

        def pkg(p):
            r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", p], capture_output=True, text=True)
            return r.stdout.strip() or "not installed"
        pkgs = ["librdkafka1", "libcurl4", "libxml2", "libcjson1", "libhiredis0.14",
                "libmicrohttpd12", "redis-server", "kcat", "wrk", "valgrind", "gnuplot-nox",
                "python3", "python3-confluent-kafka", "python3-redis", "python3-requests", "gcc"]
        ver = subprocess.run([self.bin, "--version"], capture_output=True, text=True).stdout.strip()
        cache = os.path.join(self.build, "CMakeCache.txt")
        btype = ""
        if os.path.exists(cache):
            m = re.search(r"^CMAKE_BUILD_TYPE:\w+=(.*)$", open(cache).read(), re.M)
            btype = m.group(1) if m else ""
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
        return {"cores": os.cpu_count(), "cpu": model, "kernel": platform.release(),
                "clk_tck": CLK_TCK,
                "worker_version": ver, "build_type": btype or "RelWithDebInfo (default)",
                "packages": {p: pkg(p) for p in pkgs}, "load_before": load}

    def main(self):
        self.results["machine"] = self.machine()
        self.results["sizes"] = self.sz
        only = set(self.a.only.split(",")) if self.a.only else None
        for key, fn in (("s1", self.scenario1), ("s2", self.scenario2), ("s3", self.scenario3),
                        ("s4", self.scenario4), ("s5", self.scenario5)):
            if only and key not in only:
                continue
            say("== scenario %s" % key[1])
            fn()
            self._save()
        self.results["runtime_s"] = time.monotonic() - T0
        with open("/proc/loadavg") as f:
            self.results["machine"]["load_after"] = " ".join(f.read().split()[:3])
        self._save()

    def _save(self):
        with open(os.path.join(self.out, "results.json"), "w") as f:
            json.dump(self.results, f, indent=2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="build folder with invoice-worker etc.")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke check")
    ap.add_argument("--only", help="comma list of scenarios to run (s1,...,s5)")
    ap.add_argument("--node", help="the Node.js peer's folder (dependencies installed)")
    ap.add_argument("--node-unavailable", help="why the Node.js peer is not measured")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    Bench(a).main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
