#!/usr/bin/env python3
"""Writes the CycloneDX 1.6 JSON SBOM of the image; scripts/sbom.sh runs it.

Usage: sbom.py OUT CARGO_LOCK RUSTC_VV EPOCH TRIPLE=METADATA... -- OCIARCH=TRIPLE=BINARY...

TRIPLE=METADATA: the output of `cargo metadata --format-version 1 --locked
--filter-platform TRIPLE`, one per target; OCIARCH=TRIPLE=BINARY: each architecture's
binary (amd64=x86_64-unknown-linux-musl=target/image/amd64/envoy-xds-configmap-loader).
RUSTC_VV: a file with the output of `rustc -vV`. EPOCH: SOURCE_DATE_EPOCH, the time the
document says it was made.

The document: the image (metadata.component); one file component per architecture, the
binary with its SHA-256 and size; the crate the binary is built from; every crate of its
run-time dependency graph (normal dependencies, for any of the targets), each with its
version, its license expression from its manifest and the SHA-256 of its .crate file from
Cargo.lock (scope "required"); the crates that only run at build time (build scripts and
what they use, e.g. cc for ring's C code) with scope "excluded"; and the Rust standard
library and musl, which the toolchain links in. The dependencies section is the run-time
graph. The same inputs give the same bytes: keys sorted, the time from EPOCH, and the
serial number a UUID derived from the content.
"""
import datetime
import hashlib
import json
import os
import sys
import tomllib
import uuid

NAME = "envoy-xds-configmap-loader"
SPEC = "1.6"


def purl(name, version):
    return f"pkg:cargo/{name}@{version}"


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def graphs(metadata_files):
    """(packages by id, run-time ids, build-only ids, run-time edges, per-id targets)."""
    packages, runtime, build, edges, targets = {}, set(), set(), {}, {}
    for triple, path in metadata_files:
        with open(path) as f:
            m = json.load(f)
        for p in m["packages"]:
            packages[p["id"]] = p
        nodes = {n["id"]: n for n in m["resolve"]["nodes"]}
        root = m["resolve"]["root"]

        def walk(start, kinds, seen):
            todo = [start]
            while todo:
                i = todo.pop()
                for d in nodes[i]["deps"]:
                    ks = {k["kind"] for k in d["dep_kinds"]}
                    if ks & kinds:
                        if kinds == {None}:
                            edges.setdefault(i, set()).add(d["pkg"])
                        if d["pkg"] not in seen:
                            seen.add(d["pkg"])
                            todo.append(d["pkg"])
            return seen

        run = walk(root, {None}, set())
        for i in run | {root}:
            targets.setdefault(i, set()).add(triple)
        runtime |= run
        # What build scripts of the run-time graph use, and what that uses in turn.
        for i in run | {root}:
            for d in nodes[i]["deps"]:
                if "build" in {k["kind"] for k in d["dep_kinds"]}:
                    build |= {d["pkg"]} | walk(d["pkg"], {None, "build"}, set())
        packages["root"] = packages[root]
        edges.setdefault("root", set()).update(edges.get(root, set()))
    build -= runtime
    return packages, runtime, build, edges, targets


def lock_checksums(lock_path):
    with open(lock_path, "rb") as f:
        lock = tomllib.load(f)
    return {(p["name"], p["version"]): p.get("checksum") for p in lock["package"]}


def crate_component(p, checksum, scope, targets):
    c = {
        "type": "library",
        "bom-ref": purl(p["name"], p["version"]),
        "name": p["name"],
        "version": p["version"],
        "purl": purl(p["name"], p["version"]),
        "scope": scope,
        "hashes": [{"alg": "SHA-256", "content": checksum}],
        "licenses": [{"expression": p["license"]}],
        "properties": [
            {"name": "cargo:source", "value": p["source"]},
            {"name": "cargo:targets", "value": " ".join(sorted(targets))},
        ],
    }
    if p.get("description"):
        c["description"] = " ".join(p["description"].split())
    if scope == "excluded":
        c["properties"].append({"name": "cargo:dependency-kind", "value": "build"})
    return c


def toolchain_components(rustc_vv):
    fields = dict(l.split(": ", 1) for l in rustc_vv.splitlines() if ": " in l)
    release = fields["release"]
    return [
        {
            "type": "library",
            "bom-ref": "rust-std",
            "name": "rust-std",
            "version": release,
            "description": "The Rust standard library (core, alloc, std) of the toolchain, linked in",
            "licenses": [{"expression": "MIT OR Apache-2.0"}],
            "scope": "required",
            "properties": [{"name": "rustc:commit-hash", "value": fields["commit-hash"]}],
        },
        {
            "type": "library",
            "bom-ref": "musl",
            "name": "musl",
            "description": f"The C library of rust-std {release}'s self-contained musl targets, linked in statically",
            "licenses": [{"license": {"id": "MIT"}}],
            "scope": "required",
        },
    ]


def document(lock_path, rustc_vv, epoch, metadata_files, binaries):
    packages, runtime, build, edges, targets = graphs(metadata_files)
    sums = lock_checksums(lock_path)
    root = packages["root"]
    version = root["version"]
    app_ref = purl(root["name"], version)
    ref = {i: purl(packages[i]["name"], packages[i]["version"]) for i in runtime | build}
    ref["root"] = app_ref

    components = [
        {
            "type": "application",
            "bom-ref": app_ref,
            "name": root["name"],
            "version": version,
            "purl": app_ref,
            "description": root["description"],
            "licenses": [{"expression": root["license"]}],
            "scope": "required",
        }
    ]
    files = []
    for oci, triple, path in binaries:
        r = f"file:linux/{oci}/{NAME}"
        files.append(r)
        components.append({
            "type": "file",
            "bom-ref": r,
            "name": f"/{NAME}",
            "version": version,
            "description": f"The static binary of the linux/{oci} image ({triple})",
            "hashes": [{"alg": "SHA-256", "content": sha256_file(path)}],
            "scope": "required",
            "properties": [
                {"name": "oci:platform", "value": f"linux/{oci}"},
                {"name": "rust:target", "value": triple},
                {"name": "size", "value": str(os.path.getsize(path))},
            ],
        })
    for scope, ids in (("required", runtime), ("excluded", build)):
        for i in sorted(ids, key=lambda i: ref[i]):
            p = packages[i]
            checksum = sums.get((p["name"], p["version"]))
            if not checksum:
                raise SystemExit(f"sbom: no checksum in Cargo.lock for {p['name']} {p['version']}")
            components.append(crate_component(p, checksum, scope, targets.get(i, ())))
    components += toolchain_components(rustc_vv)

    deps = [{"ref": "image", "dependsOn": files}]
    deps += [{"ref": f, "dependsOn": [app_ref, "rust-std", "musl"]} for f in files]
    for i in ["root"] + sorted(runtime, key=lambda i: ref[i]):
        deps.append({"ref": ref[i], "dependsOn": sorted(ref[d] for d in edges.get(i, ()))})
    deps += [{"ref": "rust-std", "dependsOn": []}, {"ref": "musl", "dependsOn": []}]

    stamp = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc)
    doc = {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC,
        "version": 1,
        "metadata": {
            "timestamp": stamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tools": {"components": [{
                "type": "application",
                "name": "scripts/sbom.sh",
                "version": version,
                "description": f"{NAME}'s SBOM generator: Cargo.lock and cargo metadata",
            }]},
            "component": {
                "type": "container",
                "bom-ref": "image",
                "name": NAME,
                "version": version,
                "description": "The FROM-scratch image: the static binary and this document (/sbom.cdx.json)",
                "licenses": [{"expression": root["license"]}],
                "properties": [{"name": "oci:platform", "value": f"linux/{oci}"} for oci, _, _ in binaries],
            },
        },
        "components": components,
        "dependencies": deps,
    }
    body = json.dumps(doc, sort_keys=True).encode()
    doc["serialNumber"] = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, hashlib.sha256(body).hexdigest())}"
    return doc


def main(argv):
    if "--" not in argv or len(argv) < 6:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    sep = argv.index("--")
    out, lock, rustc_vv, epoch = argv[:4]
    metadata = [tuple(a.split("=", 1)) for a in argv[4:sep]]
    binaries = [tuple(a.split("=", 2)) for a in argv[sep + 1:]]
    with open(rustc_vv) as f:
        vv = f.read()
    doc = document(lock, vv, epoch, metadata, binaries)
    with open(out + ".tmp", "w") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(out + ".tmp", out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
