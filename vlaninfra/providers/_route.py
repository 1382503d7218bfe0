"""Upstream routes: the static route a site's managed router needs to reach a tenant's
ipvlan L3 subnet (`198.18.1.0/24 via <host LAN address>`), applied over the same SSH + netlink
path as the hosts."""

from __future__ import annotations

import ipaddress

from pulumi.dynamic import CheckFailure, ReadResult
from typing_extensions import TypedDict

from vlaninfra.host.contract import (
    ROUTE_DELETE,
    ROUTE_ENSURE,
    ROUTE_GET,
    ROUTE_READ,
    ContractError,
    RouteDelete,
    RouteEnsure,
    RouteGet,
    RouteRead,
    RouteSpec,
    run,
)
from vlaninfra.transport import Agent

from ._base import ConvergingProvider
from ._host import CONFIG_PATH, PERSIST, Props, host_label

__all__ = ["RouteInputs", "RouterRouteProvider"]


class RouteInputs(TypedDict):
    """A route's inputs as `RouterRouteProvider.normalize` reads them from Pulumi's
    properties."""

    destination: str | None
    via: str | None
    dev: str | None
    persist: bool


def _net(value: object) -> str | None:
    try:
        return str(ipaddress.ip_network(str(value)))
    except ValueError:
        return None if value is None else str(value)


def _addr(value: object) -> str | None:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        return None if value is None else str(value)


class RouterRouteProvider(ConvergingProvider):
    """Adds, reads, converges and removes one static route on one router (`proto static`).

    The destination is the route's identity (a replace-key); a new next hop or device is
    converged in place (the router's route is replaced). A route found through another next
    hop on refresh is drift the next `up` repairs; a route found gone makes the resource gone.
    """

    KIND = "route"
    REPLACE_KEYS = frozenset({"destination"})
    SPEC_KEYS = frozenset({"destination", "via", "dev"})
    INPUT_KEYS = SPEC_KEYS | {PERSIST}
    OUTPUT_KEYS = frozenset({"out_dev", "proto"})
    PERSISTS = True

    def normalize(self, props: Props) -> RouteInputs:
        return RouteInputs(destination=_net(props.get("destination")),
                           via=_addr(props.get("via")), dev=props.get("dev") or None,
                           persist=bool(props.get(PERSIST)))

    def validate(self, news: Props) -> list[CheckFailure]:
        where = news.get(CONFIG_PATH) or "route"
        try:
            RouteSpec(str(news.get("destination")), str(news.get("via")))
        except ContractError as err:
            return [CheckFailure(err.field or "", f"{where}: {err.message}")]
        return []

    def clash(self, agent: Agent, news: Props) -> str | None:
        n = self.normalize(news)
        found = run(agent, ROUTE_GET, RouteGet(str(n["destination"])))
        if found is None:
            return None
        if found.proto == "vlaninfra":
            if found.gateway == n["via"]:
                return None  # left by an earlier run of this route: adopted
            return (f"a vlaninfra route to {n['destination']} via {found.gateway} "
                    f"exists on router {host_label(news)} (another stack's, or a leftover); "
                    f"vlaninfra leaves it alone: if it is stale, remove it there (`ip route "
                    f"del {n['destination']} proto 57`), else route {n['destination']} from "
                    "one stack only")
        return (f"a route to {n['destination']} via {found.gateway or found.dev} "
                f"owned by protocol {found.proto!r} exists on router "
                f"{host_label(news)}; vlaninfra leaves it alone: remove it there, or drop "
                f"{n['destination']} from the routes vlaninfra manages")

    def converge(self, props: Props, what: str, olds: Props | None) -> Props:
        n = self.normalize(props)
        # A route added before vlaninfra had its own protocol is `proto static`: state knows it.
        legacy = _addr(olds.get("via")) if olds and olds.get("proto") == "static" else None
        with self.failing(props, what):
            found = run(self.agent(props), ROUTE_ENSURE, RouteEnsure(
                RouteSpec(str(n["destination"]), str(n["via"]), n["dev"]), legacy_via=legacy,
                recorded_via=_addr(olds.get("via")) if olds else None,
                persist_owner=self.persist_owner(props)))
        return {**props, "out_dev": found.dev, "proto": found.proto}

    def object_id(self, props: Props) -> str:
        return f"{props['host']}/{_net(props['destination'])}"

    def read(self, id_: str, props: Props) -> ReadResult:
        found = self.read_op(props, ROUTE_READ,
                             RouteRead(str(_net(props["destination"])), self.persist_owner(props)))
        if found is None or found.gateway is None:
            return ReadResult(id_="", outs={})
        actual = self.as_found(props, {
            "destination": found.dst,
            "via": found.gateway,
            "dev": found.dev if props.get("dev") else None,
            PERSIST: self.persisted(found, props),
        })
        return self.read_result(id_, props, {**actual, "out_dev": found.dev, "proto": found.proto})

    def delete(self, _id: str, props: Props) -> None:
        n = self.normalize(props)
        with self.failing(props, "remove"):
            run(self.agent(props), ROUTE_DELETE, RouteDelete(
                str(n["destination"]), str(n["via"]), props.get("proto") == "static",
                self.persist_owner(props, deleting=True)))
