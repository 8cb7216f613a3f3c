#!/usr/bin/env python3
"""deploycheck.py: what scripts/check-deploy promises about deploy/, checked against the code.

Renders every overlay under deploy/k8s/overlays (kustomize_lite, cross-checked with
`kubectl kustomize` when a kubectl with components support is installed), then checks each
rendered Deployment against the binary and its config: probe paths served by worker/http.c on
the configured port, terminationGracePeriodSeconds above worker.shutdown_grace_s + 15 s, the command
line accepted by the binary, `check-config` passing with exactly the environment and Secret
files the pod gets, the autoscaler's bounds, the security context; and the Dockerfile's
runtime packages against the shared objects the binary needs. One line per check; exit 1 on
any failure.

usage: deploycheck.py --root REPO --binary BUILD/invoice-worker [--kubectl PATH]
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kustomize_lite  # noqa: E402

PARTITIONS = 32  # partitions of the input topic invoice-events: the useful maximum of pods
POD_NAME = "invoice-worker-5d8f7c9b6-x2x7k"  # stands for metadata.name in fieldRefs
SECRET_NAME = "invoice-worker-secrets"
# Shared objects every C program needs, and sanitizer runtimes of test builds: no package of
# their own in the image (libc6 and libgcc-s1 are in every Debian base image).
BASE_SONAMES = re.compile(r"^(libc|libm|libpthread|libdl|librt|libresolv|libgcc_s|libasan|"
                          r"libubsan|liblsan|libtsan|ld-linux[^.]*)\.so")


class Report:
    """Prints one line per check and remembers failures."""

    def __init__(self):
        self.failed = 0
        self.passed = 0

    def ok(self, name, detail):
        self.passed += 1
        print(f"ok   {name}: {detail}", flush=True)

    def fail(self, name, detail):
        self.failed += 1
        print(f"FAIL {name}: {detail}", flush=True)

    def note(self, name, detail):
        print(f"note {name}: {detail}", flush=True)

    def check(self, name, problems, detail):
        """ok with DETAIL when PROBLEMS is empty, else fail listing them."""
        if problems:
            self.fail(name, "; ".join(problems))
        else:
            self.ok(name, detail)


# How long one command may take before it counts as hung: a guard, not a measure of speed, so
# it is far above what any of them takes on a busy machine (a fuzzer and a sanitizer build
# beside this check on two cores).
HUNG_S = 180


def run(argv, env=None, timeout=HUNG_S):
    try:
        p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr
    except (OSError, subprocess.TimeoutExpired) as e:
        return -1, "", str(e)


def sanitizer_env():
    return {k: v for k, v in os.environ.items()
            if k in ("PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS")}


# ---- the binary and its sources ----

def served_paths(http_c):
    with open(http_c, encoding="utf-8") as f:
        return set(re.findall(r'strcmp\(url,\s*"(/[^"]*)"\)', f.read()))


def listen_port(listen):
    port = listen.rsplit(":", 1)[-1] if listen and ":" in listen else ""
    return int(port) if port.isdigit() else None


# ---- the Dockerfile ----

def parse_dockerfile(path):
    """[{'from': image, 'as': name, 'instr': [(INSTR, args)]}] per stage."""
    logical, cur = [], ""
    with open(path, encoding="utf-8") as f:
        for line in f:
            s = line.rstrip("\n")
            if s.lstrip().startswith("#"):
                continue
            if s.endswith("\\"):
                cur += s[:-1] + " "
                continue
            cur += s
            if cur.strip():
                logical.append(cur.strip())
            cur = ""
    stages = []
    for line in logical:
        instr, _, args = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            parts = args.split()
            stages.append({"from": parts[0],
                           "as": parts[2] if len(parts) > 2 and parts[1].lower() == "as" else None,
                           "instr": []})
        elif stages:
            stages[-1]["instr"].append((instr, args.strip()))
    return stages


def apt_packages(stage):
    pkgs = []
    for instr, args in stage["instr"]:
        if instr != "RUN":
            continue
        for seg in re.findall(r"apt-get install([^&;|]*)", args):
            pkgs += [t for t in seg.split() if not t.startswith("-")]
    return pkgs


def exec_form(stage, instr):
    vals = [a for i, a in stage["instr"] if i == instr]
    if not vals:
        return None
    try:
        v = json.loads(vals[-1])
        return v if isinstance(v, list) and all(isinstance(x, str) for x in v) else None
    except ValueError:
        return None


def needed_sonames(binary):
    rc, out, _ = run(["objdump", "-p", binary])
    if rc != 0:
        rc, out, _ = run(["readelf", "-d", binary])
    if rc != 0:
        return None
    return re.findall(r"NEEDED\s+(?:Shared library: \[)?([^\s\]]+)", out)


def dpkg_owner(pattern):
    rc, out, _ = run(["dpkg", "-S", pattern])
    if rc != 0:
        return None
    for line in out.splitlines():
        if line.startswith("diversion "):
            continue
        return line.split(":", 1)[0].split(",")[0].strip()
    return None


def check_image(rep, root, binary, deployment_facts):
    name = "image"
    df = os.path.join(root, "deploy", "Dockerfile")
    stages = parse_dockerfile(df)
    if len(stages) < 2:
        rep.fail(name, "deploy/Dockerfile: expected a build stage and a runtime stage")
        return
    build, runtime = stages[0], stages[-1]
    problems = []
    if build["from"] != "debian:bookworm":
        problems.append(f"build stage FROM {build['from']}, expected debian:bookworm")
    if runtime["from"] != "debian:bookworm-slim":
        problems.append(f"runtime stage FROM {runtime['from']}, expected debian:bookworm-slim")
    rt_pkgs, build_pkgs = set(apt_packages(runtime)), set(apt_packages(build))

    sonames = needed_sonames(binary)
    if sonames is None:
        rep.fail("image packages", f"cannot read the dynamic section of {binary} (objdump/readelf)")
        return
    libs = [s for s in sonames if not BASE_SONAMES.match(s)]
    want_rt, want_dev = {}, {}
    for so in libs:
        pkg = dpkg_owner(f"*/{so}")
        dev = dpkg_owner(f"*/{so.split('.so')[0]}.so")
        if not pkg:
            problems.append(f"no installed Debian package owns {so}")
            continue
        want_rt[pkg] = so
        if dev:
            want_dev[dev] = so
        else:
            problems.append(f"no installed -dev package owns {so.split('.so')[0]}.so")
    missing = sorted(p for p in want_rt if p not in rt_pkgs)
    if missing:
        problems.append("runtime stage lacks " + ", ".join(f"{p} ({want_rt[p]})" for p in missing))
    dev_in_rt = sorted(p for p in rt_pkgs if p.endswith("-dev") or p in
                       ("build-essential", "cmake", "pkg-config", "gcc"))
    if dev_in_rt:
        problems.append("runtime stage installs build packages: " + ", ".join(dev_in_rt))
    extra = sorted(rt_pkgs - set(want_rt) - {"ca-certificates"} - set(dev_in_rt))
    if extra:
        problems.append("runtime stage installs packages the binary does not need: " +
                        ", ".join(extra))
    if "ca-certificates" not in rt_pkgs:
        problems.append("runtime stage lacks ca-certificates (HTTPS to the targets)")
    missing_dev = sorted(p for p in list(want_dev) + ["build-essential", "cmake", "pkg-config"]
                         if p not in build_pkgs)
    if missing_dev:
        problems.append("build stage lacks " + ", ".join(missing_dev))
    rep.check("image packages", problems,
              f"runtime stage installs exactly {', '.join(sorted(want_rt))} + ca-certificates "
              f"for NEEDED {', '.join(libs)}; build stage has {', '.join(sorted(want_dev))}")

    problems = []
    instrs = [i for i, _ in runtime["instr"]]
    if "VOLUME" in instrs:
        problems.append("runtime stage declares a VOLUME (the root filesystem is read-only)")
    users = [a for i, a in runtime["instr"] if i == "USER"]
    uid = users[-1].split(":")[0] if users else ""
    if not uid.isdigit() or int(uid) == 0:
        problems.append(f"USER {users[-1] if users else '(none)'}: expected a numeric non-root "
                        "uid (runAsNonRoot can only verify a number)")
    elif deployment_facts.get("uid") is not None and int(uid) != deployment_facts["uid"]:
        problems.append(f"USER {uid} but the Deployment runs as {deployment_facts['uid']}")
    entry, cmd = exec_form(runtime, "ENTRYPOINT"), exec_form(runtime, "CMD")
    if not entry or not cmd:
        problems.append("ENTRYPOINT and CMD must be JSON exec form (the worker must be PID 1 "
                        "to receive SIGTERM)")
    else:
        copies = [a.split() for i, a in runtime["instr"] if i == "COPY" and "--from=" in a]
        if not any(c[-1] == entry[0] for c in copies):
            problems.append(f"no COPY --from puts the binary at {entry[0]}")
        rc, out, err = run([binary] + cmd + ["--help"], env=sanitizer_env())
        if rc != 0:
            problems.append(f"`invoice-worker {' '.join(cmd)} --help` exits {rc}: "
                            f"{(err or out).strip()[:200]}")
        dep_args = deployment_facts.get("args")
        if dep_args is not None and dep_args != cmd:
            problems.append(f"CMD {cmd} differs from the Deployment's args {dep_args}")
    exposed = [a for i, a in runtime["instr"] if i == "EXPOSE"]
    if deployment_facts.get("port") and [str(deployment_facts["port"])] != exposed:
        problems.append(f"EXPOSE {exposed} but the worker listens on {deployment_facts['port']}")
    rep.check("image runtime", problems,
              f"uid {uid}, exec-form ENTRYPOINT {entry} CMD {cmd} accepted by the binary, "
              f"EXPOSE {exposed[0] if exposed else '-'}, no VOLUME")


# ---- the rendered overlay ----

def by_kind(resources, kind):
    return [r for r in resources if r["kind"] == kind]


def resolve_port(container, port):
    if isinstance(port, int):
        return port
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p.get("containerPort")
    return None


def labels_match(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def check_overlay(rep, root, name, resources, binary, paths, secret_keys, example):
    """The invariants of one rendered overlay; returns facts the image check compares with."""
    facts = {}
    deps = [d for d in by_kind(resources, "Deployment")
            if d["metadata"]["name"] == "invoice-worker"]
    if len(deps) != 1:
        rep.fail(f"{name} deployment", "expected one Deployment invoice-worker")
        return facts
    dep = deps[0]
    pod = dep["spec"]["template"]["spec"]
    pod_labels = dep["spec"]["template"]["metadata"].get("labels") or {}
    cs = [c for c in pod.get("containers") or [] if c.get("name") == "invoice-worker"]
    if len(cs) != 1:
        rep.fail(f"{name} deployment", "expected one container named invoice-worker")
        return facts
    c = cs[0]
    configmaps = {r["metadata"]["name"]: r for r in by_kind(resources, "ConfigMap")}
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts") or []}

    # -- the config file the args name, from a mounted ConfigMap
    args = c.get("args") or []
    facts["args"] = args
    problems, config_text, config = [], None, None
    if c.get("command"):
        problems.append("the container sets command, replacing the image's ENTRYPOINT")
    cpath = None
    for i, a in enumerate(args):
        if a in ("-c", "--config") and i + 1 < len(args):
            cpath = args[i + 1]
        elif a.startswith("--config="):
            cpath = a.split("=", 1)[1]
    if not cpath:
        problems.append(f"args {args} name no config file (-c FILE)")
    else:
        m = mounts.get(os.path.dirname(cpath))
        vol = volumes.get(m["name"]) if m else None
        cm_name = (vol or {}).get("configMap", {}).get("name")
        if not cm_name:
            problems.append(f"{os.path.dirname(cpath)} is not a ConfigMap volume mount")
        elif cm_name not in configmaps:
            problems.append(f"ConfigMap {cm_name} is not among the rendered resources")
        elif os.path.basename(cpath) not in configmaps[cm_name].get("data", {}):
            problems.append(f"ConfigMap {cm_name} has no key {os.path.basename(cpath)}")
        else:
            config_text = configmaps[cm_name]["data"][os.path.basename(cpath)]
            try:
                config = json.loads(config_text)
            except ValueError as e:
                problems.append(f"{cpath} is not JSON: {e}")
    rc, out, err = run([binary] + args + ["--help"], env=sanitizer_env())
    if rc != 0:
        problems.append(f"`invoice-worker {' '.join(args)} --help` exits {rc}: "
                        f"{(err or out).strip()[:200]}")
    rep.check(f"{name} args", problems,
              f"`invoice-worker {' '.join(args)} --help` exits 0; {cpath} comes from the "
              "mounted ConfigMap")
    if config is None:
        return facts

    # -- the pod's environment, as the kubelet would build it
    problems, env = [], {"HOSTNAME": POD_NAME}
    for ef in c.get("envFrom") or []:
        if "configMapRef" in ef:
            ref = ef["configMapRef"]["name"]
            if ref not in configmaps:
                problems.append(f"envFrom ConfigMap {ref} is not among the rendered resources")
                continue
            for k, v in configmaps[ref].get("data", {}).items():
                env[ef.get("prefix", "") + k] = v
        else:
            problems.append(f"envFrom {list(ef)} not understood by this check")
    for e in c.get("env") or []:
        if "value" in e:
            env[e["name"]] = str(e["value"])
            continue
        vf = e.get("valueFrom") or {}
        if vf.get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[e["name"]] = POD_NAME
        elif "secretKeyRef" in vf:
            ref = vf["secretKeyRef"]
            if ref.get("name") != SECRET_NAME or ref.get("key") not in secret_keys:
                problems.append(f"env {e['name']}: secret {ref.get('name')}/{ref.get('key')} "
                                "is not a key of secret.example.yaml")
            else:
                env[e["name"]] = secret_keys[ref["key"]]
        elif "configMapKeyRef" in vf:
            ref = vf["configMapKeyRef"]
            env[e["name"]] = configmaps.get(ref.get("name"), {}).get("data", {}).get(
                ref.get("key"), "")
        else:
            problems.append(f"env {e['name']}: valueFrom {list(vf)} not understood by this check")
    wid = next((e for e in c.get("env") or [] if e["name"] == "IW_WORKER_ID"), None)
    if not wid or (wid.get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath") != "metadata.name":
        problems.append("IW_WORKER_ID must come from fieldRef metadata.name (one id per pod)")

    # -- Secret files: every path under the Secret mount is a key of the example Secret
    secret_mounts = [p for p, m in mounts.items()
                     if volumes.get(m["name"], {}).get("secret", {}).get("secretName") == SECRET_NAME]
    if len(secret_mounts) != 1:
        problems.append(f"Secret {SECRET_NAME} must be mounted once (mounted at {secret_mounts})")
        rep.check(f"{name} environment", problems, "")
        return facts
    smount = secret_mounts[0]
    if not mounts[smount].get("readOnly"):
        problems.append(f"{smount} must be mounted readOnly")
    refs = set(re.findall(re.escape(smount) + r"/([A-Za-z0-9._-]+)", config_text))
    file_keys = []

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{path}.{k}" if path else k)
        elif isinstance(node, str) and path.endswith("_file"):
            file_keys.append((path, node))
    walk(config, "")
    for path, val in file_keys:
        if not val.startswith(smount + "/"):
            problems.append(f"{path} = {val} is not under the Secret mount {smount}")
    for r in sorted(refs - set(secret_keys)):
        problems.append(f"{smount}/{r} is not a key of secret.example.yaml")
    rep.check(f"{name} environment", problems,
              f"{len(env)} variables from env/envFrom; IW_WORKER_ID = pod name; "
              f"{len(refs)} secret files under {smount}, all keys of secret.example.yaml")

    # -- check-config with exactly that environment and those files
    with tempfile.TemporaryDirectory(prefix="iw-deploy-") as tmp:
        sdir = os.path.join(tmp, "secrets")
        os.mkdir(sdir)
        for k, v in secret_keys.items():
            with open(os.path.join(sdir, k), "w", encoding="utf-8") as f:
                f.write(v)
        cfile = os.path.join(tmp, "config.json")
        with open(cfile, "w", encoding="utf-8") as f:
            f.write(config_text.replace(smount + "/", sdir + "/"))
        rc, out, err = run([binary, "check-config", "-c", cfile], env={**sanitizer_env(), **env})
    if rc == 0:
        rep.ok(f"{name} check-config", "the mounted config passes `invoice-worker check-config` "
               "with the pod's environment and the example Secret's files")
    else:
        rep.fail(f"{name} check-config", f"exit {rc}: {(err + out).strip()[:600]}")

    # -- probes: served paths, on the port the config listens on
    problems = []
    listen = env.get("IW_HTTP_LISTEN") or (config.get("http") or {}).get("listen") or "0.0.0.0:8080"
    port = listen_port(listen)
    facts["port"] = port
    ex_port = listen_port((example.get("http") or {}).get("listen") or "0.0.0.0:8080")
    if port != ex_port:
        problems.append(f"the config listens on {port}, the example config on {ex_port}")
    want = {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    seen = []
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        pr = c.get(probe)
        if pr is None:
            if probe in want:
                problems.append(f"no {probe}")
            continue
        hg = pr.get("httpGet")
        if not hg:
            problems.append(f"{probe} is not an httpGet probe")
            continue
        ppath, pport = hg.get("path"), resolve_port(c, hg.get("port"))
        if ppath not in paths:
            problems.append(f"{probe} path {ppath} is not served by worker/http.c "
                            f"(serves {', '.join(sorted(paths))})")
        if probe in want and ppath != want[probe]:
            problems.append(f"{probe} should be {want[probe]}, is {ppath}")
        if pport != port:
            problems.append(f"{probe} port {hg.get('port')} = {pport}, the worker listens on {port}")
        seen.append(f"{probe.replace('Probe', '')} {ppath}")
    for svc in by_kind(resources, "Service"):
        if not labels_match(svc["spec"].get("selector"), pod_labels):
            problems.append(f"Service {svc['metadata']['name']} does not select the pods")
        svc_ports = {p.get("name"): p for p in svc["spec"].get("ports") or []}
        for p in svc_ports.values():
            if resolve_port(c, p.get("targetPort", p.get("port"))) != port:
                problems.append(f"Service port {p.get('name')} targets {p.get('targetPort')}, "
                                f"not the worker's {port}")
        for sm in by_kind(resources, "ServiceMonitor"):
            for ep in sm["spec"].get("endpoints") or []:
                if ep.get("port") not in svc_ports:
                    problems.append(f"ServiceMonitor port {ep.get('port')} is no Service port")
                if ep.get("path", "/metrics") not in paths:
                    problems.append(f"ServiceMonitor path {ep.get('path')} is not served")
    for np in by_kind(resources, "NetworkPolicy"):
        if not labels_match(np["spec"]["podSelector"].get("matchLabels"), pod_labels):
            problems.append("the NetworkPolicy does not select the pods")
        ports = [p.get("port") for rule in np["spec"].get("ingress") or []
                 for p in rule.get("ports") or []]
        if port not in ports and not any(resolve_port(c, p) == port for p in ports):
            problems.append(f"the NetworkPolicy admits no ingress to {port} (Prometheus)")
    if not by_kind(resources, "ServiceMonitor"):
        problems.append("no ServiceMonitor")
    rep.check(f"{name} probes", problems,
              f"{', '.join(seen)} on port {port} = http.listen {listen}; Service, ServiceMonitor "
              "/metrics and NetworkPolicy agree")

    # -- SIGTERM grace
    grace_s = (config.get("worker") or {}).get("shutdown_grace_s", 25)
    ex_grace = (example.get("worker") or {}).get("shutdown_grace_s", 25)
    tgps = pod.get("terminationGracePeriodSeconds", 30)
    # after the grace the worker may still wait, each bounded: the producer's flush 5 s, the
    # ledger's last writes 2 s, the lag probe 3 s, the last commit and the close 5 s
    after = 15
    if tgps > max(grace_s, ex_grace) + after:
        rep.ok(f"{name} grace", f"terminationGracePeriodSeconds {tgps} > shutdown_grace_s "
               f"{grace_s} (example config {ex_grace}) + {after} s of flush, commit and close")
    else:
        rep.fail(f"{name} grace", f"terminationGracePeriodSeconds {tgps} must exceed "
                 f"worker.shutdown_grace_s {max(grace_s, ex_grace)} + {after} s (the flush, "
                 f"the last ledger writes, the lag probe, the commit and the close), or SIGKILL "
                 f"cuts the stop")

    # -- security context and resources
    problems = []
    psc, csc = pod.get("securityContext") or {}, c.get("securityContext") or {}
    facts["uid"] = csc.get("runAsUser", psc.get("runAsUser"))
    if not (csc.get("runAsNonRoot", psc.get("runAsNonRoot"))):
        problems.append("runAsNonRoot is not true")
    if not csc.get("readOnlyRootFilesystem"):
        problems.append("readOnlyRootFilesystem is not true")
    if csc.get("allowPrivilegeEscalation") is not False:
        problems.append("allowPrivilegeEscalation is not false")
    if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
        problems.append("capabilities do not drop ALL")
    if (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problems.append("seccompProfile is not RuntimeDefault")
    tmp = mounts.get("/tmp")
    if not tmp or "emptyDir" not in volumes.get(tmp["name"], {}):
        problems.append("/tmp is not an emptyDir")
    res = c.get("resources") or {}
    for kind in ("requests", "limits"):
        for r in ("cpu", "memory"):
            if r not in (res.get(kind) or {}):
                problems.append(f"no resources.{kind}.{r}")
    for pdb in by_kind(resources, "PodDisruptionBudget"):
        if not labels_match(pdb["spec"]["selector"].get("matchLabels"), pod_labels):
            problems.append("the PodDisruptionBudget does not select the pods")
    if not by_kind(resources, "PodDisruptionBudget"):
        problems.append("no PodDisruptionBudget")
    if not labels_match(dep["spec"]["selector"].get("matchLabels"), pod_labels):
        problems.append("the Deployment's selector does not match its pod labels")
    rep.check(f"{name} security", problems,
              f"uid {facts['uid']}, non-root, read-only root, no privilege escalation, "
              f"capabilities dropped, RuntimeDefault seccomp, /tmp emptyDir, "
              f"requests {res.get('requests')} limits {res.get('limits')}")

    # -- autoscaling
    problems = []
    hpas, sos = by_kind(resources, "HorizontalPodAutoscaler"), by_kind(resources, "ScaledObject")
    kafka = config.get("kafka") or {}
    group = kafka.get("group_id", "invoice-worker")
    topic = (kafka.get("topics") or {}).get("input", "invoice-events")
    if len(hpas) + len(sos) > 1:
        problems.append("more than one autoscaler for the Deployment")
    for a in hpas + sos:
        if a["spec"]["scaleTargetRef"].get("name") != "invoice-worker":
            problems.append(f"{a['kind']} scales {a['spec']['scaleTargetRef'].get('name')}")
        if "replicas" in dep["spec"]:
            problems.append(f"{a['kind']} owns the replica count but the Deployment pins "
                            f"replicas: {dep['spec']['replicas']}")
    for h in hpas:
        lo, hi = h["spec"].get("minReplicas", 1), h["spec"]["maxReplicas"]
        if not 1 <= lo <= hi <= PARTITIONS:
            problems.append(f"HPA {lo}..{hi} is not within 1..{PARTITIONS} partitions")
    for so in sos:
        lo, hi = so["spec"].get("minReplicaCount", 0), so["spec"].get("maxReplicaCount", 100)
        if not 1 <= lo <= hi <= PARTITIONS:
            problems.append(f"ScaledObject {lo}..{hi} is not within 1..{PARTITIONS} partitions")
        for t in so["spec"].get("triggers") or []:
            md = t.get("metadata") or {}
            if t.get("type") != "kafka":
                problems.append(f"ScaledObject trigger {t.get('type')}, expected kafka")
                continue
            if md.get("consumerGroup") != group:
                problems.append(f"trigger consumerGroup {md.get('consumerGroup')}, the worker "
                                f"uses {group}")
            if md.get("topic") != topic:
                problems.append(f"trigger topic {md.get('topic')}, the worker reads {topic}")
            if md.get("bootstrapServers") != env.get("KAFKA_BROKERS"):
                problems.append(f"trigger bootstrapServers {md.get('bootstrapServers')} differ "
                                f"from KAFKA_BROKERS {env.get('KAFKA_BROKERS')}")
            if str(md.get("allowIdleConsumers", "false")).lower() != "false":
                problems.append("allowIdleConsumers must stay false (no pods beyond partitions)")
            ta = (t.get("authenticationRef") or {}).get("name")
            if ta and not [r for r in by_kind(resources, "TriggerAuthentication")
                           if r["metadata"]["name"] == ta]:
                problems.append(f"TriggerAuthentication {ta} is not among the resources")
    for ta in by_kind(resources, "TriggerAuthentication"):
        for ref in ta["spec"].get("secretTargetRef") or []:
            if ref.get("name") != SECRET_NAME or ref.get("key") not in secret_keys:
                problems.append(f"TriggerAuthentication reads {ref.get('name')}/{ref.get('key')}, "
                                "not a key of secret.example.yaml")
    if hpas or sos:
        a = (hpas + sos)[0]
        lo = a["spec"].get("minReplicas", a["spec"].get("minReplicaCount"))
        hi = a["spec"].get("maxReplicas", a["spec"].get("maxReplicaCount"))
        detail = f"{a['kind']} {lo}..{hi} pods (partitions: {PARTITIONS}); Deployment replicas unpinned"
        if sos:
            detail += f"; lag of group {group} on {topic} at KAFKA_BROKERS"
    else:
        r = dep["spec"].get("replicas", 1)
        if not 1 <= r <= PARTITIONS:
            problems.append(f"replicas {r} is not within 1..{PARTITIONS}")
        detail = f"fixed {r} replicas"
    rep.check(f"{name} scaling", problems, detail)
    return facts


def secret_example(root, rep):
    path = os.path.join(root, "deploy", "k8s", "base", "secret.example.yaml")
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        data = {k: str(v) for k, v in (doc.get("stringData") or {}).items()}
    except (OSError, yaml.YAMLError, AttributeError) as e:
        rep.fail("secret example", f"{path}: {e}")
        return None
    problems = []
    if doc.get("kind") != "Secret" or doc["metadata"].get("name") != SECRET_NAME:
        problems.append(f"expected Secret {SECRET_NAME}")
    bad = [k for k, v in data.items() if not v.startswith("PLACEHOLDER")]
    if bad or doc.get("data"):
        problems.append(f"values must be PLACEHOLDER... and in stringData: {bad or 'data:'}")
    for dirpath, _, files in os.walk(os.path.join(root, "deploy")):
        for fn in files:
            if fn in kustomize_lite.KUSTOMIZATION_FILES:
                with open(os.path.join(dirpath, fn), encoding="utf-8") as f:
                    if "secret.example" in f.read():
                        problems.append(f"{os.path.relpath(dirpath, root)}/{fn} mentions "
                                        "secret.example.yaml")
    rep.check("secret example", problems,
              f"{len(data)} placeholder keys; listed by no kustomization")
    return data


def normalise(resources):
    return {(r["kind"], r["metadata"]["name"]): r for r in resources}


def first_difference(a, b, path=""):
    if type(a) is not type(b):
        return f"{path or '/'}: {a!r} vs {b!r}"
    if isinstance(a, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a or k not in b:
                return f"{path}/{k}: only in {'kustomize_lite' if k in a else 'kubectl'}"
            d = first_difference(a[k], b[k], f"{path}/{k}")
            if d:
                return d
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            d = first_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if a == b else f"{path}: {a!r} vs {b!r}"


def kubectl_kustomize(kubectl):
    """(callable(dir) -> resources or error string, version) or (None, reason)."""
    if not kubectl:
        return None, "no kubectl on PATH"
    rc, out, err = run([kubectl, "version", "--client", "-o", "json"])
    try:
        version = json.loads(out).get("kustomizeVersion", "") if rc == 0 else ""
    except ValueError:
        version = ""
    m = re.match(r"v(\d+)", version)
    if not m or int(m.group(1)) < 4:
        return None, f"kubectl's kustomize {version or 'unknown'} predates components"

    def render(d):
        rc, out, err = run([kubectl, "kustomize", d])
        if rc != 0:
            return (err or out).strip()
        return [r for r in yaml.safe_load_all(out) if r]
    return render, version


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--kubectl", default=shutil.which("kubectl"))
    a = ap.parse_args()
    root = os.path.abspath(a.root)
    os.chdir(root)
    rep = Report()

    with open("deploy/config/config.example.json", encoding="utf-8") as f:
        example_text = f.read()
    example = json.loads(example_text)
    paths = served_paths("worker/http.c")
    if not {"/healthz", "/readyz", "/metrics"} <= paths:
        rep.fail("http paths", f"worker/http.c serves {sorted(paths)}")
    secret_keys = secret_example(root, rep)
    if secret_keys is None:
        return 1

    real, why = kubectl_kustomize(a.kubectl)
    if real is None:
        rep.note("kustomize", f"cross-check with kubectl kustomize not run: {why}")

    overlays_dir = "deploy/k8s/overlays"
    overlays = sorted(os.path.join(overlays_dir, d) for d in os.listdir(overlays_dir)
                      if os.path.isdir(os.path.join(overlays_dir, d)))
    facts = {}
    for d in ["deploy/k8s/base"] + overlays:
        name = os.path.relpath(d, "deploy/k8s")
        try:
            resources = kustomize_lite.render(d)
        except kustomize_lite.RenderError as e:
            rep.fail(f"{name} render", str(e))
            continue
        secrets = [r["metadata"]["name"] for r in resources if r["kind"] == "Secret"]
        if secrets:
            rep.fail(f"{name} render", f"renders Secret {secrets}: secret values stay out of git")
            continue
        rep.ok(f"{name} render", f"{len(resources)} resources: " +
               ", ".join(f"{r['kind']}/{r['metadata']['name']}" for r in resources))
        if real is not None:
            theirs = real(d)
            if isinstance(theirs, str):
                rep.fail(f"{name} kustomize", f"kubectl kustomize fails: {theirs[:400]}")
            else:
                mine, other = normalise(resources), normalise(theirs)
                diff = None
                if set(mine) != set(other):
                    diff = (f"resources differ: only kustomize_lite {sorted(set(mine) - set(other))}"
                            f", only kubectl {sorted(set(other) - set(mine))}")
                else:
                    for k in sorted(mine):
                        dd = first_difference(mine[k], other[k])
                        if dd:
                            diff = f"{k[0]}/{k[1]}{dd}"
                            break
                rep.check(f"{name} kustomize", [diff] if diff else [],
                          f"kubectl kustomize ({why}) renders the same resources")
        if d == "deploy/k8s/base":
            continue
        f = check_overlay(rep, root, name, resources, a.binary, paths, secret_keys, example)
        if name == "overlays/staging":
            cms = [r for r in resources if r["kind"] == "ConfigMap"
                   and r["metadata"]["name"].startswith("invoice-worker-config")]
            same = len(cms) == 1 and cms[0]["data"].get("config.json") == example_text
            rep.check(f"{name} config", [] if same else
                      ["the staging ConfigMap is not deploy/config/config.example.json byte for byte"],
                      "the ConfigMap holds deploy/config/config.example.json byte for byte")
        facts = facts or f
    check_image(rep, root, a.binary, facts)
    print(f"deploy: {rep.passed} passed, {rep.failed} failed", flush=True)
    return 1 if rep.failed else 0


if __name__ == "__main__":
    sys.exit(main())
