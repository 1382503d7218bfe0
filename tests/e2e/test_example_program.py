"""The typed example program (`examples/typed`, `vlaninfra.Site`) lays exactly the host objects
the YAML `lab` stack lays: the hosts' links, addresses, routes, Docker networks and containers,
and every container's address and MAC, compared after one and after the other; its stack
output lists every container's address."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.observe import LabStack, container_facts, destroyed_after
from vlaninfra.engine import LAB_PASSPHRASE, Engine, project_root

pytestmark = [pytest.mark.lab, pytest.mark.engine]

_SHIM_KINDS = ("macvlan", "ipvlan")


def _applied(stack: LabStack) -> dict[str, Any]:
    """The hosts' state, a shim's kernel-chosen MAC left out, plus each container's facts."""
    state = stack.state()
    for host in state.values():
        shims = {n for n, kind, *_ in host["links"] if kind in _SHIM_KINDS}
        host["links"] = [(n, kind, None if n in shims else mac, *rest)
                         for n, kind, mac, *rest in host["links"]]
        # A shim's IPv6 link-local address follows its MAC.
        host["addresses"] = [(n, a) for n, a in host["addresses"]
                             if not (n in shims and a.startswith("fe80:"))]
        host["routes"] = [r for r in host["routes"] if not _link_local_of(json.loads(r), shims)]
    facts = {f"{h.name}/{c}": {k: v for k, v in container_facts(h, c).items() if k != "id"}
             for h in stack.hosts for c in state[h.name]["containers"]}
    return {"hosts": state, "containers": facts}


def _link_local_of(route: dict[str, Any], shims: set[str]) -> bool:
    """The local route of a shim's own IPv6 link-local address."""
    return route.get("dev") in shims and str(route.get("dst", "")).startswith("fe80:") \
        and "/" not in str(route.get("dst"))


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """What differs, item by item: ``host key: only typed [...] only yaml [...]``."""
    out = []
    for host in sorted(set(a["hosts"]) | set(b["hosts"])):
        for key in sorted(set(a["hosts"].get(host, {})) | set(b["hosts"].get(host, {}))):
            x, y = a["hosts"].get(host, {}).get(key, []), b["hosts"].get(host, {}).get(key, [])
            if x != y:
                out.append(f"{host} {key}: only typed {[i for i in x if i not in y]} "
                           f"only yaml {[i for i in y if i not in x]}")
    if a["containers"] != b["containers"]:
        out.append(f"containers: typed {a['containers']} yaml {b['containers']}")
    return out


def test_the_typed_program_lays_what_the_yaml_stack_lays(lab_stack: LabStack,
                                                          tmp_path: Path) -> None:
    lab_stack.run("up", "--yes", "--skip-preview")
    try:
        from_yaml = _applied(lab_stack)
    finally:
        lab_stack.run("destroy", "--yes", "--skip-preview")
    assert from_yaml["containers"], "the YAML stack laid no container"

    project = tmp_path / "typed"
    shutil.copytree(project_root() / "examples" / "typed", project)
    engine = Engine(project_root(), backend=tmp_path / "backend", passphrase=LAB_PASSPHRASE)
    engine.ensure_stack("lab", cwd=project)
    with destroyed_after(engine, "lab", project):
        engine.run("lab", "up", "--yes", "--skip-preview", cwd=project)
        typed = _applied(lab_stack)
        assert typed == from_yaml, _differences(typed, from_yaml)
        engine.run("lab", "preview", "--expect-no-changes", cwd=project)
        out = json.loads(engine.run("lab", "stack", "output", "a", "--json", cwd=project))
        assert {k: {"ip": c["ipv4"], "mac": c["mac"]} for k, c in out["containers"].items()
                } == from_yaml["containers"]
