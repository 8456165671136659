#!/usr/bin/env python3
"""Renders what scripts/demo.sh gives the loader and Envoy, from tests/envoy/*.yaml.

Usage: demo_render.py configmap OUT VERSION BLUE_WEIGHT GREEN_WEIGHT
       demo_render.py bootstrap OUT

configmap writes the ConfigMap default/envoy-xds as JSON (what `kubectl create -f` or
`kubectl replace -f` sends): lds, cds, rds, eds-blue and eds-green .yaml, with the route
version and weights given. bootstrap writes Envoy's bootstrap (bootstrap-path.yaml). Both
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


def configmap(version, blue, green):
    data = {
        "lds.yaml": render("lds.yaml"),
        "cds.yaml": render("cds.yaml"),
        "rds.yaml": render("rds.yaml", VERSION=version, BLUE_WEIGHT=blue, GREEN_WEIGHT=green),
        "eds-blue.yaml": render("eds-blue.yaml"),
        "eds-green.yaml": render("eds-green.yaml"),
    }
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "envoy-xds", "namespace": "default"},
                       "data": data}, indent=2) + "\n"


def main(argv):
    if argv[:1] == ["bootstrap"] and len(argv) == 2:
        doc = render("bootstrap-path.yaml")
    elif argv[:1] == ["configmap"] and len(argv) == 5:
        doc = configmap(*argv[2:5])
    else:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    with open(argv[1], "w") as f:
        f.write(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
