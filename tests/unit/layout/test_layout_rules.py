"""Every validation rule, each with its exact path and message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.unit.layout.layout_helpers import (
    Config,
    config,
    errors_of,
    plan_of,
    site,
    warnings_of,
)

S = "sites.paris"
NET0 = f"{S}.networks[0]"


def _net(**over: Any) -> dict[str, Any]:
    net: dict[str, Any] = {"name": "n2", "driver": "macvlan", "parent": "eth0",
                           "hosts": ["h1"], "subnets": [{"subnet": "198.51.100.0/24"}]}
    net.update(over)
    return {k: v for k, v in net.items() if v is not None}


def _ctr(**over: Any) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "c2", "host": "h1", "network": "pub_net", "image": "i"}
    c.update(over)
    return c


def _edit(fn: Callable[[Config], object]) -> Config:
    s = site()
    fn(s)
    return config(paris=s)


def test_base_config_is_clean() -> None:
    assert errors_of(config()) == []
    assert warnings_of(config()) == []


# -- addresses and ranges inside their subnet ------------------------------------------

CASES: list[tuple[str, Callable[[Config], object], list[tuple[str, str]]]] = [
    ("container ipv4 outside subnet",
     lambda s: s["containers"][0].update(ipv4="198.51.100.5"),
     [(f"{S}.containers[0].ipv4",
       "outside the subnets of network pub_net on host h1 (192.0.2.0/24)")]),
    ("container ipv4 is the broadcast address",
     lambda s: s["containers"][0].update(ipv4="192.0.2.255"),
     [(f"{S}.containers[0].ipv4",
       "the network or broadcast address of 192.0.2.0/24 is not a host address")]),
    ("ipv6 on a network without IPv6",
     lambda s: s["containers"][0].update(ipv6="2001:db8::5"),
     [(f"{S}.containers[0].ipv6",
       "outside the subnets of network pub_net on host h1 (none)")]),
    ("ip_range outside subnet",
     lambda s: s["networks"][0]["subnets"][0].update(ip_range="198.51.100.0/26"),
     [(f"{NET0}.subnets[0].ip_range",
       "the ip_range is outside the subnet 192.0.2.0/24: use a range inside it")]),
    ("gateway outside subnet",
     lambda s: s["networks"][0]["subnets"][0].update(gateway="198.51.100.1"),
     [(f"{NET0}.subnets[0].gateway",
       "the gateway is outside the subnet 192.0.2.0/24: use an address in it")]),
    ("gateway is the broadcast address",
     lambda s: s["networks"][0]["subnets"][0].update(gateway="192.0.2.255"),
     [(f"{NET0}.subnets[0].gateway",
       "the network or broadcast address of 192.0.2.0/24 cannot be the gateway")]),
    ("aux outside subnet",
     lambda s: s["networks"][0]["subnets"][0].update(aux_addresses={"nas": "198.51.100.9"}),
     [(f"{NET0}.subnets[0].aux_addresses.nas",
       "the aux address is outside the subnet 192.0.2.0/24: use an address in it")]),
    ("aux is the gateway",
     lambda s: s["networks"][0]["subnets"][0].update(aux_addresses={"nas": "192.0.2.1"}),
     [(f"{NET0}.subnets[0].aux_addresses.nas",
       "already taken by the gateway of site paris's LAN: choose a free address")]),
    ("aux is the network address",
     lambda s: s["networks"][0]["subnets"][0].update(aux_addresses={"nas": "192.0.2.0"}),
     [(f"{NET0}.subnets[0].aux_addresses.nas",
       "the network or broadcast address of 192.0.2.0/24 cannot be an aux address")]),
    ("subnet too small",
     lambda s: s["networks"].append(_net(parent="eth0.50",
                                         subnets=[{"subnet": "198.51.100.0/31"}])),
     [(f"{S}.networks[1].subnets[0].subnet",
       "too small for a gateway and a container: use a /30 (IPv6 /126) or larger")]),
    ("LAN gateway outside LAN",
     lambda s: s["lan"].update(gateway="198.51.100.1"),
     [(f"{S}.lan.gateway",
       "the gateway is outside the LAN subnet 192.0.2.0/24: use an address in it")]),
    ("DHCP pool outside LAN",
     lambda s: s["lan"].update(dhcp_pool="192.0.2.250-192.0.3.10"),
     [(f"{S}.lan.dhcp_pool",
       "the DHCP pool is outside the LAN subnet 192.0.2.0/24: use addresses in it")]),
    ("router outside LAN",
     lambda s: s["routers"].append({"name": "r2", "address": "198.51.100.1"}),
     [(f"{S}.routers[1].address",
       "the router is outside the LAN subnet 192.0.2.0/24: use its LAN address")]),
    ("host LAN address outside LAN",
     lambda s: s["hosts"][0].update(lan_address="198.51.100.11"),
     [(f"{S}.hosts[0].lan_address",
       "outside the LAN subnet 192.0.2.0/24: use the host's address on it")]),
    # -- overlapping subnets across tenants, LANs and sites ------------------------------
    ("network overlapping its LAN without being it",
     lambda s: s.update(networks=[_net(subnets=[{"subnet": "192.0.2.0/25"}])], containers=[]),
     [(f"{NET0}.subnets[0].subnet",
       "overlaps the LAN of site paris (192.0.2.0/24 at sites.paris.lan.subnet): every tenant, "
       "LAN, network and site needs its own addresses")]),
    ("two networks overlapping on different hosts",
     lambda s: (s["networks"][0].update(hosts=["h1"]), s["networks"].append(
         _net(hosts=["h2"], subnets=[{"subnet": "192.0.2.0/24"}]))),
     [(f"{S}.networks[1].subnets[0].subnet",
       "overlaps network pub_net (192.0.2.0/24 at sites.paris.networks[0].subnets[0].subnet): "
       "every tenant, LAN, network and site needs its own addresses")]),
    # -- the same subnet on two parents of one host ---------------------------------------
    ("same subnet on two parents",
     lambda s: (s["hosts"][0].update(parents=["eth0", "eth1"]),
                s["networks"].append(_net(parent="eth1", subnets=[{"subnet": "192.0.2.0/24"}]))),
     [(f"{S}.networks[1].subnets[0].subnet",
       "the same subnet on two parents of host h1 (eth0 for network pub_net, eth1 for network "
       "n2): Docker rejects it; use one network")]),
    # -- passthru ---------------------------------------------------------------------------
    ("passthru parent used by another network",
     lambda s: (s["networks"][0].update(mode="passthru"), s["networks"].append(_net())),
     [(f"{S}.networks[1].parent",
       "macvlan passthru gives the whole parent eth0 to network pub_net; network n2 cannot "
       "use it too on host h1: give it another parent")]),
    ("passthru with a shim",
     lambda s: s["networks"][0].update(mode="passthru", shim={
         "address_per_host": {"h1": "192.0.2.250"}}),
     [(f"{NET0}.shim",
       "macvlan passthru gives the whole parent to one container: drop the shim or use "
       "mode bridge")]),
    ("passthru with two containers on one host",
     lambda s: (s["networks"][0].update(mode="passthru"), s["containers"].append(_ctr())),
     [(f"{S}.containers[1].network",
       "macvlan passthru holds one container per host; web1 already uses pub_net on h1")]),
    ("passthru parent that is also a trunk",
     lambda s: (s["networks"][0].update(mode="passthru"),
                s["networks"].append(_net(parent="eth0.50"))),
     [(f"{NET0}.parent",
       "macvlan passthru gives the whole parent eth0 to network pub_net; on host h1 it is "
       "also the trunk of eth0.50: give one of them another parent")]),
    # -- one macvlan/ipvlan network per parent ------------------------------------------
    ("two macvlan networks on one parent, version unknown",
     lambda s: s["networks"].append(_net()),
     [(f"{S}.networks[1].parent",
       "network n2 and network pub_net both use parent eth0 on host h1; Docker 20.10 "
       "(assumed: sites.paris.hosts[0].docker_version is not set) allows one macvlan network "
       "per parent (Docker 27 and later allow it for macvlan): carry both subnets in one "
       "network, or give each its own 802.1Q parent such as eth0.50")]),
    ("two macvlan networks on one parent, Docker 20.10",
     lambda s: (s["hosts"][0].update(docker_version="20.10.24+dfsg1"),
                s["networks"].append(_net())),
     [(f"{S}.networks[1].parent",
       "network n2 and network pub_net both use parent eth0 on host h1; Docker 20.10.24+dfsg1 "
       "allows one macvlan network per parent (Docker 27 and later allow it for macvlan): "
       "carry both subnets in one network, or give each its own 802.1Q parent such as "
       "eth0.50")]),
    ("two ipvlan networks on one parent, even on Docker 27",
     lambda s: (s["hosts"][0].update(docker_version="27.1.1"), s.update(networks=[
         _net(name="a", driver="ipvlan", mode="l2", subnets=[{"subnet": "198.51.100.0/25"}]),
         _net(name="b", driver="ipvlan", mode="l2",
              subnets=[{"subnet": "198.51.100.128/25"}])], containers=[])),
     [(f"{S}.networks[1].parent",
       "network b and network a both use parent eth0 on host h1; Docker 27.1.1 allows one "
       "ipvlan network per parent: carry both subnets in one network, or give each its own "
       "802.1Q parent such as eth0.50")]),
    ("macvlan and ipvlan on one parent",
     lambda s: (s["hosts"][0].update(docker_version="27.1.1"),
                s["networks"].append(_net(driver="ipvlan"))),
     [(f"{S}.networks[1].parent",
       "the kernel refuses macvlan and ipvlan on one parent: network n2 (ipvlan) and network "
       "pub_net (macvlan) both use eth0 on host h1; give one an 802.1Q parent such as "
       "eth0.50")]),
    # -- VLAN ids ------------------------------------------------------------------------
    ("VLAN id 0", lambda s: s["networks"].append(_net(parent="eth0.0")),
     [(f"{S}.networks[1].parent", "VLAN id 0 is out of range: use 1 to 4094")]),
    ("VLAN id 4095", lambda s: s["networks"].append(_net(parent="eth0.4095")),
     [(f"{S}.networks[1].parent", "VLAN id 4095 is out of range: use 1 to 4094")]),
    ("VLAN id twice on one trunk",
     lambda s: (s["networks"].append(_net(parent="eth0.50")),
                s["networks"].append(_net(name="n3", parent="eth0.050",
                                          subnets=[{"subnet": "203.0.113.0/24"}]))),
     [(f"{S}.networks[2].parent",
       "VLAN 50 on trunk eth0 is already eth0.50: use one name per VLAN")]),
    ("VLAN trunk not a parent of the host",
     lambda s: s["networks"].append(_net(parent="eth1.50")),
     [(f"{S}.networks[1].parent",
       "trunk eth1 of eth1.50 is not a parent of host h1: add it to sites.paris.hosts[0]"
       ".parents")]),
    ("parent not on the host",
     lambda s: s["networks"].append(_net(parent="eth1")),
     [(f"{S}.networks[1].parent",
       "eth1 is not a parent of host h1 (eth0): add it to sites.paris.hosts[0].parents")]),
    # -- shim collisions --------------------------------------------------------------------
    ("shim on a container's address",
     lambda s: s["networks"][0].update(shim={"address_per_host": {"h1": "192.0.2.130"}}),
     [(f"{NET0}.shim.address_per_host.h1",
       "already taken by container web1 on host h1: choose a free address")]),
    ("shim on the gateway",
     lambda s: s["networks"][0].update(shim={"address_per_host": {"h1": "192.0.2.1"}}),
     [(f"{NET0}.shim.address_per_host.h1",
       "already taken by the gateway of site paris's LAN: choose a free address")]),
    ("shim in the DHCP pool",
     lambda s: s["networks"][0].update(shim={"address_per_host": {"h1": "192.0.2.210"}}),
     [(f"{NET0}.shim.address_per_host.h1",
       "already taken by the DHCP pool 192.0.2.200-192.0.2.220 of site paris: choose a free "
       "address")]),
    ("shim on an aux address",
     lambda s: (s["networks"][0]["subnets"][0].update(aux_addresses={"nas": "192.0.2.5"}),
                s["networks"][0].update(shim={"address_per_host": {"h1": "192.0.2.5"}})),
     [(f"{NET0}.shim.address_per_host.h1",
       "already taken by aux address nas of network pub_net: choose a free address")]),
    ("shim outside the subnet",
     lambda s: s["networks"][0].update(shim={"address_per_host": {"h1": "198.51.100.5"}}),
     [(f"{NET0}.shim.address_per_host.h1",
       "the shim address is outside the network's IPv4 subnets (192.0.2.0/24)")]),
    ("shim on a host outside the network",
     lambda s: s["networks"][0].update(hosts=["h1"], shim={"address_per_host": {
         "h2": "192.0.2.250"}}),
     [(f"{NET0}.shim.address_per_host.h2",
       "the host is not in this network's hosts: add it there")]),
    ("shim ip-range routes without an ip_range",
     lambda s: (s["networks"][0]["subnets"][0].pop("ip_range"),
                s["networks"][0].update(shim={"address_per_host": {"h1": "192.0.2.250"},
                                              "routes": "ip-range"})),
     [(f"{NET0}.shim.routes",
       "routes: ip-range needs an ip_range on a subnet: add one or use per-container")]),
    ("shim on a macvlan private network",
     lambda s: s["networks"][0].update(mode="private", shim={"address_per_host": {
         "h1": "192.0.2.250"}}),
     [(f"{NET0}.mode",
       "macvlan private blocks traffic between the shim and the containers: use mode bridge, "
       "or drop the shim")]),
    # -- duplicate names and MACs ----------------------------------------------------------
    ("duplicate host",
     lambda s: s["hosts"].append(dict(s["hosts"][0], lan_address="192.0.2.13")),
     [(f"{S}.hosts[2].name", "duplicate host name; first used at sites.paris.hosts[0].name")]),
    ("duplicate network",
     lambda s: s["networks"].append(_net(name="pub_net", parent="eth0.50")),
     [(f"{S}.networks[1].name",
       "duplicate network name; first used at sites.paris.networks[0].name")]),
    ("duplicate container on one host",
     lambda s: s["containers"].append(_ctr(name="web1")),
     [(f"{S}.containers[1].name",
       "duplicate container (per host) name; first used at sites.paris.containers[0].name")]),
    ("duplicate MAC",
     lambda s: (s["containers"][0].update(mac="02:00:00:00:00:01"),
                s["containers"].append(_ctr(mac="02:00:00:00:00:01"))),
     [(f"{S}.containers[1].mac",
       "duplicate MAC; first used at sites.paris.containers[0].mac")]),
    ("duplicate fixed address",
     lambda s: s["containers"].append(_ctr(ipv4="192.0.2.130", host="h2")),
     [(f"{S}.containers[1].ipv4",
       "already taken by container web1 on host h1: choose a free address")]),
    ("container on a host's LAN address",
     lambda s: s["containers"].append(_ctr(ipv4="192.0.2.12")),
     [(f"{S}.containers[1].ipv4",
       "already taken by the LAN address of host h2: choose a free address")]),
    # -- MAC format and bits ---------------------------------------------------------------
    ("MAC format", lambda s: s["containers"][0].update(mac="02-00-00-00-00-01"),
     [(f"{S}.containers[0].mac", "expected a MAC address like 02:42:c0:00:02:0a")]),
    ("multicast MAC", lambda s: s["containers"][0].update(mac="03:00:00:00:00:01"),
     [(f"{S}.containers[0].mac",
       "multicast MAC (low bit of the first byte set): use a unicast one, e.g. 02:…")]),
    ("MAC on ipvlan",
     lambda s: s.update(networks=[_net(name="pub_net", driver="ipvlan",
                                       subnets=[{"subnet": "192.0.2.0/24"}])],
                        containers=[_ctr(mac="02:00:00:00:00:01")]),
     [(f"{S}.containers[0].mac",
       "ipvlan containers share the parent's MAC: drop mac, or use macvlan")]),
    # -- names within kernel limits ----------------------------------------------------------
    ("parent name of 16 bytes",
     lambda s: s["hosts"][0].update(parents=["eth0", "enp0s31f6abcdefg"]),
     [(f"{S}.hosts[0].parents[1]",
       "interface name is 16 bytes; the kernel allows 15: choose a shorter one")]),
    ("default shim name too long",
     lambda s: (s["networks"][0].update(name="containers_net", shim={
         "address_per_host": {"h1": "192.0.2.250"}}),
                s["containers"][0].update(network="containers_net")),
     [(f"{NET0}.name",
       "interface name is 19 bytes; the kernel allows 15: choose a shorter one (the shim is "
       "named shim-<network>; set shim.name)")]),
    ("interface name with a slash",
     lambda s: s["hosts"][0].update(parents=["eth0", "a/b"]),
     [(f"{S}.hosts[0].parents[1]",
       "not a valid interface name: no '/', ':' or spaces, not '.' or '..'")]),
    ("invalid host name",
     lambda s: (s["hosts"][0].update(name="-h1"), s["networks"][0].update(hosts=["h2"]),
                s.update(containers=[])),
     [(f"{S}.hosts[0].name",
       "not a valid hostname: dot-separated labels of letters, digits and '-', 1 to 63 bytes "
       "each, not starting or ending with '-'")]),
    ("container hostname of 65 bytes",
     lambda s: s["containers"][0].update(hostname="a" * 60 + ".bcde"),
     [(f"{S}.containers[0].hostname",
       "hostname is 65 bytes; the kernel allows 64: choose a shorter one")]),
    ("container name", lambda s: s["containers"][0].update(name="w"),
     [(f"{S}.containers[0].name",
       "not a Docker container name: 2 or more of letters, digits, '_', '.', '-', starting "
       "with a letter or digit")]),
    # -- references and reachability -------------------------------------------------------
    ("ssh required", lambda s: s["hosts"][0].pop("ssh"),
     [(f"{S}.hosts[0].ssh",
       "required: how to reach the host (or set inventory: lab on the site)")]),
    ("unknown network", lambda s: s["containers"][0].update(network="nope"),
     [(f"{S}.containers[0].network", "unknown network; site paris has: pub_net")]),
    ("unknown host", lambda s: s["containers"][0].update(host="h9"),
     [(f"{S}.containers[0].host", "unknown host; site paris has: h1, h2")]),
    ("network not on the container's host",
     lambda s: s["networks"][0].update(hosts=["h2"]),
     [(f"{S}.containers[0].host", "network pub_net is not on host h1: add it to its hosts")]),
    ("network host unknown", lambda s: s["networks"][0].update(hosts=["h1", "h2", "h3"]),
     [(f"{NET0}.hosts[2]", "unknown host; site paris has: h1, h2")]),
    ("network without subnets",
     lambda s: s["networks"].append(_net(parent="eth0.50", subnets=[])),
     [(f"{S}.networks[1].subnets",
       "no subnet on host h1: add subnets (or a tenant subnet), else Docker picks a random "
       "one")]),
    ("two IPv4 subnets and no choice",
     lambda s: (s["networks"][0]["subnets"].append({"subnet": "198.51.100.0/24"}),
                s["containers"].append(_ctr())),
     [(f"{S}.containers[1].ipv4",
       "network pub_net has 2 IPv4 subnets on host h1 (192.0.2.0/24, 198.51.100.0/24): set "
       "ipv4 or tenant")]),
    ("pool exhausted",
     lambda s: (s["networks"][0]["subnets"][0].update(ip_range="192.0.2.128/30"),
                s["containers"].extend([_ctr(name="c2"), _ctr(name="c3"), _ctr(name="c4")])),
     [(f"{S}.containers[{i}].ipv4",
       "no free address left in 192.0.2.128/30 of network pub_net (2 usable): widen the "
       "ip_range or fix some addresses") for i in (2, 3)]),
    ("docker version format",
     lambda s: s["hosts"][0].update(docker_version="latest"),
     [(f"{S}.hosts[0].docker_version", "expected a Docker version such as 20.10 or 27.1.1")]),
]


@pytest.mark.parametrize(("edit", "expected"), [(c[1], c[2]) for c in CASES],
                         ids=[c[0] for c in CASES])
def test_rule(edit: Callable[[Config], object], expected: list[tuple[str, str]]) -> None:
    assert errors_of(_edit(edit)) == expected


def test_two_macvlan_networks_share_a_parent_on_docker_27() -> None:
    def edit(s: Config) -> None:
        s["hosts"][0]["docker_version"] = "27.0.3"
        s["networks"].append(_net())
    assert errors_of(_edit(edit)) == []


def test_vlan_parents_are_planned_for_creation() -> None:
    p = plan_of(_edit(lambda s: s["networks"].append(_net(parent="eth0.50"))))
    h1 = p.sites[0].hosts[0]
    assert [(v.name, v.trunk, v.vlan_id) for v in h1.vlan_parents] == [("eth0.50", "eth0", 50)]


# -- warnings -------------------------------------------------------------------------------

def test_ipvlan_l3_ignores_the_gateway() -> None:
    cfg = _edit(lambda s: s["networks"].append(_net(
        driver="ipvlan", mode="l3", parent="eth0.60",
        subnets=[{"subnet": "198.18.0.0/24", "gateway": "198.18.0.1"}])))
    assert warnings_of(cfg) == [(f"{S}.networks[1].subnets[0].gateway",
                                 "ipvlan l3 ignores the gateway: containers route through the "
                                 "parent; drop it")]
    assert errors_of(cfg) == []


def test_globally_administered_mac_is_a_warning() -> None:
    cfg = _edit(lambda s: s["containers"][0].update(mac="00:16:3e:00:00:01"))
    assert warnings_of(cfg) == [(f"{S}.containers[0].mac",
                                 "globally administered MAC (bit 0x02 of the first byte clear) "
                                 "may clash with real hardware; fine when it is a licence-pinned "
                                 "MAC")]


def test_vepa_shim_is_a_warning() -> None:
    cfg = _edit(lambda s: s["networks"][0].update(mode="vepa", shim={
        "address_per_host": {"h1": "192.0.2.250"}}))
    assert warnings_of(cfg) == [(f"{NET0}.mode",
                                 "with macvlan vepa the shim reaches containers only through a "
                                 "switch port in hairpin (reflective relay) mode")]


# -- tenants and sites ------------------------------------------------------------------------

def _tenant_site(**over: Any) -> Config:
    s = site(containers=[])
    s["hosts"][0]["docker_version"] = "20.10"
    s["networks"] = [_net(name="t3", driver="ipvlan", mode="l3", parent="eth0",
                          hosts=["h1"], subnets=None)]
    s["tenants"] = [
        {"name": "ta", "subnets": [{"subnet": "198.18.1.0/24", "network": "t3"}]},
        {"name": "tb", "subnets": [{"subnet": "198.18.2.0/24", "network": "t3"},
                                   {"subnet": "2001:db8:b::/64", "network": "t3"}]},
    ]
    s["hosts"][0]["lan_address6"] = "2001:db8::11"
    s.update(over)
    return s


def test_tenant_site_is_clean() -> None:
    assert errors_of(config(paris=_tenant_site())) == []


def test_overlapping_tenant_subnets() -> None:
    s = _tenant_site()
    s["tenants"][1]["subnets"][0]["subnet"] = "198.18.1.128/25"
    assert errors_of(config(paris=s)) == [
        (f"{S}.tenants[1].subnets[0].subnet",
         "overlaps tenant ta (198.18.1.0/24 at sites.paris.tenants[0].subnets[0].subnet): every "
         "tenant, LAN, network and site needs its own addresses")]


def test_tenant_subnet_inside_the_lan() -> None:
    s = _tenant_site()
    s["tenants"][0]["subnets"][0]["subnet"] = "192.0.2.0/28"
    assert errors_of(config(paris=s)) == [
        (f"{S}.tenants[0].subnets[0].subnet",
         "overlaps the LAN of site paris (192.0.2.0/24 at sites.paris.lan.subnet): every "
         "tenant, LAN, network and site needs its own addresses")]


def test_overlapping_sites() -> None:
    other = site()
    other["networks"][0]["subnets"][0]["ip_range"] = "192.0.2.192/27"
    assert errors_of({"sites": {"paris": site(), "lyon": other}}) == [
        ("sites.paris.lan.subnet",
         "overlaps the LAN of site lyon (192.0.2.0/24 at sites.lyon.lan.subnet): every tenant, "
         "LAN, network and site needs its own addresses"),
        ("sites.paris.lan.subnet",
         "overlaps network pub_net (192.0.2.0/24 at sites.lyon.networks[0].subnets[0].subnet): "
         "every tenant, LAN, network and site needs its own addresses"),
        ("sites.paris.networks[0].subnets[0].subnet",
         "overlaps the LAN of site lyon (192.0.2.0/24 at sites.lyon.lan.subnet): every tenant, "
         "LAN, network and site needs its own addresses"),
        ("sites.paris.networks[0].subnets[0].subnet",
         "overlaps network pub_net (192.0.2.0/24 at sites.lyon.networks[0].subnets[0].subnet): "
         "every tenant, LAN, network and site needs its own addresses"),
        ("sites.lyon.hosts[0].lan_address",
         "already taken by the LAN address of host h1: choose a free address"),
        ("sites.lyon.hosts[1].lan_address",
         "already taken by the LAN address of host h2: choose a free address"),
        ("sites.lyon.containers[0].ipv4",
         "already taken by container web1 on host h1: choose a free address"),
    ]


def test_tenant_subnet_needs_an_l3_network() -> None:
    s = _tenant_site()
    s["networks"].append(_net(name="l2", driver="ipvlan", mode="l2", parent="eth0.9"))
    s["tenants"][0]["subnets"][0]["network"] = "l2"
    assert errors_of(config(paris=s)) == [
        (f"{S}.tenants[0].subnets[0].network",
         "tenant subnets are routed to an ipvlan l3 or l3s network, or to a macvlan bridge "
         "network with a shim; l2 is ipvlan l2")]


def test_tenant_subnet_on_multi_host_network_needs_its_host() -> None:
    s = _tenant_site()
    s["networks"][0]["hosts"] = ["h1", "h2"]
    s["hosts"][1]["lan_address6"] = "2001:db8::12"
    assert errors_of(config(paris=s))[:1] == [
        (f"{S}.tenants[0].subnets[0].host",
         "required: network t3 spans 2 hosts and the router sends this subnet to one of them")]


def test_routed_host_needs_a_lan_address() -> None:
    s = _tenant_site()
    del s["hosts"][0]["lan_address6"]
    assert errors_of(config(paris=s)) == [
        (f"{S}.hosts[0].lan_address6",
         "required: the upstream router reaches 2001:db8:b::/64 through this host's LAN "
         "address")]


def test_l3_network_level_subnets_cannot_span_hosts() -> None:
    s = _tenant_site(tenants=[])
    s["networks"][0].update(hosts=["h1", "h2"], subnets=[{"subnet": "198.18.0.0/24"}])
    assert errors_of(config(paris=s)) == [
        (f"{S}.networks[0].subnets",
         "an ipvlan l3 subnet is routed to one host: on a network spanning hosts, give each "
         "host its own subnet through a tenant (tenants[].subnets[].host)")]


def test_no_router_is_a_warning_for_routed_subnets() -> None:
    s = _tenant_site(routers=[])
    assert warnings_of(config(paris=s)) == [
        (f"{S}.routers",
         "no upstream router: add the plan's upstream routes to your router by hand")]


def test_container_needs_a_tenant_when_network_carries_several() -> None:
    s = _tenant_site(containers=[_ctr(network="t3")])
    assert errors_of(config(paris=s)) == [
        (f"{S}.containers[0].ipv4",
         "network t3 has 2 IPv4 subnets on host h1 (198.18.1.0/24, 198.18.2.0/24): set ipv4 or "
         "tenant")]
    s = _tenant_site(containers=[_ctr(network="t3", tenant="tc")])
    assert errors_of(config(paris=s)) == [
        (f"{S}.containers[0].tenant", "unknown tenant; site paris has: ta, tb")]


def test_inventory_lab_makes_ssh_optional() -> None:
    s = site(inventory="lab")
    for h in s["hosts"]:
        del h["ssh"]
    assert errors_of(config(paris=s)) == []


# -- shim names never take a link the host already has ------------------------------------

def _shim_named(name: str, **host0: Any) -> Config:
    def edit(s: Config) -> None:
        s["hosts"][0].update(host0)
        s["networks"][0]["hosts"] = ["h1"]
        s["networks"][0]["shim"] = {"name": name, "address_per_host": {"h1": "192.0.2.250"}}
    return _edit(edit)


def _why(name: str, why: str) -> list[tuple[str, str]]:
    return [(f"{NET0}.shim.name",
             f"shim name {name} {why}: vlaninfra never takes over a link it did not make; "
             f"choose another name in {NET0}.shim.name")]


@pytest.mark.parametrize(("name", "host0", "why"), [
    ("eth1", {"parents": ["eth0", "eth1"]}, "is parent eth1 of host h1"),
    ("eth0", {}, "is parent eth0 of host h1"),
    ("eth0", {"parents": ["eth1"]},
     "is a name the host reserves (loopback, management NIC, bond, bridge, Docker)"),
    ("lo", {}, "is a name the host reserves (loopback, management NIC, bond, bridge, Docker)"),
    ("docker0", {}, "is a name the host reserves (loopback, management NIC, bond, bridge, "
                    "Docker)"),
    ("bond0", {}, "is a name the host reserves (loopback, management NIC, bond, bridge, "
                  "Docker)"),
    ("br0", {}, "is a name the host reserves (loopback, management NIC, bond, bridge, Docker)"),
    ("eth0.50", {}, "names an 802.1Q sub-interface of parent eth0"),
])
def test_shim_named_like_a_link_of_the_host(name: str, host0: dict[str, Any], why: str,
                                            ) -> None:
    # (Moving h1 off eth0 also breaks pub_net's parent there: only the shim's error counts.)
    errors = [e for e in errors_of(_shim_named(name, **host0)) if e[0].endswith("shim.name")]
    assert errors == _why(name, why)


def test_shim_named_like_a_vlan_parent_or_another_shim() -> None:
    def edit(s: Config) -> None:
        s["networks"][0]["hosts"] = ["h1"]
        s["networks"][0]["shim"] = {"name": "vshim", "address_per_host": {"h1": "192.0.2.250"}}
        s["hosts"][0]["docker_version"] = "27.0.3"
        s["networks"].append(_net(parent="eth1.60", shim={
            "name": "eth1.60", "address_per_host": {"h1": "198.51.100.250"}}))
        s["networks"].append(_net(name="n3", subnets=[{"subnet": "198.51.101.0/24"}], shim={
            "name": "vshim", "address_per_host": {"h1": "198.51.101.250"}}))
        s["hosts"][0]["parents"] = ["eth0", "eth1"]
    errors = [e for e in errors_of(_edit(edit)) if e[0].endswith("shim.name")]
    assert errors == [
        (f"{S}.networks[1].shim.name",
         "shim name eth1.60 is the 802.1Q parent eth1.60 on host h1: vlaninfra never takes "
         f"over a link it did not make; choose another name in {S}.networks[1].shim.name"),
        (f"{S}.networks[2].shim.name",
         "shim name vshim is the shim of network pub_net on host h1: vlaninfra never takes "
         f"over a link it did not make; choose another name in {S}.networks[2].shim.name"),
    ]
