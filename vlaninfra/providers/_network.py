"""Docker macvlan/ipvlan networks: one network object in one host's daemon."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, ReadResult, UpdateResult
from typing_extensions import TypedDict

from vlaninfra.errors import VlanInfraError
from vlaninfra.host import marks
from vlaninfra.host.contract import (
    CONTAINER_INSPECT,
    DEFAULT_MODE,
    NETWORK_CREATE,
    NETWORK_INSPECT,
    NETWORK_REMOVE,
    ContractError,
    Driver,
    IpamPool,
    Named,
    NetworkCreate,
    NetworkRemove,
    NetworkSpec,
    driver_of,
    encode,
    flag_of,
    mode_of,
    run,
)
from vlaninfra.transport import Agent, checking

from ._args import LanAddress
from ._base import HostProvider, docker_clash, nic_missing
from ._container import _addr, address_probe, probe_ahead
from ._host import CONFIG_PATH, CONNECTION, UNKNOWN, Props, has_unknowns

__all__ = [
    "LAN_ADDRESSES",
    "NetworkInputs",
    "NetworkProvider",
    "PoolInputs",
    "network_spec",
    "normalize_ipam",
]

LAN_ADDRESSES = "lan_addresses"
"""Property: the addresses the plan gives containers on this network on this host that the LAN
may answer for, ``[{key: ipv4|ipv6, address, mac, device, name}]``. Not an input
of the network (never a reason to change it): its check probes the new ones at once, so that
its containers' checks find their answers ready instead of probing one after another."""


class PoolInputs(TypedDict):
    """One IPAM pool in its canonical form (`normalize_ipam`)."""

    subnet: str
    gateway: str | None
    ip_range: str | None
    aux_addresses: dict[str, str]


class NetworkInputs(TypedDict):
    """A network's inputs as `NetworkProvider.normalize` reads them from Pulumi's properties."""

    name: str | None
    driver: str | None
    parent: str | None
    mode: str
    flag: str | None
    ipam: list[PoolInputs]
    internal: bool
    enable_ipv6: bool
    labels: dict[str, str]


def normalize_ipam(pools: Iterable[Props] | None) -> list[PoolInputs]:
    """IPAM pools in one canonical, order-free form: sorted by subnet, absent values as None.

    Example: ``normalize_ipam([{"subnet": "192.0.2.0/24"}])`` →
    ``[{"subnet": "192.0.2.0/24", "gateway": None, "ip_range": None, "aux_addresses": {}}]``
    """
    out: list[PoolInputs] = []
    for pool in pools or []:
        aux = pool.get("aux_addresses") or {}
        out.append(PoolInputs(
            subnet=(UNKNOWN if pool["subnet"] == UNKNOWN  # known once applied: as it is
                    else str(ipaddress.ip_network(pool["subnet"], strict=False))),
            gateway=pool.get("gateway") or None,
            ip_range=pool.get("ip_range") or None,
            aux_addresses={str(k): str(aux[k]) for k in sorted(aux)},
        ))
    return sorted(out, key=lambda p: p["subnet"])


def _parses(key: str, value: str) -> bool:
    """Whether an IPAM pool's ``key`` (subnet, ip_range: a network; gateway: an address)
    holds a value Docker and `normalize_ipam` can read."""
    try:
        if key == "gateway":
            ipaddress.ip_address(value)
        else:
            ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


def network_spec(n: NetworkInputs) -> NetworkSpec:
    """The contract's spec of normalized inputs ``n``; ``ContractError`` when they do not fit.

    Example: ``network_spec(NetworkProvider().normalize(props)).docker_options()``
    """
    driver = driver_of(n["driver"])
    return NetworkSpec(
        name=str(n["name"]), driver=driver, parent=str(n["parent"]),
        mode=mode_of(driver, n["mode"]), flag=flag_of(driver, n["flag"]),
        ipam=tuple(IpamPool(p["subnet"], p["gateway"], p["ip_range"], p["aux_addresses"])
                   for p in n["ipam"]),
        internal=n["internal"], enable_ipv6=n["enable_ipv6"], labels=n["labels"])


def _without_daemon_fill(actual: list[PoolInputs], wanted: list[PoolInputs]
                         ) -> list[PoolInputs]:
    """Actual pools with the values the daemon chose itself (a gateway nobody asked for) removed,
    so a refresh never reports them as drift."""
    asked = {p["subnet"]: p for p in wanted}
    out = []
    for pool in actual:
        mine = asked.get(pool["subnet"])
        if mine is not None and mine["gateway"] is None:
            pool = pool.copy()
            pool["gateway"] = None
        out.append(pool)
    return out


class NetworkProvider(HostProvider):
    """Creates, reads, replaces and removes one Docker macvlan or ipvlan network on one host.

    Docker has no network update API: every property of the network itself is a replace-key
    (the engine deletes and re-creates it, and the containers on it with it); labels included.
    """

    KIND = "network"
    REPLACE_KEYS = frozenset(
        {"name", "driver", "parent", "mode", "flag", "ipam", "internal", "enable_ipv6", "labels"}
    )
    INPUT_KEYS = REPLACE_KEYS
    OUTPUT_KEYS = frozenset({"network_id"})

    def normalize(self, props: Props) -> NetworkInputs:
        driver = props.get("driver")
        default_mode = DEFAULT_MODE[Driver.MACVLAN if driver == "macvlan" else Driver.IPVLAN]
        return NetworkInputs(
            name=props.get("name"),
            driver=driver,
            parent=props.get("parent"),
            mode=props.get("mode") or default_mode.value,
            flag=props.get("flag") or None,
            ipam=normalize_ipam(props.get("ipam")),
            internal=bool(props.get("internal", False)),
            enable_ipv6=bool(props.get("enable_ipv6", False)),
            labels=dict(sorted((props.get("labels") or {}).items())),
        )

    def validate(self, news: Props) -> list[CheckFailure]:
        where = news.get(CONFIG_PATH) or "network"
        errors: list[ContractError] = []
        try:
            driver = driver_of(news.get("driver"))
        except ContractError as err:
            errors.append(err)
            driver = Driver.IPVLAN  # its modes are what the message lists (as before)
        for check, key in ((mode_of, "mode"), (flag_of, "flag")):
            try:
                check(driver, news.get(key))
            except ContractError as err:
                errors.append(err)
        failures = [CheckFailure(err.field or "", f"{where}.{err.message}") for err in errors]
        pools = news.get("ipam")
        for i, pool in enumerate(pools if isinstance(pools, list) else []):
            if not isinstance(pool, dict):
                failures.append(CheckFailure("ipam", f"{where}.subnets[{i}]: {pool!r} is not a "
                                                     "pool (subnet, gateway, ip_range)"))
                continue
            if not pool.get("subnet"):
                failures.append(CheckFailure("ipam", f"{where}.subnets[{i}].subnet: missing"))
            for key in ("subnet", "ip_range", "gateway"):
                value = pool.get(key)
                if isinstance(value, str) and value != UNKNOWN and not _parses(key, value):
                    what = "an IP address" if key == "gateway" else "a network (a.b.c.d/len)"
                    failures.append(CheckFailure("ipam", f"{where}.subnets[{i}].{key}: "
                                                         f"{value!r} is not {what}"))
        return failures

    def validate_on_host(self, agent: Agent, news: Props) -> list[CheckFailure]:
        return nic_missing(agent, news, "parent", "network")

    def check(self, olds: Props, news: Props) -> CheckResult:
        result = super().check(olds, news)
        if not result.failures:
            self._probe_ahead(olds, news)
        return result

    def _probe_ahead(self, olds: Props, news: Props) -> None:
        """Probes in one ``probe.run`` the planned addresses new since the last run (none on
        a run that changes nothing: no host is asked) that no container of this stack holds
        on this network yet (from the check snapshot, no extra round trip). Only warms the
        cache (in the background: the next check does not wait for it): each container's
        check still judges and reports its own address."""
        before = (olds.get(LAN_ADDRESSES) or []) if olds else []
        planned: list[LanAddress] = [a for a in news.get(LAN_ADDRESSES) or [] if a not in before]
        if not planned or has_unknowns(planned) or has_unknowns(news.get(CONNECTION)):
            return
        try:
            with checking():
                agent = self.agent(news)
                probes = [address_probe(a["key"], a["device"], a["address"], a.get("mac"))
                          for a in planned if not self._held(agent, news, a)]
                if probes:
                    probe_ahead(agent, news, probes)
        except VlanInfraError:
            pass  # the containers' checks probe on their own and say what failed

    def _held(self, agent: Agent, news: Props, planned: LanAddress) -> bool:
        """Whether this stack's container already holds the planned address on this network
        (it is not about to be assigned)."""
        found = run(agent, CONTAINER_INSPECT, Named(planned["name"]))
        if found is None or not marks.is_ours(marks.of_labels(found.labels), self.owner(news)):
            return False
        attached = found.networks.get(news["name"])
        held = getattr(attached, planned["key"]) if attached else None  # ipv4 or ipv6
        return _addr(held) == _addr(planned["address"])

    def clash(self, agent: Agent, news: Props) -> str | None:
        found = run(agent, NETWORK_INSPECT, Named(news["name"]))
        return docker_clash(self.KIND, found.labels if found else None, news, self.owner(news))

    def create(self, props: Props) -> CreateResult:
        with self.failing(props, "create"):
            found = run(self.agent(props), NETWORK_CREATE,
                        NetworkCreate(network_spec(self.normalize(props)), self.mark(props)))
        return CreateResult(id_=found.id, outs={**props, "network_id": found.id})

    def read(self, id_: str, props: Props) -> ReadResult:
        found = self.read_op(props, NETWORK_INSPECT, Named(props["name"]))
        if found is None or found.id != id_:
            return ReadResult(id_="", outs={})
        wanted = self.normalize(props)
        # Same canonical form as the desired inputs, so that only real drift makes a diff.
        actual = self.as_found(props, {
            "name": found.name,
            "driver": found.driver,
            "parent": found.parent,
            "mode": found.mode,
            "flag": found.flag,
            "ipam": _without_daemon_fill(normalize_ipam(encode(found.ipam)),
                                         wanted["ipam"]),
            "internal": found.internal,
            "enable_ipv6": found.enable_ipv6,
            "labels": marks.without_marks(found.labels),
        })
        return self.read_result(id_, props, {**actual, "network_id": found.id})

    def update(self, _id: str, _olds: Props, news: Props) -> UpdateResult:
        # Only the transport properties (how to reach the host) can change without replacement.
        return UpdateResult(outs={**_olds, **news})

    def delete(self, _id: str, props: Props) -> None:
        self.remove(props, NETWORK_REMOVE, NetworkRemove(
            props["name"], self.owner(props), props.get("network_id")))
