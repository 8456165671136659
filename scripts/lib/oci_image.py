#!/usr/bin/env python3
"""Reads the image that scripts/test-image.sh built, as buildah and a registry see it.

Usage: oci_image.py config INSPECT_JSON BINARY VERSION ARCH SBOM_SHA256
       oci_image.py platforms OCI_LAYOUT_DIR

config checks the image config in the output of `buildah inspect --type image`: os linux
and architecture ARCH, user 65532:65532, entrypoint [BINARY] with no Cmd, and the labels
(licenses Apache-2.0, version VERSION, an https source, the SBOM's path /sbom.cdx.json and
its sha256 SBOM_SHA256). Each difference goes to stderr; exit 1 if any.

platforms reads the manifest list pushed to an OCI layout directory (`buildah manifest push
--all`) and prints a line per image: its platform (linux/amd64), the bytes a registry holds
for it (manifest + config + compressed layers) and the bytes of its layers uncompressed.

It only reads what it is given.
"""
import gzip
import json
import os
import sys


SBOM_LABEL = "io.github.envoy-xds-configmap-loader.sbom"


def config_problems(inspect, binary, version, arch, sbom_sha256):
    """The differences of the image config from what the image must be, as sentences."""
    image = inspect["OCIv1"]
    c = image["config"]
    labels = c.get("Labels") or {}
    want = {
        "os": ("linux", image.get("os")),
        "architecture": (arch, image.get("architecture")),
        "label sbom": ("/sbom.cdx.json", labels.get(SBOM_LABEL)),
        "label sbom.sha256": (sbom_sha256, labels.get(SBOM_LABEL + ".sha256")),
        "User": ("65532:65532", c.get("User")),
        "Entrypoint": ([binary], c.get("Entrypoint")),
        "Cmd": (None, c.get("Cmd")),
        "label licenses": ("Apache-2.0", labels.get("org.opencontainers.image.licenses")),
        "label version": (version, labels.get("org.opencontainers.image.version")),
        "label source is https": (True, labels.get("org.opencontainers.image.source", "").startswith("https://")),
    }
    return [f"{k}: got {g!r}, want {w!r}" for k, (w, g) in want.items() if w != g]


def platforms(layout):
    """[(os/arch, bytes in the registry, bytes of the layers uncompressed)] of the layout's
    manifest list, in its order."""
    def blob(digest):
        return os.path.join(layout, "blobs", *digest.split(":"))

    def load(digest):
        with open(blob(digest)) as f:
            return json.load(f)

    with open(os.path.join(layout, "index.json")) as f:
        top = json.load(f)["manifests"][0]
    entries = load(top["digest"]).get("manifests") or [top]
    out = []
    for m in entries:
        manifest = load(m["digest"])
        total = m["size"] + manifest["config"]["size"] + sum(l["size"] for l in manifest["layers"])
        raw = 0
        for layer in manifest["layers"]:
            with gzip.open(blob(layer["digest"])) as g:
                raw += len(g.read())
        p = m.get("platform") or {}
        out.append((f"{p.get('os')}/{p.get('architecture')}", total, raw))
    return out


def main(argv):
    if argv[:1] == ["config"] and len(argv) == 6:
        with open(argv[1]) as f:
            bad = config_problems(json.load(f), *argv[2:6])
        for b in bad:
            print("test-image: image config:", b, file=sys.stderr)
        return 1 if bad else 0
    if argv[:1] == ["platforms"] and len(argv) == 2:
        for p in platforms(argv[1]):
            print(*p)
        return 0
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
