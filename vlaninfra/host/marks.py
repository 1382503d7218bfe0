"""Ownership marks: how vlaninfra recognizes the objects it created on a host.

Every object vlaninfra creates carries a mark naming the owning stack (``project/stack``) and a
hash of the inputs that define the object (its *spec*):

- Docker networks and containers: the labels ``io.vlaninfra.managed=true``,
  ``io.vlaninfra.owner``, ``io.vlaninfra.resource`` (the config key) and ``io.vlaninfra.spec``;
- links (shims, 802.1Q parents): the link alias (``IFLA_IFALIAS``),
  ``vlaninfra:<owner>:<spec>``;
- routes on a managed router: the route protocol number :data:`RTPROT_VLANINFRA` (57).

Ops never change or delete an object without vlaninfra's mark of the calling stack. A create
that finds its object already there takes it over when the mark names the same stack and the
same spec (a retried or interrupted create converges), and fails naming the owner otherwise.
Objects created before marks existed are claimed only through what state recorded about them
(the Docker id, the ifindex, the next hop of a ``proto static`` route).

Example: ``claim("network 'lan'", of_labels(net["labels"]), "infra/prod", "3f2a9c01d4e5")``
"""

from __future__ import annotations

import errno
import hashlib
import json
from collections.abc import Mapping
from typing import NamedTuple

from vlaninfra.host.errors import OpError

__all__ = [
    "ADHOC_OWNER",
    "LABEL_PREFIX",
    "RTPROT_VLANINFRA",
    "Mark",
    "alias",
    "claim",
    "is_ours",
    "labels",
    "of_alias",
    "of_labels",
    "refusal",
    "require_owned",
    "spec_hash",
    "without_marks",
]

LABEL_PREFIX = "io.vlaninfra."
MANAGED = LABEL_PREFIX + "managed"
OWNER = LABEL_PREFIX + "owner"
RESOURCE = LABEL_PREFIX + "resource"
SPEC = LABEL_PREFIX + "spec"
_ALIAS_PREFIX = "vlaninfra:"
RTPROT_VLANINFRA = 57
"""vlaninfra's route protocol number: not assigned in the kernel's ``rtnetlink.h`` (kernel 2,
boot 3, static 4, ... dhcp 16, keepalived 18, babel 42, openr 99, bgp 186, isis 187, ospf
188, rip 189, eigrp 192), nor by iproute2's ``rt_protos`` or FRR (186-199)."""
ADHOC_OWNER = "adhoc"
"""The owner of objects made by a caller that names no stack (the agent used by hand)."""


class Mark(NamedTuple):
    """What a mark says: the owning stack and the spec hash (``""`` when not recorded)."""

    owner: str
    spec: str


def spec_hash(spec: Mapping[str, object]) -> str:
    """A short stable hash of the inputs that define an object.

    Example: ``spec_hash({"name": "lan", "parent": "eth0"})`` → ``"5b0e2c6a91f3"``
    """
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def labels(owner: str, spec: str | None, resource: str | None) -> dict[str, str]:
    """The Docker labels marking an object as ``owner``'s."""
    out = {MANAGED: "true", OWNER: owner, SPEC: spec or ""}
    if resource:
        out[RESOURCE] = resource
    return out


def of_labels(found: Mapping[str, str] | None) -> Mark | None:
    """The mark in a Docker object's labels, or None when it has none."""
    found = found or {}
    if found.get(MANAGED) != "true" or not found.get(OWNER):
        return None
    return Mark(found[OWNER], found.get(SPEC) or "")


def without_marks(found: Mapping[str, str] | None) -> dict[str, str]:
    """The labels but vlaninfra's own (what a user asked for)."""
    return {k: v for k, v in (found or {}).items() if not k.startswith(LABEL_PREFIX)}


def alias(owner: str, spec: str | None) -> str:
    """The link alias marking a link as ``owner``'s: ``vlaninfra:<owner>:<spec>``."""
    return f"{_ALIAS_PREFIX}{owner}:{spec or ''}"


def of_alias(value: object) -> Mark | None:
    """The mark in a link alias, or None when it is not vlaninfra's (or not an alias)."""
    if not isinstance(value, str) or not value.startswith(_ALIAS_PREFIX):
        return None
    owner, _, spec = value[len(_ALIAS_PREFIX):].rpartition(":")
    return Mark(owner, spec) if owner else None


def claim(what: str, mark: Mark | None, owner: str, spec: str | None = None,
          legacy: bool = False, how_marked: str = "vlaninfra label") -> None:
    """Raise ``EEXIST`` unless the existing object ``what`` is ``owner``'s (and has ``spec``
    when given). ``legacy``: state recorded this very object before marks existed.

    Example: ``claim("container 'web'", None, "infra/prod")`` raises "container 'web' exists
    and is not owned by vlaninfra (no vlaninfra label) ..."
    """
    if mark is None:
        if legacy:
            return
        raise OpError(errno.EEXIST, f"{what} exists and is not owned by vlaninfra (no "
                                    f"{how_marked}); vlaninfra leaves it alone: rename yours "
                                    "in the config or remove it from the host", owner=None)
    if mark.owner != owner:
        raise OpError(errno.EEXIST, f"{what} exists and is owned by stack {mark.owner!r}; "
                                    "vlaninfra leaves it alone: rename yours in the config",
                      owner=mark.owner)
    if spec is not None and mark.spec != spec:
        raise OpError(errno.EEXIST, f"{what} exists, made by this stack with another spec "
                                    f"({mark.spec or 'none'}, wanted {spec}): it was left by an "
                                    "earlier run with other settings; remove it from the host "
                                    "and run `pulumi up` again", owner=mark.owner)


def is_ours(mark: Mark | None, owner: str, legacy: bool = False) -> bool:
    """Whether an object with ``mark`` may be changed or removed by ``owner``."""
    return mark.owner == owner if mark is not None else legacy


def refusal(what: str, mark: Mark | None, owner: str, legacy: bool = False) -> str | None:
    """Why ``owner`` may not change or remove ``what`` (None when it may: see :func:`is_ours`).

    Example: ``refusal("link 'eth1'", None, "infra/prod")`` → ``"link 'eth1' is not owned by
    vlaninfra"``
    """
    if is_ours(mark, owner, legacy):
        return None
    return f"{what} is " + (f"owned by stack {mark.owner!r}" if mark else
                            "not owned by vlaninfra")


def require_owned(what: str, mark: Mark | None, owner: str, legacy: bool = False) -> None:
    """Raise ``EPERM`` (saying what to do) unless ``owner`` may change ``what``."""
    why = refusal(what, mark, owner, legacy)
    if why:
        raise OpError(errno.EPERM, f"{why}; vlaninfra leaves it alone: remove it on the host if "
                                   "it is stale, or give yours another name in the config, or "
                                   "forget it with `pulumi state delete <urn>`",
                      owner=mark.owner if mark else None)
