"""Where the lab keeps its state, and the inventory a stack reads to reach the lab hosts."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vlaninfra.lab._errors import LabError
from vlaninfra.lab._topology import validate_instance

__all__ = [
    "RUN_DIR",
    "Host",
    "Inventory",
    "Peer",
    "Router",
    "Site",
    "VlanPeer",
    "cache_dir",
    "inventory_path",
    "lab_root",
    "load_inventory",
    "project_root",
    "state_dir",
    "write_inventory",
]

INVENTORY_VERSION = 1
# Runtime files (sockets, pid files, exec roots) are under /run: short paths (unix sockets
# are limited to 108 bytes) on a tmpfs that a reboot clears.
RUN_DIR = Path("/run/vlaninfra-lab")


def project_root() -> Path:
    """The directory holding ``Pulumi.yaml``: above this package, else above the cwd."""
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for d in (start, *start.parents):
            if (d / "Pulumi.yaml").is_file():
                return d
    raise LabError(
        "cannot find the project root (a directory with Pulumi.yaml) above "
        f"{Path(__file__).parent} or {Path.cwd()}; set VLANINFRA_LAB_DIR to the lab state dir"
    )


def lab_root() -> Path:
    """One state dir per instance in here: ``$VLANINFRA_LAB_DIR`` or ``<project>/.lab``."""
    env = os.environ.get("VLANINFRA_LAB_DIR")
    return Path(env).resolve() if env else project_root() / ".lab"


def cache_dir() -> Path:
    """Survives `lab down`: the built image tarball."""
    env = os.environ.get("VLANINFRA_LAB_DIR")
    return Path(env).resolve() / ".cache" if env else project_root() / ".cache" / "lab"


def state_dir(instance: str = "default") -> Path:
    """State dir of one instance, e.g. ``<project>/.lab/default``."""
    return lab_root() / validate_instance(instance)


def inventory_path(instance: str = "default") -> Path:
    """Path of the inventory file of `instance`.

    Example: ``inventory_path("default")`` → ``<project>/.lab/default/inventory.json``
    """
    return state_dir(instance) / "inventory.json"


@dataclass(frozen=True)
class _Reachable:
    """What every namespace member reached over SSH has (fields in this order first)."""

    name: str
    netns: str
    mgmt_address: str
    ssh_port: int
    user: str
    host_key: str
    """Pinned host key, ``ssh-ed25519 AAAA…``."""


@dataclass(frozen=True)
class Router(_Reachable):
    """A site's router namespace: LAN gateway, reachable over SSH."""

    lan_address: str
    lan_address6: str = ""
    """IPv6 address on the LAN with prefix length (namespace labs), e.g. ``2001:db8:1::1/64``."""


@dataclass(frozen=True)
class Peer:
    """Another device on the LAN (no SSH; tests ping it and from it)."""

    netns: str
    address: str
    address6: str = ""
    """IPv6 address on the LAN with prefix length, e.g. ``2001:db8:1::2/64``."""


@dataclass(frozen=True)
class Host(_Reachable):
    """A Docker host: own netns with ``eth0`` on the LAN switch, own dockerd and sshd.

    VM hosts (``kind == "vm"``) have the same fields: ``netns`` and ``sshd_log`` are ``""``
    (nothing of theirs is a namespace or a file here), ``docker_socket`` is the socket inside
    the guest; reach them over SSH only.
    """

    docker_socket: str
    parent: str
    """The macvlan parent interface inside the host."""
    lan_address: str
    sshd_log: str
    """sshd's own log (LogLevel VERBOSE): one ``Accepted publickey`` line per connection."""
    docker_version: str
    image: str
    """The local image every host has, e.g. ``vlaninfra/busybox:lab``."""
    kind: str
    """``netns`` for namespace hosts, ``vm`` for VM hosts (QEMU guests)."""
    sshd_log_remote: str | None = None
    """VM hosts: sshd's log inside the guest (``/run/sshd.log``); ``sshd_log`` is then ``""``."""
    vm_name: str | None = None
    """VM hosts: the machine-wide VM name (QEMU ``-name vt-<vm_name>``), e.g. ``vl-a-v1``."""
    console_log: str | None = None
    """VM hosts: the guest's serial console log on this machine."""
    lan_address6: str = ""
    """IPv6 address on the LAN with prefix length, e.g. ``2001:db8:1::15/64`` (VM hosts too)."""

    @property
    def is_vm(self) -> bool:
        """True for a VM host: no namespace here (``netns`` is ``""``), reach it over SSH."""
        return self.kind == "vm"


@dataclass(frozen=True)
class VlanPeer:
    """A QEMU guest on the site's switch that terminates one VLAN on ``eth0.<vlan>`` (this
    machine's kernel has no 802.1Q, so a namespace cannot). Reachable over SSH like a host,
    with the inventory's key; no dockerd is waited for.

    Example: ``VlanPeer(name="p1", vlan=50, address="198.18.50.2/24", ...)``
    """

    name: str
    vlan: int
    address: str
    """The address on ``eth0.<vlan>``, with prefix length."""
    mgmt_address: str
    ssh_port: int
    user: str
    host_key: str
    lan_address: str = ""
    """Its untagged ``eth0`` address on the site LAN."""
    vm_name: str = ""
    console_log: str = ""


@dataclass(frozen=True)
class Site:
    """One site: LAN, router, peer and Docker hosts."""

    name: str
    lan: str
    gateway: str
    router: Router
    peer: Peer
    hosts: tuple[Host, ...]
    vlan_peers: tuple[VlanPeer, ...] = ()
    """VM guests terminating one VLAN each (``lab up --vlan-peer VID=ADDR/PREFIX``)."""
    lan6: str = ""
    """The LAN's IPv6 prefix, e.g. ``2001:db8:1::/64`` (2001:db8::/32 only)."""
    gateway6: str = ""


@dataclass(frozen=True)
class Inventory:
    """Everything a stack needs to reach the lab hosts (``inventory.json``).

    Example: ``load_inventory().sites[0].hosts[0].mgmt_address``
    """

    version: int
    instance: str
    key_path: str
    """The lab's SSH client private key (ed25519, mode 0600)."""
    known_hosts: str
    """A known_hosts file pinning every router's, host's and VLAN peer's key at its
    management address."""
    sites: tuple[Site, ...]

    @property
    def hosts(self) -> tuple[Host, ...]:
        """Docker hosts of every site."""
        return tuple(h for s in self.sites for h in s.hosts)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (lists, not tuples), the inverse of `from_json`."""
        data: dict[str, Any] = json.loads(json.dumps(asdict(self)))
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Inventory:
        if data.get("version") != INVENTORY_VERSION:
            raise LabError(f"inventory version {data.get('version')!r} is not supported")
        return cls(
            version=data["version"],
            instance=data["instance"],
            key_path=data["key_path"],
            known_hosts=data["known_hosts"],
            sites=tuple(
                Site(
                    name=s["name"],
                    lan=s["lan"],
                    gateway=s["gateway"],
                    router=Router(**s["router"]),
                    peer=Peer(**s["peer"]),
                    hosts=tuple(Host(**h) for h in s["hosts"]),
                    vlan_peers=tuple(VlanPeer(**v) for v in s.get("vlan_peers", ())),
                    lan6=s.get("lan6", ""),
                    gateway6=s.get("gateway6", ""),
                )
                for s in data["sites"]
            ),
        )


def load_inventory(instance: str = "default") -> Inventory:
    """Read the inventory of a running lab instance.

    Example: ``key = load_inventory().key_path``
    """
    path = inventory_path(instance)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise LabError(
            f"lab instance {instance!r} is not up ({path} does not exist): "
            f"run `vlaninfra lab up{'' if instance == 'default' else ' --instance ' + instance}`"
        ) from None
    return Inventory.from_json(data)


def write_inventory(inv: Inventory) -> Path:
    """Write atomically, so a reader never sees half a file."""
    path = inventory_path(inv.instance)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(inv.to_json(), indent=2) + "\n")
    tmp.replace(path)
    return path
