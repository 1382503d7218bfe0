"""Observing VM lab hosts, VLAN peers, the lab router and switch without vlaninfra's own code:
`ssh` with the lab key into the guests, `ip`/`bridge` in the lab's namespaces; and scratch
stacks pointed at one lab instance (`VLANINFRA_LAB_INSTANCE`)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.observe import LabStack, sh
from vlaninfra.engine import LAB_PASSPHRASE, Engine, project_root
from vlaninfra.lab import LAB_INSTANCE_ENV, Inventory

_SETTLE = (
    "for i in $(seq 50); do [ -z \"$(ip -6 addr show tentative)\" ] && break; sleep 0.2; done"
)


def ssh(inv: Inventory, address: str, script: str, *, check: bool = True) -> str:
    """Runs `script` as root on the guest at management `address` (pinned host key)."""
    argv = [
        "ssh", "-i", inv.key_path, "-o", f"UserKnownHostsFile={inv.known_hosts}",
        "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
        f"root@{address}", script,
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"ssh {address} {script!r}: exit {proc.returncode}: {proc.stderr}")
    return proc.stdout


def ok(inv: Inventory, address: str, script: str) -> bool:
    """Whether `script` succeeds on the guest."""
    return bool(ssh(inv, address, f"{script} >/dev/null 2>&1 && echo yes", check=False).strip())


def vm_state(inv: Inventory, address: str) -> dict[str, Any]:
    """Links, addresses, routes, docker networks and containers of a VM host, comparable
    before and after (indexes and counters left out)."""
    out = ssh(inv, address, (
        f"{_SETTLE}; ip -j -d link show; echo @@; ip -j addr show; echo @@; "
        "ip -4 -j route show table all; echo @@; ip -6 -j route show table all; echo @@; "
        "docker network ls --format '{{.Name}} {{.Driver}}' | sort; echo @@; "
        "docker ps -a --format '{{.Names}}' | sort"
    ))
    links, addrs, r4, r6, nets, ctrs = out.split("@@\n")
    return {
        "links": sorted(
            (x["ifname"], x.get("linkinfo", {}).get("info_kind"), x.get("address"),
             x.get("mtu"), tuple(x.get("flags", [])))
            for x in json.loads(links)
        ),
        "addresses": sorted(
            (a["ifname"], f"{i['local']}/{i['prefixlen']}")
            for a in json.loads(addrs) for i in a.get("addr_info", [])
        ),
        "routes": sorted(json.dumps(r, sort_keys=True) for r in json.loads(r4) + json.loads(r6)),
        "networks": nets.split(),
        "containers": ctrs.split(),
    }


def router_routes(netns: str, family: str = "-4") -> list[str]:
    """The router's main-table routes of `family` (``-4``/``-6``), one JSON line each."""
    out = json.loads(sh("ip", "-n", netns, family, "-j", "route", "show") or "[]")
    return sorted(json.dumps(r, sort_keys=True) for r in out)


def static_routes(netns: str, family: str = "-4") -> dict[str, str]:
    """The router's routes vlaninfra added (`proto 57`) of `family`: prefix → next hop."""
    out = json.loads(sh("ip", "-n", netns, family, "-j", "route", "show", "proto", "57") or "[]")
    return {r["dst"]: r.get("gateway", "") for r in out}


def learnt_macs(switch_netns: str, port: str) -> set[str]:
    """MACs the lab switch's bridge learnt on `port` (its own permanent entries left out)."""
    out = json.loads(sh("bridge", "-n", switch_netns, "-j", "fdb", "show", "br", "br0") or "[]")
    return {
        e["mac"] for e in out
        if e.get("ifname") == port and "permanent" not in (e.get("state") or "")
        and not e.get("vlan")
    }  # fmt: skip


def localize(text: str, inv: Inventory) -> str:
    """A lab stack file written for the default instance's site a (198.51.100.0/24), moved onto
    `inv`'s LAN: the stack carries the addresses of the instance the test brought up."""
    prefix = inv.sites[0].lan.split("/")[0].rsplit(".", 1)[0] + "."
    return text.replace("198.51.100.", prefix)


VM_DOCKER_DEADLINE = os.environ.get("VLANINFRA_DOCKER_DEADLINE") or "360"
"""`VLANINFRA_DOCKER_DEADLINE` of the VM stacks: a `docker run` in a one-vCPU TCG guest takes
4-7 s alone, and ten vlaninfra creates at once took over 120 s each (the default deadline) on
a slower 2-core host."""


def vm_stack(inv: Inventory, work: Path, name: str, sites: dict[str, Any]) -> LabStack:
    """A scratch project + backend running vlaninfra's program against lab instance `inv`,
    with Docker deadlines that fit an emulated host (`VM_DOCKER_DEADLINE`)."""
    project = work / "project"
    project.mkdir(parents=True)
    (project / "Pulumi.yaml").write_text("name: vlaninfra\nruntime: python\n")
    (project / "__main__.py").write_text("from vlaninfra.program import run\n\nrun()\n")
    stack = LabStack(
        engine=Engine(
            project_root(), backend=work / "backend", passphrase=LAB_PASSPHRASE,
            extra_env={LAB_INSTANCE_ENV: inv.instance,
                       "VLANINFRA_DOCKER_DEADLINE": VM_DOCKER_DEADLINE},
        ),
        project=project,
        name=name,
        inventory=inv,
        base_sites=sites,
    )
    stack.write(stack.base_sites)
    stack.engine.ensure_stack(stack.name, cwd=project)
    return stack


def stack_file_sites(name: str, inv: Inventory) -> dict[str, Any]:
    """`stacks/Pulumi.<name>.yaml`'s sites, moved onto `inv`'s LAN."""
    text = (project_root() / "stacks" / f"Pulumi.{name}.yaml").read_text()
    sites: dict[str, Any] = yaml.safe_load(localize(text, inv))["config"]["vlaninfra:sites"]
    return sites
