"""The lab stack (`stacks/Pulumi.lab.yaml`) written as a typed Python program: the same site,
hosts, macvlan network, shims, containers and probes, built with functions and loops instead
of YAML. `pulumi up` here lays exactly the host objects the YAML stack lays.

Run it against the local lab (`vlaninfra lab up`) from this directory, in a virtualenv with
vlaninfra installed::

    pulumi stack init lab && pulumi up
    pulumi stack output a          # every container's address and MAC, network ids, shims
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pulumi

import vlaninfra
from vlaninfra.layout import (
    Container,
    Host,
    Lan,
    MacvlanMode,
    MacvlanNetwork,
    Probe,
    Router,
    Shim,
    Site,
    Subnet,
)

LAN = IPv4Network("198.51.100.0/24")
"""The lab's site-a LAN (`vlaninfra lab up`); a real site names its own."""
HOSTS = ("h1", "h2")
CONTAINERS_PER_HOST = 2
IMAGE = "vlaninfra/busybox:lab"
NETWORK = "pub_net"


def lan(n: int) -> IPv4Address:
    """The `n`-th address of the LAN, e.g. ``lan(11)`` → 198.51.100.11."""
    return LAN[n]


def containers(hosts: tuple[str, ...], per_host: int) -> tuple[Container, ...]:
    """``web1``, ``web2``, ... numbered across the hosts, `per_host` on each."""
    return tuple(
        Container(name=f"web{i * per_host + j + 1}", host=host, network=NETWORK, image=IMAGE)
        for i, host in enumerate(hosts)
        for j in range(per_host)
    )


def lab_site(name: str = "a") -> Site:
    """The whole site: two Docker hosts on one macvlan LAN, a shim on each host so it reaches
    its own containers, containers allocated from the top quarter of the LAN."""
    gateway = lan(1)
    return Site(
        name=name,
        inventory="lab",  # SSH targets from the running lab; a real site gives Host(ssh=...)
        lan=Lan(subnet=LAN, gateway=gateway),
        routers=(Router(name="gw", address=gateway, managed=True),),
        hosts=tuple(
            Host(name=h, lan_address=lan(11 + i), parents=("eth0",), docker_version="20.10")
            for i, h in enumerate(HOSTS)
        ),
        networks=(
            MacvlanNetwork(
                name=NETWORK,
                mode=MacvlanMode.BRIDGE,
                parent="eth0",
                hosts=HOSTS,
                subnets=(Subnet(subnet=LAN, gateway=gateway,
                                ip_range=IPv4Network(f"{lan(128)}/26")),),
                shim=Shim(name="macvlan-shim", routes="per-container",
                          address_per_host={h: lan(250 + i) for i, h in enumerate(HOSTS)}),
            ),
        ),
        containers=containers(HOSTS, CONTAINERS_PER_HOST),
        probes=(Probe(source="h1", to="web1", port=80), Probe(source="web3", to="web1", port=80)),
    )


def main() -> None:
    """Declares the site; its outputs become the stack output named after it."""
    site = vlaninfra.Site("a", vlaninfra.SiteArgs(site=lab_site()))
    pulumi.export("a", site.outputs)
