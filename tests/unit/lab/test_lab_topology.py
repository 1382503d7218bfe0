"""Names and addresses of lab instances (pure; no root needed)."""

from __future__ import annotations

import ipaddress

import pytest

from vlaninfra.lab import LabError
from vlaninfra.lab._topology import (
    MAX_HOSTS,
    MAX_HOSTS_2_SITES,
    MAX_SITES,
    NS_RE,
    instance_of,
    plan,
)

ALLOWED = [
    ipaddress.ip_network(n)
    for n in ("198.51.100.0/24", "203.0.113.0/24", "198.18.0.0/15")  # not 192.0.2.0/24: eth0
]
BIGGEST = [("default", 0), ("abc", 1), ("t2", 2), ("9", 3)]


def _addresses(instance: str, slot: int) -> list[str]:
    p = plan(instance, slot, sites=MAX_SITES, hosts=MAX_HOSTS_2_SITES)
    out = []
    for s in p.sites:
        out += [s.lan, s.gateway]
        for node in (s.router, s.peer, *s.hosts):
            out.append(node.lan_address)
            out += [a for a in (node.mgmt_address, node.mgmt_root_address) if a]
        if s.wan:
            out += [s.wan.address, s.wan.remote, s.wan.remote_lan]
    return out


def test_default_instance_matches_the_documented_site() -> None:
    p = plan("default", 0)
    (a,) = p.sites
    assert (a.lan, a.gateway, a.switch_netns) == ("198.51.100.0/24", "198.51.100.1", "vl-a-sw")
    assert (a.router.netns, a.router.lan_address) == ("vl-a-gw", "198.51.100.1/24")
    assert (a.peer.netns, a.peer.lan_address, a.peer.gateway) == (
        "vl-a-peer",
        "198.51.100.2/24",
        "198.51.100.1",
    )
    assert [(h.netns, h.lan_address) for h in a.hosts] == [
        ("vl-a-h1", "198.51.100.11/24"),
        ("vl-a-h2", "198.51.100.12/24"),
    ]
    assert plan("default", 0, sites=2).sites[1].lan == "198.19.1.0/24"


@pytest.mark.parametrize(("instance", "slot"), BIGGEST)
def test_every_address_is_in_a_reserved_range(instance: str, slot: int) -> None:
    for a in _addresses(instance, slot):
        net = ipaddress.ip_network(a, strict=False)
        assert any(net.subnet_of(r) for r in ALLOWED), a  # type: ignore[arg-type]


def test_instances_never_share_a_name_or_a_management_address() -> None:
    names: set[str] = set()
    mgmt: set[str] = set()
    for instance, slot in BIGGEST:
        p = plan(instance, slot, sites=MAX_SITES, hosts=MAX_HOSTS_2_SITES)
        mine = set(p.namespaces)
        assert not names & mine
        names |= mine
        addrs = {str(a) for n in p.mgmt_nodes for a in (n.mgmt_address, n.mgmt_root_address) if a}
        assert len(addrs) == 2 * len(p.mgmt_nodes)
        assert not mgmt & addrs
        mgmt |= addrs


@pytest.mark.parametrize(("instance", "slot"), BIGGEST)
def test_names_fit_interfaces_and_are_recognised(instance: str, slot: int) -> None:
    for ns in plan(instance, slot, sites=MAX_SITES, hosts=MAX_HOSTS_2_SITES).namespaces:
        assert len(ns.encode()) <= 15  # root-namespace links carry the namespace name
        assert NS_RE.match(ns)
        assert instance_of(ns) == instance


def test_foreign_names_are_not_lab_names() -> None:
    for name in ("eth0", "vl-a", "vlan50", "vl-a-h1x", "vlabcd-a-h1", "docker0", "vl-a-sw0"):
        assert instance_of(name) is None


@pytest.mark.parametrize("bad", ["", "Default", "toolong", "a-b", "../x", "T1"])
def test_bad_instance_names_are_refused(bad: str) -> None:
    with pytest.raises(LabError, match="instance name"):
        plan(bad, 1)


def test_management_stays_in_the_lower_half_of_its_range() -> None:
    # 203.0.113.128/25 belongs to other fixtures (agent tests, VM hosts).
    lower = ipaddress.ip_network("203.0.113.0/25")
    for instance, slot in BIGGEST:
        for sites, hosts in ((1, MAX_HOSTS), (MAX_SITES, MAX_HOSTS_2_SITES)):
            for node in plan(instance, slot, sites=sites, hosts=hosts).mgmt_nodes:
                for a in (node.mgmt_address, node.mgmt_root_address):
                    assert ipaddress.ip_address(str(a)) in lower
    one = plan("default", 0, sites=1, hosts=MAX_HOSTS)
    two = plan("default", 0, sites=2, hosts=2)
    assert one.sites[0].hosts[0].mgmt_address == two.sites[0].hosts[0].mgmt_address


def test_bad_counts_are_refused() -> None:
    with pytest.raises(LabError, match="--hosts"):
        plan("default", 0, hosts=0)
    with pytest.raises(LabError, match="--hosts"):
        plan("default", 0, sites=2, hosts=MAX_HOSTS_2_SITES + 1)
    with pytest.raises(LabError, match="--sites"):
        plan("default", 0, sites=3)
