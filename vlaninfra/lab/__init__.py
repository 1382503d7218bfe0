"""The local multi-host lab: sites built from network namespaces on this machine.

Each site has a LAN switch (a bridge in its own namespace), a router, a LAN peer and N Docker
hosts, each host with its own ``eth0`` on the switch, its own dockerd and its own sshd,
reachable from the root namespace over a management link. Optionally site a also gets QEMU
members (full Debian kernel: ipvlan, 802.1Q): VM Docker hosts (``kind == "vm"``) and VLAN
peers (``site.vlan_peers``). `lab_up` writes an inventory
(`inventory_path`) that stacks read to reach the hosts.

Example::

    from vlaninfra.lab import lab_up, lab_down
    inv = lab_up(hosts=2)
    print(inv.sites[0].hosts[0].mgmt_address)
    lab_down()
"""

from __future__ import annotations

from vlaninfra.lab._down import lab_down
from vlaninfra.lab._errors import LabError
from vlaninfra.lab._inventory import (
    Host,
    Inventory,
    Peer,
    Router,
    Site,
    VlanPeer,
    inventory_path,
    load_inventory,
)
from vlaninfra.lab._lab import lab_instances
from vlaninfra.lab._probe import http_ok
from vlaninfra.lab._resolver import LAB_INSTANCE_ENV
from vlaninfra.lab._status import lab_status
from vlaninfra.lab._up import ensure_dockerd, lab_up

__all__ = [
    "LAB_INSTANCE_ENV",
    "Host",
    "Inventory",
    "LabError",
    "Peer",
    "Router",
    "Site",
    "VlanPeer",
    "ensure_dockerd",
    "http_ok",
    "inventory_path",
    "lab_down",
    "lab_instances",
    "lab_status",
    "lab_up",
    "load_inventory",
]
