#!/usr/bin/env python3
"""Checks the SBOM that scripts/sbom.sh wrote; scripts/test-sbom.sh runs it.

Usage: sbom_check.py SBOM CARGO_LOCK TREE... -- OCIARCH=BINARY...

TREE: the output of `cargo tree -e normal --prefix none --format '{p}' --target TRIPLE`
for each target, the run-time graph as cargo itself prints it (an oracle independent of
scripts/lib/sbom.py). Checks, each difference a line on stderr, exit 1 if any:
  1. the document against the CycloneDX 1.6 JSON schema, with cyclonedx-python-lib's strict
     validator (from PyPI, on PYTHONPATH); and that the same validator refuses a copy broken
     on purpose (a hash that is not hex), so a validator that accepts anything fails here;
  2. every crate of the trees, and nothing else, as a required component with its version,
     its license and the SHA-256 from Cargo.lock; no component but a file without a license;
  3. one file component per architecture with the binary's SHA-256 and size.
"""
import copy
import hashlib
import json
import os
import sys
import tomllib

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator


def schema_problems(doc):
    validator = JsonStrictValidator(SchemaVersion.V1_6)
    bad = []
    err = validator.validate_str(json.dumps(doc))
    if err is not None:
        bad.append(f"not valid CycloneDX 1.6: {err}")
    broken = copy.deepcopy(doc)
    next(c for c in broken["components"] if c.get("hashes"))["hashes"][0]["content"] = "not-a-hash"
    if validator.validate_str(json.dumps(broken)) is None:
        bad.append("the validator accepts a document with a hash that is not hex: it checks nothing")
    return bad


def tree_crates(paths):
    """(name, version) of every crate the trees list, the root crate (a path) left out."""
    crates = set()
    for path in paths:
        with open(path) as f:
            for line in f:
                words = line.split()
                if len(words) >= 2 and not (len(words) > 2 and words[2].startswith("(/")):
                    crates.add((words[0], words[1].removeprefix("v")))
    return crates


def crate_problems(doc, lock_path, trees):
    with open(lock_path, "rb") as f:
        lock = {(p["name"], p["version"]): p.get("checksum") for p in tomllib.load(f)["package"]}
    want = tree_crates(trees)
    bad = [] if want else ["the cargo trees list no crate"]
    have = {}
    for c in doc["components"]:
        if c["type"] != "file" and not c.get("licenses"):
            bad.append(f"{c['bom-ref']}: no license")
        if c.get("purl", "").startswith("pkg:cargo/") and c.get("scope") == "required" and c["type"] == "library":
            have[(c["name"], c["version"])] = c
    for k in sorted(want - have.keys()):
        bad.append(f"crate {k[0]} {k[1]} of the run-time graph is missing")
    for k in sorted(have.keys() - want):
        bad.append(f"crate {k[0]} {k[1]} is listed as required but is not in the run-time graph")
    for k in sorted(want & have.keys()):
        c = have[k]
        sums = [h["content"] for h in c.get("hashes", []) if h["alg"] == "SHA-256"]
        if sums != [lock.get(k)]:
            bad.append(f"crate {k[0]} {k[1]}: SHA-256 {sums}, Cargo.lock says {lock.get(k)}")
        if not any(l.get("expression") or l.get("license") for l in c["licenses"]):
            bad.append(f"crate {k[0]} {k[1]}: empty license")
    return bad


def file_problems(doc, binaries):
    files = {p["value"]: c for c in doc["components"] if c["type"] == "file"
             for p in c.get("properties", []) if p["name"] == "oci:platform"}
    bad = []
    if set(files) != {f"linux/{oci}" for oci, _ in binaries}:
        bad.append(f"file components for {sorted(files)}, want {sorted(oci for oci, _ in binaries)}")
    for oci, path in binaries:
        c = files.get(f"linux/{oci}")
        if c is None:
            continue
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        if [h["content"] for h in c["hashes"]] != [digest]:
            bad.append(f"linux/{oci}: SHA-256 {c['hashes']}, the binary {path} has {digest}")
        size = {p["name"]: p["value"] for p in c["properties"]}.get("size")
        if size != str(os.path.getsize(path)):
            bad.append(f"linux/{oci}: size {size}, the binary has {os.path.getsize(path)}")
    return bad


def main(argv):
    if "--" not in argv or len(argv) < 5:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    sep = argv.index("--")
    with open(argv[0]) as f:
        doc = json.load(f)
    bad = schema_problems(doc)
    bad += crate_problems(doc, argv[1], argv[2:sep])
    bad += file_problems(doc, [tuple(a.split("=", 1)) for a in argv[sep + 1:]])
    for b in bad:
        print("test-sbom:", b, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
