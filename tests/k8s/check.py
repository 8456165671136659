#!/usr/bin/env python3
"""Checks the Kubernetes manifests of tests/k8s and the README section that links them.

Usage: check.py README K8S_DIR LOADER ENVOY (scripts/test-manifests.sh runs it in a venv
that has kubernetes-validate and PyYAML, with the loader it built and a real Envoy).

 1. The README's "## Kubernetes" section links each of the six files of K8S_DIR (rbac,
    rbac-selector, rbac-selector-cluster, configmaps, deployment,
    deployment-native-sidecar .yaml) with a Markdown link whose target, relative to the
    README, is that file; every relative link target in it exists; and it pastes no
    manifest (no ```yaml block, no fenced block holding an object), so no pasted copy can
    drift from the files.
 2. Every object validates against the Kubernetes OpenAPI schemas of 1.29 up to the newest
    the validator carries, in strict mode (unknown fields rejected), offline.
 3. What the schemas cannot see, checked as the API server and the kubelet would: names,
    quantities, no namespace anywhere (one exception: the ServiceAccount subject of each
    selection binding names the placeholder namespace "loader-namespace", nothing else),
    selector vs. template labels, volumes and mounts, probes (startup probes only
    where allowed; every -watch loader has a readiness probe on /readyz and a liveness
    probe on /healthz, over HTTP, on the port it listens on for the pod's address), the
    restricted security context, the RBAC objects against the ConfigMap names the loader
    is given. The selection RBAC: rbac-selector.yaml holds exactly one Role and one
    RoleBinding, rbac-selector-cluster.yaml one ClusterRole and one ClusterRoleBinding;
    every rule is on the core group, on configmaps and/or secrets (configmaps in some
    rule), with the verbs exactly list and watch and no resourceNames (a selection is
    listed and watched as a collection, never read by name); the binding refers to its
    own file's role and has the one subject ServiceAccount envoy-xds-loader (rbac.yaml's)
    in the placeholder namespace; neither object takes the kind and name of one of
    rbac.yaml's (applied in the loader's namespace, it would replace it).
 4. Every loader command line, exactly as written, passes the real loader's flag parser,
    and behaves (run with the output dir and -listen moved to a temporary place): -onetime
    fails fast on a refused API connection; -watch keeps running, its probe endpoints
    answer (/readyz 503 with no snapshot yet, /healthz 200), and SIGTERM ends it with 0.
 5. The Envoy configuration (bootstrap + the xDS ConfigMap) and the Envoy container's
    command line load into a real Envoy: the listener, both clusters and the route are
    accepted, once for each Deployment (each has one Envoy container).

Every problem is printed as "test-manifests: FAIL: ..." on stderr; the exit status is 1 if
there was any, else 0. It never changes the files it checks; what it runs (loaders, Envoy)
works in a temporary directory that it removes.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import kubernetes_validate
import kubernetes_validate.utils as kvu
import yaml

FILES = ["rbac.yaml", "rbac-selector.yaml", "rbac-selector-cluster.yaml", "configmaps.yaml",
         "deployment.yaml", "deployment-native-sidecar.yaml"]
# The label-selection RBAC: file -> (role kind, binding kind).
SELECTOR_RBAC = {"rbac-selector.yaml": ("Role", "RoleBinding"),
                 "rbac-selector-cluster.yaml": ("ClusterRole", "ClusterRoleBinding")}
# The one namespace written in the manifests: the namespace of the loader's ServiceAccount
# as the selection bindings name it, to be replaced by the loader's namespace on apply.
LOADER_NS_PLACEHOLDER = "loader-namespace"
# The manifests with an Envoy container: each must load into a real Envoy (part 5).
ENVOY_MANIFESTS = ["deployment.yaml", "deployment-native-sidecar.yaml"]
MIN_VERSION = (1, 29)
SA_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"

SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
PORT_NAME = re.compile(r"^(?=.{1,15}$)(?=.*[a-z])[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
QUANTITY = re.compile(r"^([+-]?[0-9.]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+)?$")

errors = []


def error(msg):
    errors.append(msg)
    print("test-manifests: FAIL:", msg, file=sys.stderr)


def info(msg):
    print("test-manifests:", msg)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# 1. The README section.


# A Markdown link's target: [text](target) or [text](<target> "title").
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
# The opening line of a fenced yaml block, closed or not.
YAML_FENCE = re.compile(r"^[ \t]*(?:```|~~~)[ \t]*ya?ml\b", re.M | re.I)
# A fenced block of any kind, and its body.
FENCED = re.compile(r"^[ \t]*(```|~~~)([^\n]*)\n(.*?)^[ \t]*\1[ \t]*$", re.M | re.S)


def check_readme(readme, k8s_dir):
    """The section links each manifest (a target that exists) and pastes none of them."""
    text = open(readme, encoding="utf-8").read()
    m = re.search(r"^## Kubernetes\b.*?(?=^## |\Z)", text, re.M | re.S)
    if not m:
        error(f"{readme}: no section '## Kubernetes'")
        return
    section, before = m.group(0), len(errors)
    pasted = len(YAML_FENCE.findall(section))
    # A manifest pasted under another fence tag would drift just the same.
    pasted += sum(1 for _, tag, body in FENCED.findall(section)
                  if not re.match(r"ya?ml\b", tag.strip(), re.I)
                  and re.search(r"^apiVersion:", body, re.M) and re.search(r"^kind:", body, re.M))
    if pasted:
        error(f"{readme}: the Kubernetes section pastes {pasted} yaml block(s); it links the files of {k8s_dir} instead, so no copy can drift")
    base = os.path.dirname(readme) or "."
    linked = set()
    for target in LINK.findall(section):
        path = target.split("#", 1)[0]
        if not path or re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", path):
            continue  # an anchor or a URL
        resolved = os.path.realpath(os.path.join(base, path))
        if not os.path.exists(resolved):
            error(f"{readme}: the Kubernetes section links {target}, which does not exist (relative to {base})")
        linked.add(resolved)
    for f in FILES:
        want = os.path.realpath(os.path.join(k8s_dir, f))
        if want not in linked:
            rel = os.path.relpath(os.path.abspath(os.path.join(k8s_dir, f)), os.path.abspath(base))
            error(f"{readme}: the Kubernetes section does not link {k8s_dir}/{f} (want a link like [{rel}]({rel}), relative to the README)")
    if len(errors) == before:
        info(f"{readme}: the Kubernetes section links the {len(FILES)} manifests of {k8s_dir} and pastes none")


# 2. Schemas, strict, every version from 1.29 on.


def check_schemas(docs):
    versions = sorted({kvu.major_minor(v) for v in kvu.all_versions()}, key=lambda v: tuple(map(int, v.split("."))))
    versions = [v for v in versions if tuple(map(int, v.split("."))) >= MIN_VERSION]
    for v in versions:
        for f in FILES:
            for d in docs[f]:
                try:
                    kubernetes_validate.validate(d, v + ".0", strict=True)
                except kubernetes_validate.ValidationError as e:
                    path = ".".join(str(p) for p in e.path)
                    error(f"{f}: {d['kind']}/{d['metadata']['name']} against {v}: {path}: {e.message}")
                except Exception as e:  # a schema missing for a kind is a failure too
                    error(f"{f}: {d['kind']}/{d['metadata']['name']} against {v}: {getattr(e, 'message', e)}")
    info(f"schemas (strict): {sum(len(x) for x in docs.values())} objects against Kubernetes {versions[0]} to {versions[-1]}")


# 3. What the schemas do not check.


def walk(node, path=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield path + "." + str(k), k, v
            yield from walk(v, path + "." + str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}[{i}]")


def check_names(docs):
    for f in FILES:
        for d in docs[f]:
            name = f"{f}: {d['kind']}/{d['metadata']['name']}"
            if len(d["metadata"]["name"]) > 253 or not SUBDOMAIN.match(d["metadata"]["name"]):
                error(f"{name}: bad name")
            for path, k, v in walk(d):
                if k == "namespace" and not path.endswith(".fieldRef.fieldPath") \
                        and not placeholder_namespace(f, d, path, v):
                    error(f"{name}: {path}: no namespace may be written (kubectl apply -n decides)")
                if k in ("cpu", "memory") and ".resources." in path and not (isinstance(v, str) and QUANTITY.match(v)):
                    error(f"{name}: {path}: bad quantity {v!r}")


def placeholder_namespace(f, d, path, v):
    """The one namespace allowed: a selection binding's subject, naming the placeholder."""
    return (f in SELECTOR_RBAC and d["kind"] == SELECTOR_RBAC[f][1]
            and re.fullmatch(r"\.subjects\[\d+\]\.namespace", path) is not None
            and v == LOADER_NS_PLACEHOLDER)


def check_rbac(docs):
    """Returns the ConfigMap names the Role allows and the ServiceAccount's name."""
    kinds = sorted(d["kind"] for d in docs["rbac.yaml"])
    if kinds != ["Role", "RoleBinding", "ServiceAccount"]:
        error(f"rbac.yaml: want one ServiceAccount, one Role, one RoleBinding; got {kinds}")
        return set(), None
    sa, role, rb = (next(d for d in docs["rbac.yaml"] if d["kind"] == k)
                    for k in ("ServiceAccount", "Role", "RoleBinding"))
    if rb["roleRef"] != {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}:
        error(f"rbac.yaml: the RoleBinding's roleRef {rb['roleRef']} is not the Role")
    if rb["subjects"] != [{"kind": "ServiceAccount", "name": sa["metadata"]["name"]}]:
        error(f"rbac.yaml: the RoleBinding's subjects {rb['subjects']} are not the ServiceAccount alone")
    for rule in role["rules"]:
        if rule.get("apiGroups") != [""] or rule.get("resources") != ["configmaps"]:
            error(f"rbac.yaml: a rule on something else than core configmaps: {rule}")
        if sorted(rule.get("verbs", [])) != ["get", "list", "watch"]:
            error(f"rbac.yaml: verbs {rule.get('verbs')}, want exactly get, list, watch")
        if not rule.get("resourceNames"):
            error("rbac.yaml: the rule has no resourceNames")
    allowed = {n for rule in role["rules"] for n in rule.get("resourceNames", [])}
    return allowed, sa["metadata"]["name"]


def check_selector_rbac(docs, sa_name):
    """The label-selection RBAC of each file of SELECTOR_RBAC against rbac.yaml's account."""
    for f, (role_kind, binding_kind) in SELECTOR_RBAC.items():
        kinds = sorted(d["kind"] for d in docs[f])
        if kinds != sorted([role_kind, binding_kind]):
            error(f"{f}: want one {role_kind} and one {binding_kind}; got {kinds}")
            continue
        role = next(d for d in docs[f] if d["kind"] == role_kind)
        binding = next(d for d in docs[f] if d["kind"] == binding_kind)
        name = f"{f}: {role_kind}/{role['metadata']['name']}"
        if "aggregationRule" in role:
            error(f"{name}: an aggregationRule would let other roles add rules")
        rules = role.get("rules") or []
        if not rules:
            error(f"{name}: no rules")
        for rule in rules:
            resources = rule.get("resources") or []
            if rule.get("apiGroups") != [""]:
                error(f"{name}: apiGroups {rule.get('apiGroups')}, want the core group alone ['']")
            if not resources or len(set(resources)) != len(resources) \
                    or not set(resources) <= {"configmaps", "secrets"}:
                error(f"{name}: resources {resources}, want configmaps and/or secrets, each once")
            verbs = rule.get("verbs") or []
            if sorted(verbs) != ["list", "watch"]:
                error(f"{name}: verbs {verbs}, want exactly list, watch (a selection is listed and watched, never read by name)")
            if "resourceNames" in rule:
                error(f"{name}: resourceNames {rule['resourceNames']}: they cannot authorize the list and watch of a label selection")
            if "nonResourceURLs" in rule:
                error(f"{name}: nonResourceURLs {rule['nonResourceURLs']}: the loader asks none")
        if not any("configmaps" in (r.get("resources") or []) for r in rules):
            error(f"{name}: no rule on configmaps")
        bname = f"{f}: {binding_kind}/{binding['metadata']['name']}"
        # Applied in the loader's namespace too: the same kind and name as rbac.yaml's
        # objects would replace them.
        for d in (role, binding):
            if any(o["kind"] == d["kind"] and o["metadata"]["name"] == d["metadata"]["name"] for o in docs["rbac.yaml"]):
                error(f"{f}: {d['kind']}/{d['metadata']['name']} has the name of rbac.yaml's, which it would replace")
        want_ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role["metadata"]["name"]}
        if binding.get("roleRef") != want_ref:
            error(f"{bname}: roleRef {binding.get('roleRef')}, want {want_ref}")
        want_subjects = [{"kind": "ServiceAccount", "name": sa_name, "namespace": LOADER_NS_PLACEHOLDER}]
        if binding.get("subjects") != want_subjects:
            error(f"{bname}: subjects {binding.get('subjects')}, want {want_subjects} (rbac.yaml's ServiceAccount, in the placeholder namespace)")


def loader_args(c):
    return c.get("args", []) if "envoy-xds-configmap-loader" in c.get("image", "") else None


def is_envoy(c):
    # By image too: a container renamed from `envoy` must not slip past part 5.
    return c.get("name") == "envoy" or "envoyproxy/envoy" in c.get("image", "")


def flag_values(args, flag):
    out, it = [], iter(args)
    for a in it:
        for p in ("-" + flag, "--" + flag):
            if a == p:
                out.append(next(it, ""))
            elif a.startswith(p + "="):
                out.append(a[len(p) + 1:])
    return out


def check_pod(name, d, sa_name):
    """The Deployment's selector and pod-level fields; returns the pod's volumes by name."""
    spec, pod = d["spec"], d["spec"]["template"]["spec"]
    tlabels = d["spec"]["template"]["metadata"].get("labels", {})
    if not spec["selector"].get("matchLabels") or any(tlabels.get(k) != v for k, v in spec["selector"]["matchLabels"].items()):
        error(f"{name}: the selector does not match the template labels")
    if pod.get("serviceAccountName") != sa_name:
        error(f"{name}: serviceAccountName is not {sa_name}")
    psc = pod.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        error(f"{name}: the pod must run as non-root with the RuntimeDefault seccomp profile")
    if pod.get("automountServiceAccountToken") is not False:
        error(f"{name}: the token must be mounted into the loader containers only")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    if len(volumes) != len(pod.get("volumes", [])):
        error(f"{name}: duplicate volume names")
    names = [c["name"] for c in pod.get("initContainers", []) + pod["containers"]]
    if len(set(names)) != len(names):
        error(f"{name}: duplicate container names {names}")
    return volumes


def container_probes(cn, c):
    """The container's probes as {probe: (port number, http path or None)}."""
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", []) if "name" in p}
    for p in c.get("ports", []):
        if "name" in p and not PORT_NAME.match(p["name"]):
            error(f"{cn}: bad port name {p['name']}")
    probes = {}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        handler = c.get(probe, {}).get("tcpSocket") or c.get(probe, {}).get("httpGet")
        if not handler:
            continue
        if "httpGet" in c.get(probe, {}) and handler.get("scheme", "HTTP") != "HTTP":
            error(f"{cn}: {probe} asks {handler['scheme']}, but the loader serves plain HTTP")
        port = handler.get("port")
        if isinstance(port, str):
            if port not in ports:
                error(f"{cn}: {probe} names the port {port!r}, which the container does not declare")
                continue
            port = ports[port]
        probes[probe] = (port, handler.get("path"))
    return probes


def check_container(cn, c, plain_init, volumes, used):
    """What every container must have; returns its probes and its mounts by path."""
    if not LABEL.match(c["name"]):
        error(f"{cn}: bad name")
    if plain_init:
        for p in ("startupProbe", "readinessProbe", "livenessProbe", "lifecycle"):
            if p in c:
                error(f"{cn}: {p} is not allowed on an init container without restartPolicy: Always")
    probes = container_probes(cn, c)
    sc = c.get("securityContext", {})
    if sc.get("allowPrivilegeEscalation") is not False or sc.get("readOnlyRootFilesystem") is not True \
            or sc.get("capabilities", {}).get("drop") != ["ALL"] or sc.get("capabilities", {}).get("add"):
        error(f"{cn}: want allowPrivilegeEscalation false, readOnlyRootFilesystem true, capabilities drop [ALL]")
    req = c.get("resources", {}).get("requests", {})
    if "cpu" not in req or "memory" not in req:
        error(f"{cn}: no cpu and memory requests")
    paths = [vm["mountPath"] for vm in c.get("volumeMounts", [])]
    if len(set(paths)) != len(paths):
        error(f"{cn}: duplicate mount paths")
    mounts = {vm["mountPath"]: vm for vm in c.get("volumeMounts", [])}
    for vm in c.get("volumeMounts", []):
        if vm["name"] not in volumes:
            error(f"{cn}: mounts the undefined volume {vm['name']}")
        used.add(vm["name"])
    return probes, mounts


def check_loader_probes(cn, c, args, probes, mode, sidecar):
    listen = flag_values(args, "listen")
    for probe, (port, path) in probes.items():
        if not listen or not listen[-1].endswith(f":{port}"):
            error(f"{cn}: {probe} asks port {port}, but the loader listens on {listen or 'nothing'}")
        if path not in ("/readyz", "/healthz"):
            error(f"{cn}: {probe} asks {path!r}, which the loader does not serve")
    if probes and listen and listen[-1].rsplit(":", 1)[0] not in ("", "0.0.0.0", "[::]"):
        error(f"{cn}: -listen={listen[-1]}: the kubelet probes the pod's address, which that does not listen on")
    if mode == "watch":
        # Readiness: the snapshot is on disk; liveness: the loader is not stuck.
        for probe, want_path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            got = probes.get(probe)
            if got is None:
                error(f"{cn}: a -watch loader needs an httpGet {probe} on {want_path} (port of -listen), has {c.get(probe)}")
            elif got[1] != want_path:
                error(f"{cn}: {probe} asks {got[1] or 'a TCP connect'!r}, want httpGet {want_path}")
    if sidecar and probes.get("startupProbe", (0, ""))[1] != "/readyz":
        error(f"{cn}: a native loader sidecar needs a startupProbe on /readyz (first snapshot on disk)")


def check_loader(cn, c, args, plain_init, sidecar, long_running, probes, mounts, allowed, configmaps):
    """A loader container; returns its mode, "onetime", "watch" or None."""
    mode = "onetime" if "-onetime" in args else "watch" if "-watch" in args else None
    if plain_init and mode != "onetime":
        error(f"{cn}: a plain init container must run -onetime")
    if long_running and mode != "watch":
        error(f"{cn}: a loader sidecar must run -watch")
    env = {e["name"]: e for e in c.get("env", [])}
    if env.get("POD_NAMESPACE", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "metadata.namespace":
        error(f"{cn}: POD_NAMESPACE must come from the downward API (metadata.namespace)")
    sa_mount = mounts.get(SA_MOUNT)
    if not sa_mount or not sa_mount.get("readOnly"):
        error(f"{cn}: no read-only service-account mount")
    out = (flag_values(args, "output-dir") or ["/srv/runtime/current"])[-1]
    if not any(out.startswith(p.rstrip("/") + "/") for p, vm in mounts.items() if not vm.get("readOnly")):
        error(f"{cn}: the output dir {out} is not on a writable volume")
    for cm in flag_values(args, "configmap"):
        if cm not in allowed:
            error(f"{cn}: -configmap {cm} is not in the Role's resourceNames {sorted(allowed)}")
        if cm not in configmaps:
            error(f"{cn}: -configmap {cm} is not in configmaps.yaml")
    if flag_values(args, "secret"):
        error(f"{cn}: the Role allows no Secret")
    check_loader_probes(cn, c, args, probes, mode, sidecar)
    return mode


def check_envoy(cn, c, mounts, containers):
    if c.get("image") != "envoyproxy/envoy:v1.40.0":
        error(f"{cn}: image {c.get('image')}, want envoyproxy/envoy:v1.40.0")
    loader_volumes = {vm["name"] for x in containers if loader_args(x) is not None for vm in x.get("volumeMounts", [])}
    rt = mounts.get("/srv/runtime")
    if not rt or not rt.get("readOnly") or rt["name"] not in loader_volumes:
        error(f"{cn}: must mount the loader's volume read-only at /srv/runtime")
    if SA_MOUNT in mounts:
        error(f"{cn}: Envoy must not get the service-account token")


def check_volumes(name, volumes, used, configmaps):
    for v in volumes.values():
        if v["name"] not in used:
            error(f"{name}: volume {v['name']} is not mounted")
        cm = v.get("configMap", {}).get("name")
        if cm and cm not in configmaps:
            error(f"{name}: volume {v['name']} names the ConfigMap {cm}, which configmaps.yaml lacks")
        for src in v.get("projected", {}).get("sources", []):
            exp = src.get("serviceAccountToken", {}).get("expirationSeconds")
            if exp is not None and exp < 600:
                error(f"{name}: serviceAccountToken expirationSeconds {exp} < 600")
            cm = src.get("configMap", {}).get("name")
            if cm and cm != "kube-root-ca.crt" and cm not in configmaps:
                error(f"{name}: projected ConfigMap {cm} is unknown")


def check_layout(name, f, inits, mains):
    """One Envoy container; the loaders in the roles each variant gives them."""
    n_envoy = sum(1 for c in inits + mains if loader_args(c) is None and is_envoy(c))
    if n_envoy != 1:
        error(f"{name}: want one Envoy container, got {n_envoy}")
    roles_seen = [("sidecar" if c.get("restartPolicy") == "Always" else "init" if c in inits else "main",
                   "-onetime" in loader_args(c) and "onetime" or "watch")
                  for c in inits + mains if loader_args(c) is not None]
    if f == "deployment-native-sidecar.yaml":
        if roles_seen != [("sidecar", "watch")]:
            error(f"{name}: want one loader, a -watch native sidecar; got {roles_seen}")
    elif roles_seen != [("init", "onetime"), ("main", "watch")]:
        error(f"{name}: want a -onetime init container and a -watch sidecar; got {roles_seen}")


def check_deployment(f, d, sa_name, allowed, configmaps, loader_runs, envoy_runs):
    """Checks one Deployment; appends what parts 4 and 5 run to loader_runs and envoy_runs."""
    name = f"{f}: Deployment/{d['metadata']['name']}"
    pod = d["spec"]["template"]["spec"]
    volumes = check_pod(name, d, sa_name)
    inits, mains = pod.get("initContainers", []), pod["containers"]
    used = set()
    for c in inits + mains:
        cn = f"{name}: container {c['name']}"
        sidecar = c in inits and c.get("restartPolicy") == "Always"
        plain_init = c in inits and not sidecar
        probes, mounts = check_container(cn, c, plain_init, volumes, used)
        args = loader_args(c)
        if args is not None:
            long_running = sidecar or c in mains
            mode = check_loader(cn, c, args, plain_init, sidecar, long_running, probes, mounts, allowed, configmaps)
            loader_runs.append((cn, args, mode, probes))
        elif is_envoy(c):
            check_envoy(cn, c, mounts, inits + mains)
            envoy_runs.append((f, c, mounts, volumes))
    check_volumes(name, volumes, used, configmaps)
    check_layout(name, f, inits, mains)


def check_semantics(docs, objects):
    """Part 3; returns the loader and Envoy containers that parts 4 and 5 run."""
    check_names(docs)
    allowed, sa_name = check_rbac(docs)
    check_selector_rbac(docs, sa_name)
    configmaps = {n for (k, n) in objects if k == "ConfigMap"}
    deployments = {f: d for f in FILES for d in docs[f] if d["kind"] == "Deployment"}
    if sorted(deployments) != ["deployment-native-sidecar.yaml", "deployment.yaml"]:
        error("want one Deployment in each of deployment.yaml and deployment-native-sidecar.yaml")
    loader_runs, envoy_runs = [], []
    for f, d in deployments.items():
        check_deployment(f, d, sa_name, allowed, configmaps, loader_runs, envoy_runs)
    info(f"semantics: names, quantities, RBAC (named and selection), selectors, volumes, probes, security contexts of {sum(len(x) for x in docs.values())} objects")
    return loader_runs, envoy_runs


# 4. The loader's command lines, run for real (nothing listens on the API port).


def ask(url):
    """The HTTP status of a GET, or the connection error as a string."""
    try:
        return urllib.request.urlopen(url, timeout=5).status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError as e:
        return str(e)


def run_loader(loader, tmp, closed_port, cn, args, mode, probes):
    # The flags exactly as written (names and values; -h stops before anything runs).
    p = subprocess.run([loader] + args + ["-h"], capture_output=True, text=True, timeout=10)
    if p.returncode != 0:
        error(f"{cn}: the loader rejects its arguments {args}: {p.stderr.strip()}")
        return
    health_port = free_port()
    run_args = [a.replace("/srv/runtime", tmp + "/srv-runtime") for a in args]
    run_args = [re.sub(r"^(--?listen=).*", rf"\g<1>127.0.0.1:{health_port}", a) for a in run_args]
    if mode == "onetime":
        # -onetime retries a refused connection for -onetime-timeout (1 min by default):
        # a short one here, appended after the manifest's own flags.
        run_args.append("-onetime-timeout=2s")
    env = {"POD_NAMESPACE": "manifest-test", "KUBERNETES_SERVICE_HOST": "127.0.0.1",
           "KUBERNETES_SERVICE_PORT": str(closed_port), "PATH": "/usr/bin:/bin"}
    p = subprocess.Popen([loader] + run_args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        rc = p.wait(timeout=6 if mode == "onetime" else 1.5)
    except subprocess.TimeoutExpired:
        rc = None
    answers = {probe: ask(f"http://127.0.0.1:{health_port}{path}") for probe, (_, path) in probes.items()}
    # No API server answers here: no snapshot yet (so not ready), but fresh (so alive).
    want_answers = {pr: 503 if path == "/readyz" else 200 for pr, (_, path) in probes.items()}
    if answers != want_answers:
        error(f"{cn}: the probes got {answers}, want {want_answers}")
    rc_term = None
    if rc is None:
        p.send_signal(signal.SIGTERM)
        try:
            rc_term = p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            rc_term = "killed"
    err = p.stderr.read()
    if rc == 2:
        error(f"{cn}: the loader rejects its arguments {args}: {err.strip()}")
    elif mode == "onetime" and not (rc == 1 and "connection refused" in err and "still failing at -onetime-timeout" in err):
        error(f"{cn}: -onetime against a closed port: exit {rc}, want 1 after retrying, naming the refused connection: {err.strip()}")
    elif mode == "watch" and (rc is not None or rc_term != 0):
        error(f"{cn}: -watch should keep retrying and end with 0 on SIGTERM: exit {rc}/{rc_term}: {err.strip()}")


def run_loaders(loader, tmp, loader_runs):
    closed_port = free_port()
    for cn, args, mode, probes in loader_runs:
        run_loader(loader, tmp, closed_port, cn, args, mode, probes)
    info(f"loader command lines: {len(loader_runs)} parsed and run, {sum(len(r[3]) for r in loader_runs)} probes answered ({loader})")


# 5. The Envoy configuration in a real Envoy, with the Envoy container's command line.

# The stats that say Envoy took the configuration, each with its test.
ENVOY_WANT = {
    "listener_manager.lds.update_success": lambda v: v >= 1,
    "listener_manager.lds.update_rejected": lambda v: v == 0,
    "listener_manager.total_listeners_active": lambda v: v == 1,
    "cluster_manager.cds.update_success": lambda v: v >= 1,
    "cluster_manager.cds.update_rejected": lambda v: v == 0,
    "http.ingress.rds.canary.update_success": lambda v: v >= 1,
    "http.ingress.rds.canary.update_rejected": lambda v: v == 0,
}


def relocate(text, cur):
    """Moves the manifests' paths and ports to a temporary place and to free ports."""
    return (text.replace("/srv/runtime/current", cur)
            .replace("port_value: 8080", "port_value: 0").replace("port_value: 9901", "port_value: 0"))


def envoy_argv(f, c, mounts, volumes, objects, run, cur):
    """The container's command line with its ConfigMap files copied under run, or None."""
    argv = c.get("command", []) + c.get("args", [])
    if argv[:1] != ["envoy"]:
        error(f"{f}: the Envoy command should start with envoy: {argv}")
        return None
    # Files the container reads from ConfigMap volumes, mapped to the same keys here.
    for i, a in enumerate(argv):
        for mp, vm in mounts.items():
            vol = volumes[vm["name"]]
            if "configMap" in vol and a.startswith(mp.rstrip("/") + "/"):
                key = a[len(mp.rstrip("/")) + 1:]
                data = objects[("ConfigMap", vol["configMap"]["name"])][1]["data"]
                if key not in data:
                    error(f"{f}: Envoy reads {a}, but ConfigMap {vol['configMap']['name']} has no key {key}")
                    continue
                local = os.path.join(run, key)
                with open(local, "w") as out:
                    out.write(relocate(data[key], cur))
                argv[i] = local
    return argv


def envoy_stats(admin_file):
    """Envoy's numeric stats from its admin endpoint; OSError while it is not up."""
    addr = open(admin_file).read().strip()
    body = urllib.request.urlopen(f"http://{addr}/stats", timeout=2).read().decode()
    stats = {}
    for line in body.splitlines():
        k, _, v = line.partition(": ")
        if v.strip().isdigit():
            stats[k] = int(v)
    return stats


def run_envoy(envoy, tmp, objects, f, c, mounts, volumes):
    """Runs Envoy with the container's configuration; True if it accepted all of it."""
    run = os.path.join(tmp, "envoy-" + f.split(".")[0])
    cur = os.path.join(run, "srv-runtime", "current")
    os.makedirs(cur)
    for k, v in objects[("ConfigMap", "envoy-xds")][1]["data"].items():
        with open(os.path.join(cur, k), "w") as out:
            out.write(relocate(v, cur))
    argv = envoy_argv(f, c, mounts, volumes, objects, run, cur)
    if argv is None:
        return False
    admin_file = os.path.join(run, "admin")
    cmd = [envoy] + argv[1:] + ["--concurrency", "1", "--admin-address-path", admin_file]
    with open(os.path.join(run, "envoy.log"), "w+") as log:
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        stats, ok, deadline = {}, False, time.time() + 20
        try:
            while time.time() < deadline and p.poll() is None:
                time.sleep(0.1)
                try:
                    stats = envoy_stats(admin_file)
                except OSError:
                    continue
                clusters = stats.get("cluster_manager.active_clusters", 0) + stats.get("cluster_manager.warming_clusters", 0)
                if all(k in stats and t(stats[k]) for k, t in ENVOY_WANT.items()) and clusters == 2:
                    ok = True
                    break
        finally:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if not ok:
            log.seek(0)
            got = {k: stats.get(k) for k in list(ENVOY_WANT) + ["cluster_manager.active_clusters", "cluster_manager.warming_clusters"]}
            error(f"{f}: Envoy did not accept the configuration: {got}; exit {p.returncode}; log:\n{log.read()[-3000:]}")
    return ok


def run_envoys(envoy, tmp, objects, envoy_runs):
    loaded = [f for f, c, mounts, volumes in envoy_runs if run_envoy(envoy, tmp, objects, f, c, mounts, volumes)]
    # Zero runs must not pass: every manifest with an Envoy container was loaded, once.
    if sorted(loaded) != sorted(ENVOY_MANIFESTS):
        missing = [f for f in ENVOY_MANIFESTS if f not in loaded]
        error(f"Envoy accepted {len(loaded)} configurations ({', '.join(loaded) or 'none'}), want {len(ENVOY_MANIFESTS)}, one per manifest with an Envoy container; not loaded: {', '.join(missing) or 'none'}")
    info(f"Envoy {envoy}: bootstrap, listener, 2 clusters and the weighted route accepted for {len(loaded)} of {len(ENVOY_MANIFESTS)} manifests ({', '.join(loaded)})")


def main(argv):
    if len(argv) != 4:
        print("usage: check.py README K8S_DIR LOADER ENVOY", file=sys.stderr)
        return 2
    readme, k8s_dir, loader, envoy = argv
    errors.clear()
    check_readme(readme, k8s_dir)
    docs = {}
    for f in FILES:
        with open(os.path.join(k8s_dir, f), encoding="utf-8") as y:
            docs[f] = [d for d in yaml.safe_load_all(y.read()) if d]
    check_schemas(docs)
    objects = {(d["kind"], d["metadata"]["name"]): (f, d) for f in FILES for d in docs[f]}
    loader_runs, envoy_runs = check_semantics(docs, objects)
    tmp = tempfile.mkdtemp(prefix="test-manifests.")
    try:
        run_loaders(loader, tmp, loader_runs)
        run_envoys(envoy, tmp, objects, envoy_runs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if errors:
        print(f"test-manifests: {len(errors)} problem(s)", file=sys.stderr)
        return 1
    print("test-manifests: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
