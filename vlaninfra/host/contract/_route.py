"""Static routes on an upstream router: ``destination via <via> [dev <dev>]``, proto 57."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from ._codec import ContractError, Json, Op, as_, of_mapping
from ._links import Deleted

__all__ = ["ROUTE_DELETE", "ROUTE_ENSURE", "ROUTE_GET", "ROUTE_READ", "RouteDelete",
           "RouteEnsure", "RouteGet", "RouteRead", "RouteSpec", "RouteState"]


@dataclass(frozen=True)
class RouteSpec:
    """A route, e.g. ``RouteSpec("198.18.1.0/24", "192.0.2.21")``."""

    destination: str
    via: str
    dev: str | None = None

    def __post_init__(self) -> None:
        try:
            dst = ipaddress.ip_network(self.destination)
        except ValueError as err:
            raise ContractError(f"destination: {err}", "destination") from None
        try:
            via = ipaddress.ip_address(self.via)
        except ValueError as err:
            raise ContractError(f"via: {err}", "via") from None
        if via.version != dst.version:
            raise ContractError(f"next hop {via} is not IPv{dst.version}", "via")


@dataclass(frozen=True)
class RouteState:
    """A main-table route as the host has it (see ``facts.route_list``); ``created`` (ensure:
    whether the call changed anything), ``persisted`` (reads asked to check its boot file)."""

    dst: str
    gateway: str | None
    dev: str | None
    scope: str
    proto: str
    metric: int | None
    created: bool | None = None
    persisted: str | None = None

    @classmethod
    def of_route(cls, found: Mapping[str, Json]) -> RouteState:
        """From the agent's route dict (``facts.route_get``, plus what an op added)."""
        return cls(**{f: found[f] for f in cls.__dataclass_fields__ if f in found})


@dataclass(frozen=True)
class RouteEnsure:
    """Converge ``spec``. ``legacy_via``: the next hop of a ``proto static`` route state
    recorded (claimed); ``recorded_via``: the next hop state recorded (its route is replaced);
    ``persist_owner``: also keep its boot file."""

    spec: RouteSpec
    legacy_via: str | None = None
    recorded_via: str | None = None
    persist_owner: str | None = None


@dataclass(frozen=True)
class RouteRead:
    """Read the route to ``dst``; ``persist_owner``: also check its boot file."""

    dst: str
    persist_owner: str | None = None


@dataclass(frozen=True)
class RouteDelete:
    """Delete vlaninfra's route ``dst via <via>`` (``legacy``: also the ``proto static`` one
    state recorded); ``persist_owner``: also remove its boot file."""

    dst: str
    via: str
    legacy: bool = False
    persist_owner: str | None = None


@dataclass(frozen=True)
class RouteGet:
    """The route to exactly ``dst``."""

    dst: str


_route = of_mapping("a route", RouteState.of_route)
ROUTE_GET: Op[RouteGet, RouteState | None] = Op("route.get", RouteGet, _route)
ROUTE_ENSURE: Op[RouteEnsure, RouteState] = Op("route.ensure", RouteEnsure, as_(RouteState))
ROUTE_READ: Op[RouteRead, RouteState | None] = Op("route.read", RouteRead, _route)
ROUTE_DELETE: Op[RouteDelete, Deleted] = Op("route.delete", RouteDelete, as_(Deleted))
