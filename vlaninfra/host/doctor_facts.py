"""What ``vlaninfra doctor`` needs to know about a host, read in one op; nothing is changed.

- ``kinds``: whether the kernel offers each link kind (``macvlan``, ``ipvlan``, ``vlan``):
  a ``RTM_NEWLINK`` of that kind without a parent link is refused with ``EINVAL`` by a
  kernel that has the driver (built in, loaded, or loaded on demand as the kernel does for
  any ``ip link add``) and with ``EOPNOTSUPP`` by one that has not; no link is created.
- ``dmi``: vendor and product from ``/sys/class/dmi/id`` (local firmware facts, no metadata
  service); ``dmi_dir`` points elsewhere so a test can fake a cloud VM.
- ``ip_forward`` (and ``ip6_forward``: IPv6 ``all.forwarding``), the kernel release, every
  link (name, kind, up, parent) and the Docker daemon's version and macvlan/ipvlan networks
  (name, driver, parent, labels).

Example: ``collect(ctx)["kinds"] == {"macvlan": True, "ipvlan": False, "vlan": False}``
"""

from __future__ import annotations

import errno
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypedDict

from vlaninfra.host import docker_facts, facts
from vlaninfra.host.context import Context
from vlaninfra.host.errors import OpError
from vlaninfra.host.untyped import Netlink

__all__ = ["DMI_DIR", "DMI_KEYS", "KINDS", "DoctorDocker", "DoctorFacts", "DoctorNetwork",
           "collect"]

DMI_DIR = "/sys/class/dmi/id"
DMI_KEYS = ("sys_vendor", "product_name", "board_vendor", "bios_vendor", "chassis_asset_tag")
KINDS = ("macvlan", "ipvlan", "vlan")
_PROBE_NAME = "vldoctor0"
_IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
_IP6_FORWARD = "/proc/sys/net/ipv6/conf/all/forwarding"


class DoctorNetwork(TypedDict):
    """A macvlan/ipvlan network of the daemon: ``{"name": "lan", "driver": "macvlan", ...}``."""

    name: str
    driver: str | None
    parent: str | None
    labels: dict[str, str]


class DoctorDocker(TypedDict):
    """The daemon's version and its macvlan/ipvlan networks."""

    version: str | None
    networks: list[DoctorNetwork]


class DoctorFacts(TypedDict):
    """What :func:`collect` answers (see the module docstring)."""

    ip6_forward: bool | None
    kernel: str
    kinds: dict[str, bool | None]
    dmi: dict[str, str | None]
    ip_forward: bool | None
    links: Sequence[Mapping[str, object]]
    docker: DoctorDocker | None


def _read(path: str | Path, limit: int = 256) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read(limit).decode(errors="replace").strip()
    except OSError:
        return None


def _kind_supported(ipr: Netlink, kind: str) -> bool | None:
    """True/False as the kernel says; None when it answers something else (not judged)."""
    try:
        ipr.link("add", ifname=_PROBE_NAME, kind=kind)
    except Exception as exc:
        code = getattr(exc, "code", None)
        if code == errno.EOPNOTSUPP:
            return False
        return True if code == errno.EINVAL else None
    # A kernel that made a link without a parent: take it away again, it was never wanted.
    ipr.link("del", ifname=_PROBE_NAME)
    return True


def collect(ctx: Context, dmi_dir: str = DMI_DIR) -> DoctorFacts:
    """The doctor's facts of this host (see the module docstring)."""
    if not isinstance(dmi_dir, str) or not os.path.isabs(dmi_dir):
        raise OpError(errno.EINVAL, "dmi_dir must be an absolute path")
    with ctx.netlink() as ipr:
        if facts.read_link(ipr, _PROBE_NAME) is not None:
            raise OpError(errno.EEXIST, f"a link named {_PROBE_NAME} exists; the kernel probe "
                                        "needs the name free: remove that link")
        kinds = {kind: _kind_supported(ipr, kind) for kind in KINDS}
        links = [{k: link[k] for k in ("name", "kind", "up", "parent", "vlan_id", "alias")}
                 for link in facts.read_links(ipr)]
    docker: DoctorDocker | None = None
    if ctx.docker_available():
        networks: list[DoctorNetwork] = []
        for n in docker_facts.network_list(ctx):
            if n["driver"] not in ("macvlan", "ipvlan"):
                continue
            full = docker_facts.network_inspect(ctx, n["name"])
            networks.append({"name": n["name"], "driver": n["driver"],
                             "parent": full["options"].get("parent") if full else None,
                             "labels": full["labels"] if full else {}})
        docker = {"version": docker_facts.docker_version(ctx)["version"], "networks": networks}
    forward, forward6 = _read(_IP_FORWARD), _read(_IP6_FORWARD)
    return {
        "ip6_forward": None if forward6 is None else forward6 == "1",
        "kernel": platform.release(),
        "kinds": kinds,
        "dmi": {key: _read(Path(dmi_dir) / key) for key in DMI_KEYS},
        "ip_forward": None if forward is None else forward == "1",
        "links": links,
        "docker": docker,
    }
