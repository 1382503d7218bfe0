"""`vlaninfra graph`: the DOT, read back by Graphviz itself (`dot -Tjson0`), has a node per
host, network and container and an edge per attachment, for every recipe stack and a
generated 3-host, 60-container layout; SVG and PNG files are written."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.unit.diff.cases import big_layout, stack_config
from vlaninfra.cli_review import write_graph
from vlaninfra.errors import VlanInfraError
from vlaninfra.layout import Plan, load_config, plan
from vlaninfra.review import render_dot

STACKS = ("lab", "lab-dualstack", "lab-ipvlan", "lab-vlan", "static-pool", "ipvlan-l2", "ipvlan-l3",
          "macvlan-shim")


def _dot() -> str:
    exe = shutil.which("dot")
    if exe is None:
        pytest.fail("Graphviz is not installed: run tools/setup.sh")
    return exe


def graphviz_view(dot: str) -> tuple[set[str], set[tuple[str, str]]]:
    """(node names, (tail, head) edges) as Graphviz parsed them."""
    done = subprocess.run([_dot(), "-Tjson0"], input=dot, text=True, capture_output=True,
                          check=True, timeout=60)
    data: dict[str, Any] = json.loads(done.stdout)
    objects = data.get("objects", [])
    nodes = {o["name"] for o in objects if "nodes" not in o and "subgraphs" not in o}
    names = {o["_gvid"]: o["name"] for o in objects}
    edges = {(names[e["tail"]], names[e["head"]]) for e in data.get("edges", [])}
    return nodes, edges


def _plans() -> list[tuple[str, Plan]]:
    out = [(s, plan(load_config(stack_config(s)))) for s in STACKS]
    return [*out, ("generated", plan(load_config(big_layout())))]


@pytest.mark.parametrize(("name", "p"), _plans(), ids=[n for n, _ in _plans()])
def test_a_node_per_object_and_an_edge_per_attachment(name: str, p: Plan) -> None:
    nodes, edges = graphviz_view(render_dot(p, name))
    for s in p.sites:
        for h in s.hosts:
            assert f"host:{s.name}/{h.name}" in nodes
            for n in h.networks:
                assert f"net:{s.name}/{h.name}/{n.name}" in nodes
                assert (f"nic:{s.name}/{h.name}/{n.parent}",
                        f"net:{s.name}/{h.name}/{n.name}") in edges
            for c in h.containers:
                assert f"ctr:{s.name}/{h.name}/{c.name}" in nodes
                assert (f"net:{s.name}/{h.name}/{c.network}",
                        f"ctr:{s.name}/{h.name}/{c.name}") in edges
            for x in h.shims:
                assert (f"nic:{s.name}/{h.name}/{x.parent}", f"shim:{s.name}/{h.name}/{x.name}"
                        ) in edges
            for v in h.vlan_parents:
                assert (f"nic:{s.name}/{h.name}/{v.trunk}", f"nic:{s.name}/{h.name}/{v.name}"
                        ) in edges
        for r in s.upstream_routes:
            assert any(e[1] == f"net:{s.name}/{r.host}/{r.network}" and e[0].startswith("router:")
                       for e in edges)
    containers = sum(len(h.containers) for s in p.sites for h in s.hosts)
    assert sum(1 for n in nodes if n.startswith("ctr:")) == containers


def test_generated_layout_is_three_hosts_sixty_containers() -> None:
    p = plan(load_config(big_layout()))
    assert sum(len(s.hosts) for s in p.sites) == 3
    assert sum(len(h.containers) for s in p.sites for h in s.hosts) == 60


@pytest.mark.parametrize("suffix", ["svg", "png", "dot"])
def test_files_are_written(tmp_path: Path, suffix: str) -> None:
    _dot()
    path = tmp_path / f"lab.{suffix}"
    write_graph(render_dot(plan(load_config(stack_config("lab"))), "stack lab"), path)
    head = path.read_bytes()[:8]
    assert {"svg": b"<?xml", "png": b"\x89PNG", "dot": b"digraph"}[suffix] in head or \
        (suffix == "svg" and b"<svg" in path.read_bytes()[:400])


def test_unknown_suffix_is_refused(tmp_path: Path) -> None:
    with pytest.raises(VlanInfraError, match=r"\.svg, \.png or \.dot"):
        write_graph("digraph {}", tmp_path / "x.jpg")


def test_a_missing_directory_is_named_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(VlanInfraError, match=r"the directory .*missing does not exist"):
        write_graph("digraph {}", tmp_path / "missing" / "x.dot")
