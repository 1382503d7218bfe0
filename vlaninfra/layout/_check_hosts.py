"""Rules for hosts and their parents: host names, SSH and LAN addresses, parent and 802.1Q
names and ids, shim names on the host, and which networks may share a parent (kernel, Docker
version, macvlan passthru)."""

from __future__ import annotations

from ._docker import DOCKER_VERSION, docker_allows_shared_parent
from ._facts import Check
from ._model import Host, MacvlanNetwork, Network, Site
from ._names import (
    RESERVED_IFNAME,
    RESERVED_IFNAMES,
    VLAN,
    hostname_problem,
    iface_problem,
    shim_name,
)

__all__ = ["check_host", "check_parents"]


def check_host(check: Check, site: Site, i: int, host: Host) -> None:
    base = f"sites.{site.name}.hosts[{i}]"
    problem = hostname_problem(host.name)
    if problem:
        check.error(f"{base}.name", host.name, problem)
    if host.ssh is None and site.inventory is None:
        check.error(f"{base}.ssh", None,
                    "required: how to reach the host (or set inventory: lab on the site)")
    for j, parent in enumerate(host.parents):
        problem = iface_problem(parent)
        if problem:
            check.error(f"{base}.parents[{j}]", parent, problem)
    check.duplicates(((f"{base}.parents[{j}]", p) for j, p in enumerate(host.parents)), "parent")
    if host.docker_version is not None and not DOCKER_VERSION.fullmatch(host.docker_version):
        check.error(f"{base}.docker_version", host.docker_version,
                    "expected a Docker version such as 20.10 or 27.1.1")
    lan = site.lan
    if host.lan_address is not None:
        if host.lan_address not in lan.subnet:
            check.error(f"{base}.lan_address", host.lan_address,
                        f"outside the LAN subnet {lan.subnet}: use the host's address on it")
        elif host.lan_address in (lan.subnet.network_address, lan.subnet.broadcast_address):
            check.error(f"{base}.lan_address", host.lan_address,
                        f"the network or broadcast address of {lan.subnet} is not a host address")
    if host.lan_address6 is not None and lan.subnet6 is not None \
            and host.lan_address6 not in lan.subnet6:
        check.error(f"{base}.lan_address6", host.lan_address6,
                    f"outside the LAN prefix {lan.subnet6}: use the host's address on it")


def check_parents(check: Check, site: Site, host: Host, hi: int,
                  net_index: dict[str, int]) -> None:
    """Per host: parents exist, 802.1Q ids are valid and unique, and Docker's
    one-network-per-parent and passthru rules hold."""
    hbase = f"sites.{site.name}.hosts[{hi}]"
    on_host = [n for n in site.networks if host.name in n.hosts]
    vlans: dict[str, tuple[str, int]] = {}
    by_vid: dict[tuple[str, int], str] = {}
    users: dict[str, list[Network]] = {}
    for net in on_host:
        parent = net.parent_on(host.name)
        path = f"sites.{site.name}.networks[{net_index[net.name]}]." + (
            f"parent_per_host.{host.name}" if host.name in net.parent_per_host else "parent")
        users.setdefault(parent, []).append(net)
        problem = iface_problem(parent)
        if problem:
            check.error(path, parent, problem)
            continue
        if parent in host.parents:
            continue
        m = VLAN.fullmatch(parent)
        if m is None:
            check.error(path, parent, (
                f"{parent} is not a parent of host {host.name} ({', '.join(host.parents)}): "
                f"add it to {hbase}.parents"))
            continue
        trunk, vid = m.group(1), int(m.group(2))
        if trunk not in host.parents:
            check.error(path, parent, (
                f"trunk {trunk} of {parent} is not a parent of host {host.name}: add it to "
                f"{hbase}.parents"))
        elif not 1 <= vid <= 4094:
            check.error(path, parent, f"VLAN id {vid} is out of range: use 1 to 4094")
        elif by_vid.setdefault((trunk, vid), parent) != parent:
            check.error(path, parent, (
                f"VLAN {vid} on trunk {trunk} is already {by_vid[(trunk, vid)]}: use one "
                "name per VLAN"))
        else:
            vlans[parent] = (trunk, vid)
    check.facts.vlans[(site.name, host.name)] = vlans
    _shim_names(check, site, host, on_host, vlans, net_index)
    for parent, nets in users.items():
        _shared_parent(check, site, host, hi, parent, nets, net_index)
    trunks = {trunk: sub for sub, (trunk, _) in vlans.items()}
    for parent, nets in users.items():
        for net in nets:
            if isinstance(net, MacvlanNetwork) and net.mode == "passthru" and parent in trunks:
                check.error(f"sites.{site.name}.networks[{net_index[net.name]}].parent", parent, (
                    f"macvlan passthru gives the whole parent {parent} to network {net.name}; "
                    f"on host {host.name} it is also the trunk of {trunks[parent]}: give one "
                    "of them another parent"))


def _shim_names(check: Check, site: Site, host: Host, on_host: list[Network],
                vlans: dict[str, tuple[str, int]], net_index: dict[str, int]) -> None:
    """A shim's name is a new link on the host: never one of its parents, an 802.1Q parent,
    another shim or a name the host reserves (vlaninfra would refuse to touch that link; the
    layout says so before anything runs)."""
    taken: dict[str, str] = {p: f"parent {p} of host {host.name}" for p in host.parents}
    taken.update({v: f"the 802.1Q parent {v} on host {host.name}" for v in vlans})
    for net in on_host:
        if net.shim is None:
            continue
        name = shim_name(net)
        base = f"sites.{site.name}.networks[{net_index[net.name]}]"
        path = f"{base}.shim.name" if net.shim.name else f"{base}.name"
        vlan = VLAN.fullmatch(name)
        if name in taken:
            why = f"is {taken[name]}"
        elif name in RESERVED_IFNAMES or RESERVED_IFNAME.fullmatch(name):
            why = "is a name the host reserves (loopback, management NIC, bond, bridge, Docker)"
        elif vlan is not None and vlan.group(1) in host.parents:
            why = f"names an 802.1Q sub-interface of parent {vlan.group(1)}"
        else:
            taken[name] = f"the shim of network {net.name} on host {host.name}"
            continue
        check.error(path, name, (
            f"shim name {name} {why}: vlaninfra never takes over a link it did not make; "
            f"choose another name in {base}.shim.name"))


def _shared_parent(check: Check, site: Site, host: Host, hi: int, parent: str,
                   nets: list[Network], net_index: dict[str, int]) -> None:
    first = nets[0]
    for net in nets[1:]:
        path = f"sites.{site.name}.networks[{net_index[net.name]}].parent"
        passthru = [n for n in (first, net)
                    if isinstance(n, MacvlanNetwork) and n.mode == "passthru"]
        if passthru:
            other = net if passthru[0] is first else first
            check.error(path, parent, (
                f"macvlan passthru gives the whole parent {parent} to network "
                f"{passthru[0].name}; network {other.name} cannot use it too on host "
                f"{host.name}: give it another parent"))
        elif first.driver != net.driver:
            check.error(path, parent, (
                f"the kernel refuses macvlan and ipvlan on one parent: network {net.name} "
                f"({net.driver}) and network {first.name} ({first.driver}) both use {parent} "
                f"on host {host.name}; give one an 802.1Q parent such as {parent}.50"))
        elif not docker_allows_shared_parent(host.docker_version, net.driver):
            version = host.docker_version or (
                f"20.10 (assumed: sites.{site.name}.hosts[{hi}].docker_version is not set)")
            newer = " (Docker 27 and later allow it for macvlan)" \
                if net.driver == "macvlan" else ""
            check.error(path, parent, (
                f"network {net.name} and network {first.name} both use parent {parent} on "
                f"host {host.name}; Docker {version} allows one {net.driver} network per "
                f"parent{newer}: carry both subnets in one network, or give each its own "
                f"802.1Q parent such as {parent}.50"))
