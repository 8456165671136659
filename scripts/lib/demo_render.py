#!/usr/bin/env python3
"""Renders what scripts/demo.sh gives the loader and Envoy, from tests/envoy/*.yaml.

Usage: demo_render.py configmap OUT VERSION BLUE_WEIGHT GREEN_WEIGHT [CLUSTERS]
       demo_render.py bootstrap OUT

configmap writes the ConfigMap default/envoy-xds as JSON (what `kubectl create -f` or
`kubectl replace -f` sends): lds, cds, rds and eds-blue .yaml, and with CLUSTERS
"blue,green" (the default) cluster green in cds.yaml and eds-green.yaml; CLUSTERS "blue"
leaves green out (cds.yaml's version is 2 with green, 1 without). The route version and
weights are given (a weight of 0 for a cluster
left out drops it from the route). bootstrap writes Envoy's bootstrap (bootstrap-path.yaml). Both
drop comment lines and fill in the {{PLACEHOLDERS}} from the environment: REPO (the
checkout), XDS (the loader's output dir), BLUE_PORT and GREEN_PORT (the backends); ports
of Envoy's admin and listener are 0 (any free one). It writes only OUT.
"""
import json
import os
import sys


def values():
    return {"WATCH": "", "DIR": os.environ["XDS"], "ADMIN_PORT": "0", "LISTEN_PORT": "0", "VERSION": "1",
            "BLUE_PORT": os.environ["BLUE_PORT"], "GREEN_PORT": os.environ["GREEN_PORT"]}


def render(name, **extra):
    with open(os.path.join(os.environ["REPO"], "tests", "envoy", name)) as f:
        lines = [line for line in f.read().splitlines() if not line.lstrip().startswith("#")]
    text = "\n".join(lines) + "\n"
    for key, value in {**values(), **extra}.items():
        text = text.replace("{{%s}}" % key, value)
    return text


def configmap(version, blue, green, clusters="blue,green"):
    with_green = clusters == "blue,green"
    if clusters not in ("blue", "blue,green"):
        raise SystemExit("CLUSTERS is blue or blue,green")
    cds = render("cds.yaml", VERSION="2" if with_green else "1")
    rds = render("rds.yaml", VERSION=version, BLUE_WEIGHT=blue, GREEN_WEIGHT=green)
    if not with_green:
        # the last entry of cds.yaml is cluster green; the route's green line goes too
        cds = cds[:cds.rindex('- "@type"')]
        rds = "".join(line for line in rds.splitlines(True) if "{name: green" not in line)
    data = {
        "lds.yaml": render("lds.yaml"),
        "cds.yaml": cds,
        "rds.yaml": rds,
        "eds-blue.yaml": render("eds-blue.yaml"),
    }
    if with_green:
        data["eds-green.yaml"] = render("eds-green.yaml")
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "envoy-xds", "namespace": "default"},
                       "data": data}, indent=2) + "\n"


def main(argv):
    if argv[:1] == ["bootstrap"] and len(argv) == 2:
        doc = render("bootstrap-path.yaml")
    elif argv[:1] == ["configmap"] and len(argv) in (5, 6):
        doc = configmap(*argv[2:])
    else:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    with open(argv[1], "w") as f:
        f.write(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
