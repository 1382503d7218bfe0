"""Names and addresses of a lab instance: pure functions, no I/O.

Naming (every name the lab creates follows it, so `lab down` can find leftovers of a crashed
`lab up` without any state):

- instance ``default`` uses the prefix ``vl-``; instance ``t1`` uses ``vlt1-``;
- namespaces are ``<prefix><site>-<role>``: ``vl-a-sw`` (switch), ``vl-a-gw`` (router),
  ``vl-a-peer`` (LAN peer), ``vl-a-h1`` … (Docker hosts);
- the root-namespace end of a management veth carries the name of the namespace it leads to
  (``vl-a-h1``); inside the namespace it is ``mgmt0``. Switch ports are named after the
  namespace role inside the switch namespace (``h1``, ``gw``, ``peer``); the LAN end in every
  attached namespace is ``eth0``; the router-to-router link is ``wan0`` on both sides.

Addressing (slot 0 is the default instance, slots 1-3 are other instances):

- site LANs: slot 0 uses 198.51.100.0/24 (site a) and 198.19.1.0/24 (site b); slot s > 0 uses
  198.19.(8s + i).0/24 for site i; router .1, peer .2, host n .(10 + n). (Not 192.0.2.0/24:
  that is the real network of the machine the lab was built on; `lab up` refuses any range
  that overlaps an address or route of the root namespace.)
- management: 203.0.113.0/25, one /27 per slot, one /31 per link (root side even address,
  namespace side odd); link 8i is site i's router, link 8i + n is its host n (so a site
  has at most 15 hosts alone, 7 with a second site). 203.0.113.128/25 is left to other
  test fixtures (agent tests, VM hosts);
- router-to-router: 198.18.255.(2s)/31 (site a even, site b odd).
- IPv6 beside it on every site LAN, from the documentation prefix only (never ``fd00::/8``,
  which these machines' own eth0 uses): 2001:db8:(16s + i + 1)::/64 for site i of slot s,
  e.g. 2001:db8:1::/64 for site a of the default instance; router ::1, peer ::2, host n
  ::(10 + n) in hex (``::b``), added without DAD. VM members have no IPv6 yet.

VM members (QEMU guests, all on site a's switch; see `plan_vms`):

- names: VM host k is ``v<k>``, VLAN peer k is ``p<k>``; the machine-wide VM name (QEMU
  ``-name vt-<vm name>``, taps ``vt-<vm name>-l`` / ``-m``) is ``<prefix>a-v1``, e.g.
  ``vl-a-v1`` or ``vlt1-a-p1`` (at most 10 characters, so tap names fit IFNAMSIZ);
- LAN (untagged ``eth0``): VM host k at .(20 + k), VLAN peer k at .(30 + k) of site a's LAN;
  VLAN peer k also terminates its VLAN on ``eth0.<vid>`` with the given address;
- management: 203.0.113.128/26, one /28 per slot (203.0.113.(128 + 16s)/28), one /31 per
  VM (root side even, guest odd): VM hosts first, then VLAN peers, at most 8 VMs per
  instance. This block collides neither with the namespace slots (203.0.113.0/25) nor with
  the VM unit tests (203.0.113.240/28); the agent tests pick free /30s from the top of
  203.0.113.128/25 down and skip addresses in use.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from vlaninfra.lab._errors import LabError

__all__ = [
    "MAX_HOSTS",
    "MAX_HOSTS_2_SITES",
    "MAX_SITES",
    "MAX_SLOTS",
    "MAX_VMS",
    "NS_RE",
    "VM_RE",
    "LabPlan",
    "NodePlan",
    "SitePlan",
    "VmPlan",
    "WanPlan",
    "instance_of",
    "ns_prefix",
    "plan",
    "plan_vms",
    "validate_instance",
    "vm_instance_of",
]

MAX_HOSTS = 15
MAX_HOSTS_2_SITES = 7
MAX_SITES = 2
MAX_SLOTS = 4
DEFAULT = "default"
SITE_NAMES = "ab"
# Matches every namespace and root-namespace link a lab makes; group 1 is the instance ("" for
# the default instance).
NS_RE = re.compile(r"^vl([a-z0-9]{0,3})-([a-z])-(sw|gw|peer|h[0-9]{1,2})$")
_INSTANCE_RE = re.compile(r"^[a-z0-9]{1,3}$")
# Machine-wide VM names of lab VMs (QEMU -name vt-<name>); group 1 as in NS_RE.
VM_RE = re.compile(r"^vl([a-z0-9]{0,3})-([a-z])-([vp][0-9])$")
MAX_VMS = 8
# With VM hosts at .21…, namespace hosts (.11 …) must stay below them.
MAX_HOSTS_WITH_VMS = 10
_VM_MGMT = ipaddress.IPv4Address("203.0.113.128")

_DEFAULT_LANS = ("198.51.100.0/24", "198.19.1.0/24")
_MGMT = ipaddress.IPv4Address("203.0.113.0")
_WAN = ipaddress.IPv4Address("198.18.255.0")
_OTHER_LANS = ipaddress.IPv4Address("198.19.0.0")


def validate_instance(instance: str) -> str:
    """Return `instance` if it is a valid instance name, else raise `LabError`.

    Example: ``validate_instance("t1")``
    """
    if instance == DEFAULT or _INSTANCE_RE.match(instance):
        return instance
    raise LabError(
        f"lab instance name {instance!r} is invalid: use 'default' or 1-3 characters "
        "from a-z and 0-9 (it becomes part of namespace and interface names)"
    )


def ns_prefix(instance: str) -> str:
    """Prefix of every namespace and root link of `instance`: ``vl-`` or ``vl<instance>-``."""
    validate_instance(instance)
    return "vl-" if instance == DEFAULT else f"vl{instance}-"


def instance_of(name: str) -> str | None:
    """The instance a namespace/link name belongs to, or None if it is not a lab name."""
    return _instance(NS_RE, name)


def _instance(pattern: re.Pattern[str], name: str) -> str | None:
    m = pattern.match(name)
    return None if m is None else m.group(1) or DEFAULT


@dataclass(frozen=True)
class NodePlan:
    """One namespace attached to a site's switch (router, peer or Docker host)."""

    name: str
    """Role name inside the site: ``gw``, ``peer``, ``h1`` …; also its switch port name."""
    netns: str
    lan_address: str
    """Address on ``eth0`` with prefix length, e.g. ``198.51.100.11/24``."""
    gateway: str | None
    """Default route (None for the router itself)."""
    mgmt_address: str | None
    """Namespace side of the management /31 (None: no management link, the peer)."""
    mgmt_root_address: str | None
    """Root-namespace side of the management /31."""
    lan_address6: str = ""
    """IPv6 address on ``eth0`` with prefix length, e.g. ``2001:db8:1::b/64``."""
    gateway6: str | None = None
    """IPv6 default route (None for the router itself)."""


@dataclass(frozen=True)
class WanPlan:
    """The router-to-router link of one site."""

    address: str
    """This router's side, with prefix length."""
    remote: str
    """The other router's address (next hop)."""
    remote_lan: str
    """The other site's LAN, routed via `remote`."""


@dataclass(frozen=True)
class SitePlan:
    """Names and addresses of one site."""

    name: str
    lan: str
    gateway: str
    switch_netns: str
    router: NodePlan
    peer: NodePlan
    hosts: tuple[NodePlan, ...]
    wan: WanPlan | None
    lan6: str = ""
    """The LAN's IPv6 prefix, e.g. ``2001:db8:1::/64``."""
    gateway6: str = ""

    @property
    def namespaces(self) -> tuple[str, ...]:
        """Every namespace of the site, switch first."""
        return (
            self.switch_netns,
            self.router.netns,
            self.peer.netns,
            *(h.netns for h in self.hosts),
        )


@dataclass(frozen=True)
class LabPlan:
    """Names and addresses of one lab instance."""

    instance: str
    slot: int
    sites: tuple[SitePlan, ...]

    @property
    def namespaces(self) -> tuple[str, ...]:
        return tuple(ns for s in self.sites for ns in s.namespaces)

    @property
    def mgmt_nodes(self) -> tuple[NodePlan, ...]:
        """Router and hosts of every site: the namespaces that run sshd."""
        return tuple(n for s in self.sites for n in (s.router, *s.hosts))


def _lan(slot: int, site: int) -> ipaddress.IPv4Network:
    if slot == 0:
        return ipaddress.IPv4Network(_DEFAULT_LANS[site])
    return ipaddress.IPv4Network(f"{_OTHER_LANS + 256 * (8 * slot + site)}/24")


def _lan6(slot: int, site: int) -> ipaddress.IPv6Network:
    return ipaddress.IPv6Network(f"2001:db8:{16 * slot + site + 1:x}::/64")


def _mgmt(slot: int, link: int) -> tuple[str, str]:
    root = _MGMT + 32 * slot + 2 * link
    return str(root + 1), str(root)


def _node(
    prefix: str,
    site: str,
    lan: ipaddress.IPv4Network,
    slot: int,
    name: str,
    host_part: int,
    link: int | None,
) -> NodePlan:
    mgmt, mgmt_root = _mgmt(slot, link) if link is not None else (None, None)
    lan6 = _lan6(slot, SITE_NAMES.index(site))
    return NodePlan(
        name=name,
        netns=f"{prefix}{site}-{name}",
        lan_address=f"{lan.network_address + host_part}/{lan.prefixlen}",
        gateway=None if name == "gw" else str(lan.network_address + 1),
        mgmt_address=mgmt,
        mgmt_root_address=mgmt_root,
        lan_address6=f"{lan6.network_address + host_part}/{lan6.prefixlen}",
        gateway6=None if name == "gw" else str(lan6.network_address + 1),
    )


def plan(instance: str, slot: int, sites: int = 1, hosts: int = 2) -> LabPlan:
    """Compute every name and address of a lab instance.

    Example: ``plan("default", 0).sites[0].hosts[0].lan_address == "198.51.100.11/24"``
    """
    prefix = ns_prefix(instance)
    if not 1 <= sites <= MAX_SITES:
        raise LabError(f"--sites must be 1..{MAX_SITES}, not {sites}")
    most = MAX_HOSTS if sites == 1 else MAX_HOSTS_2_SITES
    if not 1 <= hosts <= most:
        raise LabError(f"--hosts must be 1..{most} with {sites} site(s), not {hosts}")
    if not 0 <= slot < MAX_SLOTS or (slot == 0) != (instance == DEFAULT):
        raise LabError(f"slot {slot} is not valid for lab instance {instance!r}")
    result = []
    for i in range(sites):
        site = SITE_NAMES[i]
        lan = _lan(slot, i)

        wan = None
        if sites == 2:
            a, b = _WAN + 2 * slot, _WAN + 2 * slot + 1
            mine, other = (a, b) if i == 0 else (b, a)
            wan = WanPlan(f"{mine}/31", str(other), str(_lan(slot, 1 - i)))
        result.append(
            SitePlan(
                name=site,
                lan=str(lan),
                gateway=str(lan.network_address + 1),
                switch_netns=f"{prefix}{site}-sw",
                router=_node(prefix, site, lan, slot, "gw", 1, 8 * i),
                peer=_node(prefix, site, lan, slot, "peer", 2, None),
                hosts=tuple(
                    _node(prefix, site, lan, slot, f"h{n}", 10 + n, 8 * i + n)
                    for n in range(1, hosts + 1)
                ),
                wan=wan,
                lan6=str(_lan6(slot, i)),
                gateway6=str(_lan6(slot, i).network_address + 1),
            )
        )
    return LabPlan(instance=instance, slot=slot, sites=tuple(result))


def vm_instance_of(vm_name: str) -> str | None:
    """The instance a lab VM name (``vl-a-v1``, ``vlt1-a-p2``) belongs to, else None."""
    return _instance(VM_RE, vm_name)


@dataclass(frozen=True)
class VmPlan:
    """One QEMU member of site a: a VM Docker host (``v<k>``) or a VLAN peer (``p<k>``)."""

    name: str
    """Name inside the site (``v1``, ``p1``)."""
    vm_name: str
    """Machine-wide VM name (``vl-a-v1``): QEMU ``-name vt-<vm_name>``, taps ``vt-<vm_name>-l``."""
    kind: str
    """``host`` (dockerd, in the inventory's hosts) or ``vlan-peer``."""
    lan_address: str
    gateway: str
    mgmt_address: str
    """Guest side of the management /31 (the ssh target)."""
    mgmt_root_address: str
    mac_seed: int
    vlan: int | None = None
    vlan_address: str | None = None
    """VLAN peers: the address on ``eth0.<vlan>``, with prefix length."""
    lan_address6: str = ""
    """IPv6 LAN address with prefix length (same host part as ``lan_address``)."""
    gateway6: str = ""


def _vlan_address(vid: object, address: object, lan: ipaddress.IPv4Network) -> str:
    if isinstance(vid, bool) or not isinstance(vid, int) or not 1 <= vid <= 4094:
        raise LabError(f"VLAN peer: VLAN id {vid!r} must be an integer 1..4094")
    try:
        iface = ipaddress.ip_interface(str(address))
    except ValueError:
        iface = None
    if not isinstance(iface, ipaddress.IPv4Interface) or "/" not in str(address):
        raise LabError(
            f"VLAN peer {vid}: address {address!r} must be IPv4 with prefix, e.g. 198.18.50.2/24"
        )
    if iface.network.overlaps(lan):
        raise LabError(f"VLAN peer {vid}: {iface} overlaps the site's LAN {lan}")
    return iface.with_prefixlen


def plan_vms(
    p: LabPlan, vm_hosts: int = 0, vlan_peers: Sequence[tuple[int, str]] = ()
) -> tuple[VmPlan, ...]:
    """Names and addresses of the VM members of site a: VM hosts first, then VLAN peers.

    Example: ``plan_vms(plan("default", 0), 1)[0].mgmt_address == "203.0.113.129"``
    """
    total = vm_hosts + len(vlan_peers)
    if vm_hosts < 0 or total > MAX_VMS:
        raise LabError(
            f"--vm-hosts plus --vlan-peer must be 0..{MAX_VMS} in all, not {vm_hosts} + "
            f"{len(vlan_peers)}"
        )
    site = p.sites[0]
    if total and len(site.hosts) > MAX_HOSTS_WITH_VMS:
        raise LabError(
            f"--hosts must be at most {MAX_HOSTS_WITH_VMS} with VM members "
            f"(namespace host 11 would take VM host v1's LAN address)"
        )
    lan = ipaddress.IPv4Network(site.lan)
    lan6 = ipaddress.IPv6Network(site.lan6)
    seen: dict[str, int] = {}
    peers = []
    for vid, address in vlan_peers:
        addr = _vlan_address(vid, address, lan)
        ip = addr.split("/")[0]
        if ip in seen:
            raise LabError(f"VLAN peers {seen[ip]} and {vid} have the same address {ip}")
        seen[ip] = vid
        peers.append((vid, addr))
    prefix = ns_prefix(p.instance)
    result = []
    for k in range(total):
        is_host = k < vm_hosts
        number = k + 1 if is_host else k - vm_hosts + 1
        name = f"{'v' if is_host else 'p'}{number}"
        root = _VM_MGMT + 16 * p.slot + 2 * k
        vlan: int | None = None
        vaddr: str | None = None
        host_part = (20 if is_host else 30) + number
        if not is_host:
            vlan, vaddr = peers[k - vm_hosts]
        result.append(
            VmPlan(
                name=name,
                vm_name=f"{prefix}{site.name}-{name}",
                kind="host" if is_host else "vlan-peer",
                lan_address=f"{lan.network_address + host_part}/{lan.prefixlen}",
                gateway=site.gateway,
                mgmt_address=str(root + 1),
                mgmt_root_address=str(root),
                mac_seed=256 * (1 + p.slot) + 1 + k,
                vlan=vlan,
                vlan_address=vaddr,
                lan_address6=f"{lan6.network_address + host_part}/{lan6.prefixlen}",
                gateway6=site.gateway6,
            )
        )
    return tuple(result)
