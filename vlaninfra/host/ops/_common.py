"""What the netlink ops share: interface name checks, errno tolerance, and deleting a link
only when it is the caller's."""

from __future__ import annotations

import errno
import ipaddress
import logging
from collections.abc import Collection

from vlaninfra.host import marks
from vlaninfra.host.contract import Deleted, LinkState, RouteState
from vlaninfra.host.errors import OpError
from vlaninfra.host.facts import _netlink_code, read_link, read_links, read_routes_to
from vlaninfra.host.untyped import Netlink

__all__ = ["GONE", "check_ifname", "delete_link", "delete_owned", "ignore", "legacy",
           "link_mark", "parent_index", "read_state", "read_states", "routes_to"]

log = logging.getLogger("vlaninfra.host.ops")

GONE = frozenset({errno.ENODEV, errno.ESRCH, errno.EADDRNOTAVAIL, errno.ENOENT})
"""Errnos that mean the object is already gone."""


def check_ifname(name: object, what: str = "interface name") -> str:
    """Validate a Linux interface name (1-15 bytes, no '/', ':', whitespace); return it."""
    if (
        not isinstance(name, str)
        or not 0 < len(name.encode()) <= 15
        or name in (".", "..")
        or any(c in name for c in "/: \t\n\r")
    ):
        raise OpError(errno.EINVAL, f"invalid {what} {name!r}: 1-15 chars, no '/', ':' or spaces")
    return name


def ignore(exc: BaseException, codes: frozenset[int]) -> None:
    """Re-raise ``exc`` unless its netlink errno is one of ``codes``."""
    if _netlink_code(exc) not in codes:
        raise exc


def delete_link(ipr: Netlink, name: str) -> bool:
    """Delete link ``name``; False when it was already gone."""
    try:
        ipr.link("del", ifname=name)
    except Exception as exc:
        ignore(exc, GONE)
        return False
    return True


def parent_index(ipr: Netlink, parent: str) -> int:
    """The ifindex of ``parent``; ``ENODEV`` naming it when there is none."""
    try:
        return int(ipr.link("get", ifname=parent)[0]["index"])
    except Exception as exc:
        if _netlink_code(exc) == errno.ENODEV:
            raise OpError(errno.ENODEV, f"parent interface {parent!r} does not exist") from exc
        raise


def read_state(ipr: Netlink, name: str) -> LinkState | None:
    """The link ``name`` (see ``facts.read_link``), typed; None when there is none."""
    link = read_link(ipr, name)
    return None if link is None else LinkState.of_link(link)


def read_states(ipr: Netlink) -> list[LinkState]:
    """Every link in this namespace (see ``facts.read_links``), typed."""
    return [LinkState.of_link(link) for link in read_links(ipr)]


def routes_to(ipr: Netlink, net: ipaddress.IPv4Network | ipaddress.IPv6Network,
              ) -> list[RouteState]:
    """Main-table routes to exactly ``net`` (see ``facts.read_routes_to``), typed."""
    return [RouteState.of_route(r) for r in read_routes_to(ipr, net)]


def link_mark(link: LinkState) -> marks.Mark | None:
    """vlaninfra's mark on ``link`` (its alias), if any."""
    return marks.of_alias(link.alias)


def legacy(link: LinkState, ifindex: int | None, kinds: Collection[str]) -> bool:
    """Whether ``link`` is the one state recorded (by ``ifindex``) before links had marks."""
    return link.index == ifindex and link.kind in kinds


def delete_owned(ipr: Netlink, name: str, kinds: Collection[str], owner: str,
                 ifindex: int | None) -> Deleted:
    """Delete link ``name`` when it is ``owner``'s (see :func:`legacy`); else keep it and say
    why."""
    current = read_state(ipr, name)
    if current is None:
        return Deleted(False)
    why = marks.refusal(f"link {name!r}", link_mark(current), owner,
                        legacy(current, ifindex, kinds))
    if why:
        log.warning("not deleting: %s", why)
        return Deleted(False, f"{why}: left in place")
    return Deleted(delete_link(ipr, name))
