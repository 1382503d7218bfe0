"""Upstream routes: the static route a site's managed router needs to reach a tenant's
ipvlan L3 subnet (`198.18.1.0/24 via <host LAN address>`), applied over the same SSH + netlink
path as the hosts."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from pulumi.dynamic import CheckFailure, CreateResult, ReadResult, UpdateResult

from vlaninfra.errors import VlanInfraError
from vlaninfra.transport import Agent

from ._base import CONFIG_PATH, PERSIST, HostProvider, host_label

__all__ = ["RouterRouteProvider"]


def _net(value: Any) -> str | None:
    try:
        return str(ipaddress.ip_network(str(value)))
    except ValueError:
        return None if value is None else str(value)


def _addr(value: Any) -> str | None:
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        return None if value is None else str(value)


class RouterRouteProvider(HostProvider):
    """Adds, reads, converges and removes one static route on one router (`proto static`).

    The destination is the route's identity (a replace-key); a new next hop or device is
    converged in place (the router's route is replaced). A route found through another next
    hop on refresh is drift the next `up` repairs; a route found gone makes the resource gone.
    """

    KIND = "route"
    REPLACE_KEYS = frozenset({"destination"})
    SPEC_KEYS = frozenset({"destination", "via", "dev"})
    INPUT_KEYS = SPEC_KEYS | {PERSIST}
    PERSISTS = True

    def normalize(self, props: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "destination": _net(props.get("destination")),
            "via": _addr(props.get("via")),
            "dev": props.get("dev") or None,
            PERSIST: bool(props.get(PERSIST)),
        }

    def validate(self, news: Mapping[str, Any]) -> list[CheckFailure]:
        where = news.get(CONFIG_PATH) or "route"
        try:
            dst = ipaddress.ip_network(str(news.get("destination")))
        except ValueError as err:
            return [CheckFailure("destination", f"{where}: destination: {err}")]
        try:
            via = ipaddress.ip_address(str(news.get("via")))
        except ValueError as err:
            return [CheckFailure("via", f"{where}: via: {err}")]
        if via.version != dst.version:
            return [CheckFailure("via", f"{where}: next hop {via} is not IPv{dst.version}")]
        return []

    def clash(self, agent: Agent, news: Mapping[str, Any]) -> str | None:
        n = self.normalize(news)
        found = agent.call("route.get", dst=n["destination"])
        if found is None:
            return None
        if found.get("proto") == "vlaninfra":
            if found.get("gateway") == n["via"]:
                return None  # left by an earlier run of this route: adopted
            return (f"a vlaninfra route to {n['destination']} via {found.get('gateway')} "
                    f"exists on router {host_label(news)} (another stack's, or a leftover); "
                    f"vlaninfra leaves it alone: if it is stale, remove it there (`ip route "
                    f"del {n['destination']} proto 57`), else route {n['destination']} from "
                    "one stack only")
        return (f"a route to {n['destination']} via {found.get('gateway') or found.get('dev')} "
                f"owned by protocol {found.get('proto')!r} exists on router "
                f"{host_label(news)}; vlaninfra leaves it alone: remove it there, or drop "
                f"{n['destination']} from the routes vlaninfra manages")

    def _ensure(self, props: Mapping[str, Any], olds: Mapping[str, Any] | None = None,
                ) -> dict[str, Any]:
        n = self.normalize(props)
        # A route added before vlaninfra had its own protocol is `proto static`: state knows it.
        legacy = _addr(olds.get("via")) if olds and olds.get("proto") == "static" else None
        found = self.agent(props).call(
            "route.ensure", dst=n["destination"], via=n["via"], dev=n["dev"], legacy_via=legacy,
            recorded_via=_addr(olds.get("via")) if olds else None, **self.persist_args(props),
        )
        return {**props, "out_dev": found.get("dev"), "proto": found.get("proto")}

    def create(self, props: dict[str, Any]) -> CreateResult:
        try:
            outs = self._ensure(props)
        except VlanInfraError as err:
            raise self.fail(props, "create", err) from err
        return CreateResult(id_=f"{props['host']}/{_net(props['destination'])}", outs=outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        found = self.agent(props).call("route.read", dst=_net(props["destination"]),
                                       **self.persist_args(props))
        if found is None or found.get("gateway") is None:
            return ReadResult(id_="", outs={})
        actual = {
            **props,
            **self.normalize(
                {
                    "destination": found["dst"],
                    "via": found["gateway"],
                    "dev": found.get("dev") if props.get("dev") else None,
                    PERSIST: self.persisted(found, props),
                }
            ),
        }
        outs = {**actual, "out_dev": found.get("dev"), "proto": found.get("proto")}
        return ReadResult(id_=id_, outs=outs, inputs=actual)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        try:
            return UpdateResult(outs=self._ensure(news, _olds))
        except VlanInfraError as err:
            raise self.fail(news, "update", err) from err

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        n = self.normalize(props)
        try:
            self.agent(props).call("route.delete", dst=n["destination"], via=n["via"],
                                   legacy=props.get("proto") == "static",
                                   **self.persist_args(props, deleting=True))
        except VlanInfraError as err:
            raise self.fail(props, "remove", err) from err
