"""What each macvlan mode allows, measured on the lab with vlaninfra's own ops.

One test per mode (bridge, private, vepa, passthru): a network made by ``docker.network.create``
with ``macvlan_mode`` (the option the Network provider passes), containers made by
``docker.container.create`` and a shim made by ``shim.ensure`` in bridge mode (the plan makes
every macvlan shim so), on a namespace host of the shared lab. Reachability is measured in
one ``probe.run`` per case (container to container, host to container through the shim,
container to the LAN peer) plus a ping from the LAN peer. The lab's LAN switch is a Linux
bridge: vepa sends container-to-container frames out to it, so they come back only when the
switch port reflects them (hairpin); each vepa and private case is measured both ways.

These rows are the README's mode table.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.lab.lab_helpers import in_netns
from tests.typed_calls import call
from vlaninfra.host.contract import (
    NETWORK_CREATE,
    Driver,
    IpamPool,
    MacvlanMode,
    NetworkCreate,
    NetworkSpec,
    run,
)
from vlaninfra.lab import Host as LabHost
from vlaninfra.lab import Inventory
from vlaninfra.transport import Agent, HostError, LocalTarget, agent_for, close_all

pytestmark = pytest.mark.lab

NET = "modes"
SHIM = "shim-modes"
BLOCKED_WITHIN = 3.0
"""Seconds a check that should fail is given (pings retry until then); answers come in ms."""


@dataclass
class Bed:
    agent: Agent
    host: LabHost
    switch_netns: str
    peer_netns: str
    peer: str
    gateway: str
    lan: ipaddress.IPv4Network

    def at(self, n: int) -> str:
        """An address of the site LAN by offset: containers at .200+, the shim at .250."""
        return str(self.lan.network_address + n)


@pytest.fixture(scope="module")
def bed(lab: Inventory) -> Iterator[Bed]:
    site = lab.sites[0]
    host = next(h for h in site.hosts if not h.is_vm)
    agent = agent_for(LocalTarget(netns=host.netns, docker_socket=host.docker_socket))
    try:
        yield Bed(agent, host, site.peer.netns.rsplit("-", 1)[0] + "-sw", site.peer.netns,
                  site.peer.address.split("/")[0], site.gateway,
                  ipaddress.IPv4Network(site.lan))
    finally:
        close_all()


@contextlib.contextmanager
def _mode(bed: Bed, mode: str, containers: int, shim: bool) -> Iterator[list[str]]:
    """The network in ``mode`` with ``containers`` containers (c1, c2 …) and maybe a shim;
    everything removed afterwards, also on failure."""
    names = [f"mode-c{i + 1}" for i in range(containers)]
    try:
        made = run(bed.agent, NETWORK_CREATE, NetworkCreate(NetworkSpec(
            NET, Driver.MACVLAN, bed.host.parent, MacvlanMode(mode),
            ipam=(IpamPool(str(bed.lan), bed.gateway, aux_addresses={"shim": bed.at(250)}),))))
        assert made.mode == mode  # read back from the driver's option
        for i, name in enumerate(names):
            call(bed.agent, "docker.container.create", name=name, image=bed.host.image,
                           command=["/bin/sleep", "3600"], network=NET, ipv4=bed.at(200 + i))
        if shim:
            routes = [f"{bed.at(200 + i)}/32" for i in range(containers)]
            # The plan makes every macvlan shim in bridge mode, whatever the network's mode.
            call(bed.agent, "shim.ensure", name=SHIM, parent=bed.host.parent, kind="macvlan",
                           mode="bridge", address=f"{bed.at(250)}/32", routes=routes)
        yield names
    finally:
        _hairpin(bed, False)
        with contextlib.suppress(HostError):
            call(bed.agent, "shim.delete", name=SHIM)
        for name in [*names, "mode-c9"]:
            with contextlib.suppress(HostError):
                call(bed.agent, "docker.container.remove", name=name)
        bed.agent.call("docker.network.remove", name=NET)
        assert bed.agent.call("link.exists", name=SHIM) is False


def _hairpin(bed: Bed, on: bool) -> None:
    r = in_netns(bed.switch_netns, "ip", "link", "set", "dev", bed.host.name, "type",
                 "bridge_slave", "hairpin", "on" if on else "off")
    assert r.returncode == 0, r.stderr


def _measure(bed: Bed, names: list[str], shim: bool) -> dict[str, bool]:
    """Which paths answer: c1 -> c2, host -> c1 (through the shim), c1 -> LAN peer,
    LAN peer -> c1."""
    checks: list[tuple[str, dict[str, Any]]] = [
        ("container-to-lan", {"kind": "exec-ping", "container": names[0], "target": bed.peer})]
    if len(names) > 1:
        checks.append(("container-to-container",
                       {"kind": "exec-ping", "container": names[0], "target": bed.at(201)}))
    if shim:
        checks.append(("host-to-container", {"kind": "ping", "target": bed.at(200)}))
    results = bed.agent.call("probe.run", checks=[c for _, c in checks],
                             timeout=BLOCKED_WITHIN)
    seen = {name: r["ok"] is True for (name, _), r in zip(checks, results, strict=True)}
    peer = in_netns(bed.peer_netns, "ping", "-c", "1", "-W", "1", bed.at(200))
    seen["lan-to-container"] = peer.returncode == 0
    return seen


ALL = {"container-to-lan": True, "lan-to-container": True}


def test_bridge_allows_everything(bed: Bed) -> None:
    with _mode(bed, "bridge", 2, shim=True) as names:
        assert _measure(bed, names, shim=True) == {
            **ALL, "container-to-container": True, "host-to-container": True}


def test_private_blocks_containers_and_shim_even_with_hairpin(bed: Bed) -> None:
    with _mode(bed, "private", 2, shim=True) as names:
        blocked = {**ALL, "container-to-container": False, "host-to-container": False}
        assert _measure(bed, names, shim=True) == blocked
        _hairpin(bed, True)
        assert _measure(bed, names, shim=True) == blocked


def test_vepa_reaches_containers_and_shim_only_through_a_hairpin_switch_port(bed: Bed) -> None:
    with _mode(bed, "vepa", 2, shim=True) as names:
        assert _measure(bed, names, shim=True) == {
            **ALL, "container-to-container": False, "host-to-container": False}
        _hairpin(bed, True)
        assert _measure(bed, names, shim=True) == {
            **ALL, "container-to-container": True, "host-to-container": True}


def test_passthru_holds_one_container_no_shim_and_takes_the_nic_from_the_host(bed: Bed) -> None:
    host_lan = bed.host.lan_address.split("/")[0]
    with _mode(bed, "passthru", 1, shim=False) as names:
        assert _measure(bed, names, shim=False) == ALL
        mac = bed.agent.call("docker.container.inspect", name=names[0])["networks"][NET]["mac"]
        link = in_netns(bed.host.netns, "ip", "link", "show", bed.host.parent).stdout
        assert mac in link, f"passthru left the parent its own MAC: {link}"
        with pytest.raises(HostError) as second:
            call(bed.agent, "docker.container.create", name="mode-c9", image=bed.host.image,
                           command=["/bin/sleep", "3600"], network=NET, ipv4=bed.at(209))
        assert "invalid argument" in second.value.message  # the kernel's EINVAL via Docker
        with pytest.raises(HostError) as shim:
            call(bed.agent, "shim.ensure", name=SHIM, parent=bed.host.parent, kind="macvlan",
                           mode="bridge", address=f"{bed.at(250)}/32")
        assert shim.value.errno == errno.EINVAL, shim.value
        peer = in_netns(bed.peer_netns, "ping", "-c", "1", "-W", "1", host_lan)
        assert peer.returncode != 0, "the host's own address answered beside a passthru link"
    # passthru gave the container's MAC to the parent itself, so the LAN peer may hold the
    # host's own address at that MAC for a while (or may already have re-learnt it: the
    # kernel re-resolves a stale entry on its own timing, so either is seen here); once the
    # network is gone the host has its NIC and MAC back, and answers again as soon as the
    # peer's stale ARP entry goes (here: flushed).
    in_netns(bed.peer_netns, "ip", "neigh", "flush", host_lan)
    assert in_netns(bed.peer_netns, "ping", "-c", "1", "-W", "2", host_lan).returncode == 0
