#!/usr/bin/env python3
"""Reads the image that scripts/test-image.sh built, as buildah and a registry see it.

Usage: oci_image.py config INSPECT_JSON BINARY VERSION
       oci_image.py sizes OCI_LAYOUT_DIR

config checks the image config in the output of `buildah inspect --type image`: user
65532:65532, entrypoint [BINARY] with no Cmd, and the OCI labels (licenses Apache-2.0,
version VERSION, an https source). Each difference goes to stderr; exit 1 if any.

sizes prints two numbers for the image pushed to an OCI layout directory: the bytes a
registry holds (manifest + config + compressed layers) and the bytes of the layers
uncompressed.

It only reads what it is given.
"""
import gzip
import json
import os
import sys


def config_problems(inspect, binary, version):
    """The differences of the image config from what the image must be, as sentences."""
    c = inspect["OCIv1"]["config"]
    labels = c.get("Labels") or {}
    want = {
        "User": ("65532:65532", c.get("User")),
        "Entrypoint": ([binary], c.get("Entrypoint")),
        "Cmd": (None, c.get("Cmd")),
        "label licenses": ("Apache-2.0", labels.get("org.opencontainers.image.licenses")),
        "label version": (version, labels.get("org.opencontainers.image.version")),
        "label source is https": (True, labels.get("org.opencontainers.image.source", "").startswith("https://")),
    }
    return [f"{k}: got {g!r}, want {w!r}" for k, (w, g) in want.items() if w != g]


def sizes(layout):
    """(bytes in the registry, bytes of the layers uncompressed) of the layout's first image."""
    def blob(digest):
        return os.path.join(layout, "blobs", *digest.split(":"))

    with open(os.path.join(layout, "index.json")) as f:
        m = json.load(f)["manifests"][0]
    with open(blob(m["digest"])) as f:
        manifest = json.load(f)
    total = m["size"] + manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
    raw = 0
    for layer in manifest["layers"]:
        with gzip.open(blob(layer["digest"])) as g:
            raw += len(g.read())
    return total, raw


def main(argv):
    if argv[:1] == ["config"] and len(argv) == 4:
        with open(argv[1]) as f:
            bad = config_problems(json.load(f), argv[2], argv[3])
        for b in bad:
            print("test-image: image config:", b, file=sys.stderr)
        return 1 if bad else 0
    if argv[:1] == ["sizes"] and len(argv) == 2:
        print(*sizes(argv[1]))
        return 0
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
