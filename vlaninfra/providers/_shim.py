"""Host shims: the macvlan (or ipvlan) interface on the host itself, with its address and
routes, through which the host reaches its own containers (the kernel isolates a parent from its
children)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from pulumi.dynamic import CheckFailure, ReadResult
from typing_extensions import TypedDict

from vlaninfra.host import marks
from vlaninfra.host.contract import (
    DEFAULT_MODE,
    LINK_GET,
    SHIM_DELETE,
    SHIM_ENSURE,
    SHIM_READ,
    ContractError,
    Driver,
    LinkRead,
    Named,
    ShimEnsure,
    ShimSpec,
    driver_of,
    mode_of,
    run,
)
from vlaninfra.transport import Agent

from ._base import ConvergingProvider, clash_of, nic_missing
from ._host import CONFIG_PATH, PERSIST, Props, has_unknowns, host_label

__all__ = ["ShimInputs", "ShimProvider", "shim_spec"]


class ShimInputs(TypedDict):
    """A shim's inputs as `ShimProvider.normalize` reads them from Pulumi's properties."""

    extra_addresses: list[str]
    name: str | None
    parent: str | None
    kind: str
    mode: str
    address: str | None
    routes: list[str]
    persist: bool


def _routes(routes: Iterable[str] | None) -> list[str]:
    return sorted({str(ipaddress.ip_network(r, strict=False)) for r in routes or []})


def shim_spec(n: ShimInputs) -> ShimSpec:
    """The contract's spec of normalized inputs ``n``; ``ContractError`` when they do not
    fit."""
    kind = driver_of(n["kind"])
    return ShimSpec(name=str(n["name"]), parent=str(n["parent"]), kind=kind,
                    mode=mode_of(kind, n["mode"]), address=n["address"],
                    routes=tuple(n["routes"]), extra_addresses=tuple(n["extra_addresses"]))


class ShimProvider(ConvergingProvider):
    """Creates, reads, converges and removes one shim link on one host.

    The link's name is its identity (a replace-key); parent, kind, mode, address and routes are
    converged in place by the host agent (it re-creates the link itself when kind or parent change).
    """

    KIND = "shim"
    REPLACE_KEYS = frozenset({"name"})
    SPEC_KEYS = frozenset({"name", "parent", "kind", "mode", "address", "routes",
                           "extra_addresses"})
    INPUT_KEYS = SPEC_KEYS | {PERSIST}
    OUTPUT_KEYS = frozenset({"mac_address", "ifindex"})
    PERSISTS = True

    def spec(self, props: Props) -> str:
        # A shim without further addresses keeps the mark it had before they existed.
        n = self.normalize(props)
        keys = self.SPEC_KEYS if n["extra_addresses"] else self.SPEC_KEYS - {"extra_addresses"}
        return marks.spec_hash({k: n.get(k) for k in sorted(keys)})

    def normalize(self, props: Props) -> ShimInputs:
        address = props.get("address")
        return ShimInputs(
            extra_addresses=sorted(str(ipaddress.ip_interface(a))
                                   for a in props.get("extra_addresses") or []),
            name=props.get("name"),
            parent=props.get("parent"),
            kind=props.get("kind") or Driver.MACVLAN.value,
            mode=props.get("mode") or DEFAULT_MODE[
                Driver.MACVLAN if props.get("kind", "macvlan") == "macvlan" else Driver.IPVLAN
            ].value,
            address=str(ipaddress.ip_interface(address)) if address else None,
            routes=_routes(props.get("routes")),
            persist=bool(props.get(PERSIST)),
        )

    def validate_on_host(self, agent: Agent, news: Props) -> list[CheckFailure]:
        return nic_missing(agent, news, "parent", "shim")

    def validate(self, news: Props) -> list[CheckFailure]:
        where = news.get(CONFIG_PATH) or "shim"
        if has_unknowns(news):
            return []
        try:
            shim_spec(self.normalize(news))
        except ContractError as err:
            return [CheckFailure(err.field or "", f"{where}.{err.message}")]
        except ValueError as err:  # an address that is not one
            return [CheckFailure("address", f"{where}: {err}")]
        return []

    def clash(self, agent: Agent, news: Props) -> str | None:
        found = run(agent, LINK_GET, Named(news["name"]))
        if found is None:
            return None
        clash = clash_of(f"link {news['name']!r} on host {host_label(news)}",
                         marks.of_alias(found.alias), self.owner(news),
                         how_marked="vlaninfra alias")
        where = news.get(CONFIG_PATH) or "shim"
        return f"{clash} (the shim's name is {where}.name)" if clash else None

    def converge(self, props: Props, what: str, olds: Props | None) -> Props:
        # The ifindex state recorded is claimed even without a mark (made before marks).
        ifindex = olds.get("ifindex") if olds else None
        with self.failing(props, what):
            found = run(self.agent(props), SHIM_ENSURE, ShimEnsure(
                shim_spec(self.normalize(props)), self.mark(props),
                int(ifindex) if ifindex is not None else None, self.persist_owner(props)))
        return {**props, "mac_address": found.mac, "ifindex": found.index}

    def read(self, id_: str, props: Props) -> ReadResult:
        found = self.read_op(props, SHIM_READ,
                             LinkRead(props["name"], self.persist_owner(props)))
        if found is None:
            return ReadResult(id_="", outs={})
        addresses = sorted(found.addresses)
        want = self.normalize(props)["address"]
        # The primary address is the one state has, else the only IPv4 one; the rest are
        # the further addresses (IPv6, tenant gateways). Several IPv4 ones and not state's:
        # no primary, all of them further addresses (drift the next `up` repairs).
        v4 = [a for a in addresses if ipaddress.ip_interface(a).version == 4]
        primary = want if want in addresses else (v4[0] if len(v4) == 1 else None)
        actual = self.as_found(props, {
            "name": found.name,
            "parent": found.parent,
            "kind": found.kind,
            "mode": found.mode,
            "address": primary,
            "extra_addresses": [a for a in addresses if a != primary],
            "routes": list(found.routes),
            PERSIST: self.persisted(found, props),
        })
        outs = {**actual, "mac_address": found.mac, "ifindex": found.index}
        return self.read_result(id_, props, outs)

    def delete(self, _id: str, props: Props) -> None:
        self.remove(props, SHIM_DELETE, self.link_delete(props))
