"""Observing lab hosts without vlaninfra's own code: `ip` and the docker CLI, run in the lab's
namespaces; and driving the engine for one scratch stack."""

from __future__ import annotations

import contextlib
import copy
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vlaninfra.engine import Engine, EngineError
from vlaninfra.lab import Host, Inventory


def sh(*argv: str, check: bool = True) -> str:
    return subprocess.run(argv, check=check, capture_output=True, text=True).stdout


def destroy_at_teardown(engine: Engine, stack: str, cwd: Path, *, check: bool = True) -> None:
    """Destroys `stack` at the end of its fixture or test; when that fails (a test left a host
    drifted or the state torn), a refresh re-reads the hosts and a second destroy runs, so the
    next module or class does not meet this one's objects. A second failure raises (a teardown
    error naming the stack), never a silent leftover; ``check`` False: not (a test's body
    failed already, and its failure is the one to report)."""
    destroy = ("destroy", "--yes", "--skip-preview")
    try:
        engine.run(stack, *destroy, cwd=cwd)
    except EngineError:
        engine.run(stack, "refresh", "--yes", "--skip-preview", check=False, cwd=cwd)
        engine.run(stack, *destroy, check=check, cwd=cwd)


@contextlib.contextmanager
def destroyed_after(engine: Engine, stack: str, cwd: Path) -> Iterator[None]:
    """Destroys `stack` after the block (:func:`destroy_at_teardown`); when the block failed,
    its failure is the one reported, not a failing teardown's."""
    try:
        yield
    except BaseException:
        destroy_at_teardown(engine, stack, cwd, check=False)
        raise
    destroy_at_teardown(engine, stack, cwd)


def ip_json(netns: str, *args: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = json.loads(sh("ip", "-n", netns, "-j", *args) or "[]")
    return out


def docker(host: Host, *args: str, check: bool = True) -> str:
    return sh("docker", "-H", f"unix://{host.docker_socket}", *args, check=check)


def settle(host: Host, timeout: float = 10.0) -> None:
    """Waits until the kernel has finished IPv6 duplicate address detection on `host`: until then
    link-local addresses are tentative and their local routes are still to come."""
    deadline = time.monotonic() + timeout
    while sh("ip", "-n", host.netns, "-6", "addr", "show", "tentative").strip():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{host.netns}: IPv6 addresses still tentative after {timeout}s")
        time.sleep(0.2)


def host_state(host: Host) -> dict[str, Any]:
    """Links, addresses, routes, docker networks and containers of one lab host, in a form that
    compares equal when nothing changed (indexes and counters left out)."""
    settle(host)
    links = sorted(
        (
            link["ifname"],
            link.get("linkinfo", {}).get("info_kind"),
            link.get("address"),
            link.get("mtu"),
            tuple(link.get("flags", [])),
        )
        for link in ip_json(host.netns, "-d", "link", "show")
    )
    addrs = sorted(
        (a["ifname"], f"{i['local']}/{i['prefixlen']}")
        for a in ip_json(host.netns, "addr", "show")
        for i in a.get("addr_info", [])
    )
    routes = sorted(
        json.dumps(r, sort_keys=True)
        for family in ("-4", "-6")
        for r in ip_json(host.netns, family, "route", "show", "table", "all")
    )
    networks = sorted(
        docker(host, "network", "ls", "--format", "{{.Name}} {{.Driver}}").split("\n")
    )
    containers = sorted(docker(host, "ps", "-a", "--format", "{{.Names}}").split())
    return {
        "links": links,
        "addresses": addrs,
        "routes": routes,
        "networks": networks,
        "containers": containers,
    }


def ssh_logins(host: Host) -> int:
    """Accepted SSH logins on `host` so far, from its sshd's own log."""
    try:
        return Path(host.sshd_log).read_text().count("Accepted publickey")
    except FileNotFoundError:
        return 0


def container_facts(host: Host, name: str) -> dict[str, Any]:
    """Id, IP and MAC of container `name` (empty if it does not exist)."""
    out = docker(host, "inspect", name, check=False)
    docs = json.loads(out or "[]")
    if not docs:
        return {}
    nets = docs[0]["NetworkSettings"]["Networks"]
    net = next(iter(nets.values()))
    return {"id": docs[0]["Id"], "ip": net["IPAddress"], "mac": net["MacAddress"]}


@dataclass
class LabStack:
    """One scratch stack running the `lab` stack's program on the lab."""

    engine: Engine
    project: Path
    name: str
    inventory: Inventory
    base_sites: dict[str, Any]

    @property
    def hosts(self) -> list[Host]:
        return [h for s in self.inventory.sites for h in s.hosts]

    @property
    def peer_netns(self) -> str:
        return self.inventory.sites[0].peer.netns

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    def sites(self) -> dict[str, Any]:
        """A deep copy of the base layout, to modify and `write`."""
        return copy.deepcopy(self.base_sites)

    def write(self, sites: dict[str, Any]) -> None:
        doc = {"config": {"vlaninfra:sites": sites}}
        (self.project / f"Pulumi.{self.name}.yaml").write_text(yaml.safe_dump(doc))

    def changes(self, *args: str) -> dict[str, int]:
        return self.engine.changes(self.name, *args, cwd=self.project)

    def run(self, *args: str, check: bool = True) -> str:
        return self.engine.run(self.name, *args, check=check, cwd=self.project)

    def state(self) -> dict[str, Any]:
        return {h.name: host_state(h) for h in self.hosts}

    def logins(self) -> dict[str, int]:
        return {h.name: ssh_logins(h) for h in self.hosts}
