"""The typed change between two plans, in network terms (what `vlaninfra diff` shows)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Action",
    "ContainerChange",
    "Diff",
    "Endpoint",
    "FieldChange",
    "Finding",
    "NetworkChange",
    "ParentChange",
    "ShimChange",
    "UpstreamChange",
]

Action = Literal["add", "remove", "move", "replace", "update"]
"""add/remove: new or gone; move: another host or network; replace: re-created in place
(stopped and started again); update: changed in place, nothing restarted."""


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One changed property, e.g. ``FieldChange("ipam 192.0.2.0/24 aux_addresses", "...", ...)``."""

    field: str
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a container is and how it is addressed, e.g. ``Endpoint("h1", "pub_net", ...)``."""

    host: str
    network: str
    ipv4: str | None
    ipv6: str | None
    mac: str | None
    image: str
    tenant: str | None


@dataclass(frozen=True, slots=True)
class ContainerChange:
    """A container added, removed, moved, re-created or updated."""

    site: str
    name: str
    action: Action
    old: Endpoint | None
    new: Endpoint | None
    fields: tuple[FieldChange, ...]
    restarts: bool
    """True when the container is stopped: removed, or re-created (also on another host)."""
    because_of: str | None = None
    """``host/network`` whose replacement re-creates it (collateral), else None."""


@dataclass(frozen=True, slots=True)
class NetworkChange:
    """A Docker network on one host created, removed or replaced (Docker cannot update one)."""

    site: str
    host: str
    name: str
    action: Action
    driver: str
    parent: str
    subnets: tuple[str, ...]
    fields: tuple[FieldChange, ...]
    """For a replacement: the properties that force it, old → new."""
    restarts: tuple[str, ...]
    """For a replacement: every existing container on it, re-created with it."""


@dataclass(frozen=True, slots=True)
class ShimChange:
    """A host shim added, removed, replaced or updated (address, routes)."""

    site: str
    host: str
    name: str
    network: str
    action: Action
    address: str
    fields: tuple[FieldChange, ...]
    routes_added: tuple[str, ...]
    routes_removed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class UpstreamChange:
    """A static route the site's router needs: added, removed, or another next hop."""

    site: str
    prefix: str
    action: Action
    old_via: str | None
    new_via: str | None
    tenant: str | None
    applied: bool
    """True when a managed router of the site gets it from vlaninfra; else the operator does."""


@dataclass(frozen=True, slots=True)
class ParentChange:
    """An 802.1Q parent (``eth0.50``) vlaninfra creates or removes on a host."""

    site: str
    host: str
    name: str
    trunk: str
    vlan_id: int
    action: Action


@dataclass(frozen=True, slots=True)
class Finding:
    """A validation finding of the new layout that the deployed one did not have."""

    severity: str
    path: str
    message: str


@dataclass(frozen=True, slots=True)
class Diff:
    """The whole change, e.g. ``compare(old_plan, new_plan, stack="lab", base="version 3")``."""

    stack: str
    base: str
    """What is compared against, e.g. ``version 3 (verified, 2026-11-29T09:00:00Z)``."""
    base_version: int | None
    containers: tuple[ContainerChange, ...]
    networks: tuple[NetworkChange, ...]
    shims: tuple[ShimChange, ...]
    upstream_routes: tuple[UpstreamChange, ...]
    vlan_parents: tuple[ParentChange, ...]
    tenants_added: tuple[str, ...]
    tenants_removed: tuple[str, ...]
    findings: tuple[Finding, ...]

    @property
    def empty(self) -> bool:
        """True when the layouts are the same in network terms."""
        return not (self.containers or self.networks or self.shims or self.upstream_routes
                    or self.vlan_parents or self.tenants_added or self.tenants_removed)

    @property
    def restarted(self) -> tuple[ContainerChange, ...]:
        """Existing containers this change stops (removed, moved to a host, re-created)."""
        return tuple(c for c in self.containers if c.restarts)

    @property
    def replaced_networks(self) -> tuple[NetworkChange, ...]:
        """Networks re-created, each with the containers it takes down."""
        return tuple(n for n in self.networks if n.action == "replace")
