"""Docker-version capabilities: what each daemon version's macvlan and ipvlan drivers accept,
and the ipvlan rules that follow from them. An unset ``docker_version`` is taken as 20.10, the
strictest version vlaninfra supports."""

from __future__ import annotations

import re

from ._facts import Check
from ._model import Host, IpvlanNetwork, Site

__all__ = [
    "DOCKER_VERSION",
    "IPVLAN_FLAGS_SINCE",
    "docker_allows_shared_parent",
    "ipvlan_docker",
    "version_of",
]

DOCKER_VERSION = re.compile(r"(\d+)\.(\d+)(\.\d+)?([+~-][0-9A-Za-z.+~-]*)?")
"""A Docker version as ``docker_version`` accepts it, e.g. ``20.10`` or ``27.1.1``."""
_STRICT_DOCKER = (20, 10)
IPVLAN_FLAGS_SINCE = (23, 0)
"""moby #42542 (Docker 23.0): the ipvlan driver honours ipvlan_flag and knows mode l3s."""
_SHARED_MACVLAN_SINCE = (27, 0)
"""moby #47318 (Docker 27.0) lets several macvlan networks share a parent, except passthru."""


def docker_allows_shared_parent(version: str | None, driver: str) -> bool:
    """Whether Docker ``version`` lets two ``driver`` networks share a parent.

    Example: ``docker_allows_shared_parent("27.1.1", "macvlan") is True``
    """
    return driver == "macvlan" and version_of(version) >= _SHARED_MACVLAN_SINCE


def version_of(text: str | None) -> tuple[int, int]:
    """(major, minor) of a Docker version, e.g. ``(27, 1)`` for ``"27.1.1"``; 20.10 when unset
    or unreadable."""
    m = DOCKER_VERSION.fullmatch(text) if text is not None else None
    return (int(m.group(1)), int(m.group(2))) if m else _STRICT_DOCKER


def ipvlan_docker(check: Check, site: Site, base: str, net: IpvlanNetwork,
                  hosts: dict[str, Host]) -> None:
    """What Docker's ipvlan driver does with mode and flag, by daemon version. Measured on
    Docker 20.10.24: ``ipvlan_mode=l3s`` is refused, ``ipvlan_flag`` is accepted, stored in the
    network's options and ignored (the links are created with flag bridge)."""
    old = sorted(h for h in net.hosts
                 if h in hosts and version_of(hosts[h].docker_version) < IPVLAN_FLAGS_SINCE)
    if not old:
        return
    where = f"on host(s) {', '.join(old)} (Docker 20.10 assumed where docker_version is not set)"
    if net.mode == "l3s":
        check.error(f"{base}.mode", net.mode, (
            f"Docker before 23.0 refuses ipvlan mode l3s {where}: use l3"))
    if net.flag != "bridge":
        check.error(f"{base}.flag", net.flag, (
            f"Docker before 23.0 accepts ipvlan_flag {net.flag} and ignores it (the links get "
            f"flag bridge) {where}: containers on this network would reach each other; "
            "drop the flag, or give each tenant its own host"))
