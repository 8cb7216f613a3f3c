"""kustomize_lite.py: renders the kustomizations under deploy/k8s without kustomize.

It implements the subset of kustomize that deploy/k8s uses, and refuses anything else rather
than guess: resources (files and directories), components, namespace, images, patches
(strategic-merge patches by path or inline, matched by kind and name), configMapGenerator
(files, literals; behavior create/merge/replace; kustomize's content-hash name suffix and the
references to it). A missing file, a patch whose target is not among the resources, or an
unsupported field is a RenderError. scripts/check-deploy cross-checks its output against
`kubectl kustomize` when a kubectl with components support is installed.
"""

import copy
import hashlib
import json
import os

import yaml


class RenderError(Exception):
    """A kustomization that cannot be rendered (missing file, bad patch, unsupported field)."""


KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
SUPPORTED_FIELDS = {"apiVersion", "kind", "resources", "components", "namespace", "images",
                    "patches", "configMapGenerator"}
GENERATOR_FIELDS = {"name", "files", "literals", "behavior"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PersistentVolume", "StorageClass", "PriorityClass",
                  "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}
# Built-in kinds whose lists merge by key in a strategic-merge patch (custom resources have no
# schema here, so kustomize replaces their lists whole, and so do we).
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Pod"}
MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name",
              "volumes": "name", "volumeMounts": "mountPath", "ports": "containerPort",
              "imagePullSecrets": "name"}
# kustomize's legacy output order (kinds not listed follow, by kind then name).
KIND_ORDER = ["Namespace", "ResourceQuota", "StorageClass", "CustomResourceDefinition",
              "ServiceAccount", "PodSecurityPolicy", "Role", "ClusterRole", "RoleBinding",
              "ClusterRoleBinding", "ConfigMap", "Secret", "Endpoints", "Service", "LimitRange",
              "PriorityClass", "PersistentVolume", "PersistentVolumeClaim", "Deployment",
              "StatefulSet", "CronJob", "PodDisruptionBudget"]
GENERATED = "__generated__"  # marker key on generated ConfigMaps until names are final


def _rel(path):
    return os.path.relpath(path)


def _load_docs(path):
    with open(path, encoding="utf-8") as f:
        try:
            docs = [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as e:
            raise RenderError(f"{_rel(path)}: not YAML: {e}") from None
    for d in docs:
        if not isinstance(d, dict) or "kind" not in d or "name" not in d.get("metadata", {}):
            raise RenderError(f"{_rel(path)}: a document without kind or metadata.name")
    return docs


def _kustomization(directory):
    for n in KUSTOMIZATION_FILES:
        p = os.path.join(directory, n)
        if os.path.isfile(p):
            with open(p, encoding="utf-8") as f:
                k = yaml.safe_load(f) or {}
            unknown = sorted(set(k) - SUPPORTED_FIELDS)
            if unknown:
                raise RenderError(f"{_rel(p)}: fields not supported by kustomize_lite: "
                                  f"{', '.join(unknown)}")
            return p, k
    raise RenderError(f"{_rel(directory)}: no kustomization.yaml")


def _find(resources, kind, name):
    for r in resources:
        if r["kind"] == kind and r["metadata"]["name"] == name:
            return r
    return None


def _smp(dst, patch, workload, where):
    """Strategic-merge PATCH into DST (in place)."""
    for k, v in patch.items():
        if k.startswith("$"):
            raise RenderError(f"{where}: patch directive {k} not supported")
        if v is None:
            dst.pop(k, None)
        elif isinstance(v, dict) and isinstance(dst.get(k), dict):
            _smp(dst[k], v, workload, where)
        elif (workload and k in MERGE_KEYS and isinstance(v, list) and
              isinstance(dst.get(k), list) and all(isinstance(i, dict) for i in v + dst[k])):
            key = MERGE_KEYS[k]
            added = []
            for item in v:
                if key not in item:
                    raise RenderError(f"{where}: an item of {k} without its merge key {key}")
                old = next((o for o in dst[k] if o.get(key) == item[key]), None)
                if old is None:
                    added.append(copy.deepcopy(item))
                else:
                    _smp(old, item, workload, where)
            dst[k] = added + dst[k]  # kustomize puts items new to the list first
        else:
            dst[k] = copy.deepcopy(v)


def _apply_patches(kfile, directory, k, resources):
    for i, p in enumerate(k.get("patches") or []):
        if not isinstance(p, dict) or set(p) - {"path", "patch"} or len(p) != 1:
            raise RenderError(f"{_rel(kfile)}: patches[{i}]: only 'path' or 'patch' is supported")
        if "path" in p:
            path = os.path.normpath(os.path.join(directory, p["path"]))
            if not os.path.isfile(path):
                raise RenderError(f"{_rel(kfile)}: patch {p['path']} does not exist")
            docs, where = _load_docs(path), _rel(path)
        else:
            docs, where = [d for d in yaml.safe_load_all(p["patch"]) if d], f"{_rel(kfile)}#{i}"
        for d in docs:
            kind, name = d["kind"], d["metadata"]["name"]
            target = _find(resources, kind, name)
            if target is None:
                raise RenderError(f"{where}: patch targets {kind}/{name}, which is not among "
                                  f"the resources of {_rel(directory)}")
            body = copy.deepcopy(d)
            body.pop("apiVersion", None)
            body.pop("kind", None)
            _smp(target, body, kind in WORKLOAD_KINDS, where)


def _literal(kfile, s):
    if "=" not in s:
        raise RenderError(f"{_rel(kfile)}: literal {s!r} is not KEY=VALUE")
    key, val = s.split("=", 1)
    if len(val) >= 2 and val[0] == val[-1] and val[0] in "\"'":
        val = val[1:-1]
    return key, val


def _generate(kfile, directory, k, resources):
    for g in k.get("configMapGenerator") or []:
        unknown = sorted(set(g) - GENERATOR_FIELDS)
        if unknown:
            raise RenderError(f"{_rel(kfile)}: configMapGenerator fields not supported: "
                              f"{', '.join(unknown)}")
        data = {}
        for spec in g.get("files") or []:
            key, _, rel = spec.partition("=") if "=" in spec else (os.path.basename(spec), "", spec)
            path = os.path.normpath(os.path.join(directory, rel))
            if os.path.relpath(path, directory).startswith(".."):
                raise RenderError(f"{_rel(kfile)}: {spec}: kustomize loads no file from "
                                  "outside the kustomization directory")
            if not os.path.isfile(path):
                raise RenderError(f"{_rel(kfile)}: configMapGenerator file {rel} does not exist")
            with open(path, encoding="utf-8") as f:
                data[key] = f.read()
        for s in g.get("literals") or []:
            key, val = _literal(kfile, s)
            data[key] = val
        name, behavior = g["name"], g.get("behavior", "create")
        old = _find(resources, "ConfigMap", name)
        if behavior == "create":
            if old is not None:
                raise RenderError(f"{_rel(kfile)}: ConfigMap {name} already exists "
                                  "(use behavior: merge or replace)")
            resources.append({"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {"name": name}, "data": data, GENERATED: True})
        elif behavior in ("merge", "replace"):
            if old is None or not old.get(GENERATED):
                raise RenderError(f"{_rel(kfile)}: behavior {behavior}: no generated ConfigMap "
                                  f"{name} to {behavior}")
            old["data"] = {**old["data"], **data} if behavior == "merge" else data
        else:
            raise RenderError(f"{_rel(kfile)}: unknown generator behavior {behavior}")


def _split_image(image):
    digest = ""
    if "@" in image:
        image, digest = image.split("@", 1)
    tag = ""
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        image, tag = image[:colon], image[colon + 1:]
    return image, tag, digest


def _containers(r):
    spec = r.get("spec", {})
    pod = spec.get("template", {}).get("spec", {}) if r["kind"] != "Pod" else spec
    return (pod.get("containers") or []) + (pod.get("initContainers") or [])


def _set_images(k, resources):
    for img in k.get("images") or []:
        for r in resources:
            for c in _containers(r):
                name, tag, digest = _split_image(c.get("image", ""))
                if name != img["name"]:
                    continue
                name = img.get("newName", name)
                if "digest" in img:
                    c["image"] = f"{name}@{img['digest']}"
                elif "newTag" in img:
                    c["image"] = f"{name}:{img['newTag']}"
                else:
                    c["image"] = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def _build(directory, stack, component_of=None):
    directory = os.path.normpath(directory)
    if directory in stack:
        raise RenderError(f"{_rel(directory)}: kustomization cycle")
    kfile, k = _kustomization(directory)
    kind = k.get("kind", "Kustomization")
    if (component_of is not None) != (kind == "Component"):
        raise RenderError(f"{_rel(kfile)}: kind {kind} "
                          f"{'listed under components' if component_of is not None else 'listed under resources'}")
    resources = component_of if component_of is not None else []
    for r in k.get("resources") or []:
        p = os.path.normpath(os.path.join(directory, r))
        if os.path.isdir(p):
            resources.extend(_build(p, stack + [directory]))
        elif os.path.isfile(p):
            resources.extend(_load_docs(p))
        else:
            raise RenderError(f"{_rel(kfile)}: resource {r} does not exist")
    for c in k.get("components") or []:
        p = os.path.normpath(os.path.join(directory, c))
        if not os.path.isdir(p):
            raise RenderError(f"{_rel(kfile)}: component {c} does not exist")
        _build(p, stack + [directory], component_of=resources)
    seen = set()
    for r in resources:
        ident = (r["kind"], r["metadata"]["name"])
        if ident in seen:
            raise RenderError(f"{_rel(kfile)}: {ident[0]}/{ident[1]} defined twice")
        seen.add(ident)
    _generate(kfile, directory, k, resources)
    _apply_patches(kfile, directory, k, resources)
    _set_images(k, resources)
    if "namespace" in k:
        for r in resources:
            if r["kind"] not in CLUSTER_SCOPED:
                r["metadata"]["namespace"] = k["namespace"]
    return resources


def _go_json(obj):
    """json.Marshal's bytes: sorted keys, no spaces, <>& and U+2028/9 escaped."""
    s = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for a, b in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                 ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        s = s.replace(a, b)
    return s.encode("utf-8")


def configmap_hash(data):
    """kustomize's name suffix for a generated ConfigMap (api/hasher, kustomize v4 and v5).

    Its encoder looks the name up as the single field "metadata/name", finds nothing and
    hashes an empty name: the suffix depends on the data alone.
    """
    digest = hashlib.sha256(_go_json({"kind": "ConfigMap", "name": "", "data": data})).hexdigest()
    return digest[:10].translate(str.maketrans("013ae", "ghkmt"))


def _rename_refs(resources, renames):
    def fix(holder, key):
        if holder and holder.get(key) in renames:
            holder[key] = renames[holder[key]]
    for r in resources:
        spec = r.get("spec", {})
        pod = spec.get("template", {}).get("spec") if r["kind"] != "Pod" else spec
        if not pod:
            continue
        for v in pod.get("volumes") or []:
            fix(v.get("configMap"), "name")
            for s in (v.get("projected") or {}).get("sources") or []:
                fix(s.get("configMap"), "name")
        for c in _containers(r):
            for e in c.get("envFrom") or []:
                fix(e.get("configMapRef"), "name")
            for e in c.get("env") or []:
                fix((e.get("valueFrom") or {}).get("configMapKeyRef"), "name")


def render(directory):
    """The resources DIRECTORY's kustomization produces, as a list of dicts."""
    resources = _build(directory, [])
    renames = {}
    for r in resources:
        if r.pop(GENERATED, False):
            name = r["metadata"]["name"]
            renames[name] = f"{name}-{configmap_hash(r['data'])}"
            r["metadata"]["name"] = renames[name]
    _rename_refs(resources, renames)

    def order(r):
        kind = r["kind"]
        rank = KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)
        return (rank, kind, r["metadata"]["name"])
    return sorted(resources, key=order)


def dump(resources):
    """Multi-document YAML of RESOURCES."""
    return "---\n".join(yaml.safe_dump(r, sort_keys=True, default_flow_style=False)
                        for r in resources)
