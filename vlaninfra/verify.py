"""Verification: after an apply, check through the agents what the layout promises.

What is checked, from the plan alone (`checks_for`, pure):
- the management path to every host and managed router answers (the agent's hello);
- each container runs with its planned IPv4 and IPv6 addresses and MAC;
- it reaches its gateways (`ping` inside the container; macvlan and ipvlan L2 networks);
- no other LAN device answers for its addresses (ARP, for IPv6 NDP probes from the host);
- each host reaches its own containers through its shim (each family the shim has an
  address of), where the layout has one;
- each managed router reaches the containers in routed subnets (ipvlan L3, macvlan tenants)
  through its routes;
- the user's probes (``sites.<site>.probes``): from a host, a container or the managed router
  to a container or an address, a TCP connect or a ping, expected to reach or to be blocked.

`verify` runs the checks of every host in parallel (one `probe.run` round trip per host) and
returns a `Verification`, whose `table()` is the demo's reachability table generalised.

Example::

    result = verify(the_plan, hosts_of(layout), routers_of(layout))
    print(result.table()); assert result.ok
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from vlaninfra._text import table
from vlaninfra.errors import VlanInfraError
from vlaninfra.host.contract import ROUTED
from vlaninfra.layout import ContainerPlan, HostPlan, IPAddress, Plan, ProbePlan, SitePlan

__all__ = ["Check", "Row", "Verification", "checks_for", "verify"]

HOST_TIMEOUT = 20.0
"""Seconds one host (or router) gets to answer all its checks."""


@dataclass(frozen=True)
class Check:
    """One check to run on a host or router, e.g. ``Check("h1", "gateway", "web1 -> 192.0.2.1",
    {"kind": "exec-ping", "container": "web1", "target": "192.0.2.1"})``."""

    where: str
    """The host or router that runs it."""
    check: str
    """What is checked: management, container, gateway, address-unique, shim, router, probe."""
    target: str
    args: Mapping[str, Any]
    """The agent's check (``probe.run``), or empty for the management check."""


@dataclass(frozen=True)
class Row:
    """One line of the verification table."""

    where: str
    check: str
    target: str
    ok: bool | None
    """None: could not be judged (e.g. no ping in the image); not a failure."""
    ms: float
    detail: str

    @property
    def result(self) -> str:
        return {True: "ok", False: "FAIL", None: "n/a"}[self.ok]


@dataclass(frozen=True)
class Verification:
    """All rows of one verification and how long it took."""

    rows: tuple[Row, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(r.ok is not False for r in self.rows)

    @property
    def failed(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.ok is False)

    def table(self) -> str:
        """The rows as an aligned text table (host, check, target, result, ms, detail)."""
        head = ("host", "check", "target", "result", "ms", "detail")
        rows = [(r.where, r.check, r.target, r.result, f"{r.ms:.0f}", r.detail)
                for r in self.rows]
        return "\n".join(table(head, rows))

    def to_json(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 2),
                "rows": [[r.where, r.check, r.target, r.ok, r.ms, r.detail] for r in self.rows]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Verification:
        return cls(tuple(Row(*r) for r in data.get("rows", ())), float(data.get("seconds", 0)))


def _addresses(c: ContainerPlan) -> list[IPAddress]:
    return [a for a in (c.ipv4, c.ipv6) if a is not None]


def _gateways(host: HostPlan, c: ContainerPlan) -> list[str]:
    net = next(n for n in host.networks if n.name == c.network)
    if net.internal or net.mode in ROUTED:
        return []
    return [str(s.gateway) for a in _addresses(c) for s in net.subnets
            if s.gateway is not None and a in s.subnet][:2]


def _host_checks(site: SitePlan, host: HostPlan) -> list[Check]:
    checks = [Check(host.name, "management", "agent hello", {})]
    for c in host.containers:
        net = next(n for n in host.networks if n.name == c.network)
        checks.append(Check(host.name, "container",
                            " ".join(str(x) for x in (c.name, c.ipv4, c.ipv6, c.mac) if x),
                            {"kind": "container", "name": c.name, "network": c.network,
                             "ipv4": str(c.ipv4) if c.ipv4 else None, "mac": c.mac,
                             **({"ipv6": str(c.ipv6)} if c.ipv6 else {})}))
        for gateway in _gateways(host, c):
            checks.append(Check(host.name, "gateway", f"{c.name} -> {gateway}",
                                {"kind": "exec-ping", "container": c.name, "target": gateway}))
        if not net.internal and net.mode not in ROUTED:
            for a in _addresses(c):
                checks.append(Check(host.name, "address-unique", f"{a} on {net.parent}", {
                    "kind": "arp-unique" if a.version == 4 else "ndp-unique",
                    "device": net.parent, "address": str(a), "own": [c.mac] if c.mac else []}))
    for shim in host.shims:
        families = {a.version for a in shim.addresses}
        for c in host.containers:
            for a in _addresses(c):
                if c.network == shim.network and a.version in families:
                    checks.append(Check(host.name, "shim", f"{host.name} -> {c.name} {a}",
                                        {"kind": "ping", "target": str(a)}))
    return checks


def _probe_check(p: ProbePlan) -> Check:
    """A user probe as the agent's check: ``tcp`` with a port, else a ping from the member
    (``ping``) or from inside the container (``exec-ping``)."""
    args: dict[str, Any] = {"target": str(p.target), "expect": p.expect}
    if p.port is not None:
        args.update(kind="tcp", port=p.port)
        if p.container is not None:
            args["container"] = p.container
    elif p.container is not None:
        args.update(kind="exec-ping", container=p.container)
    else:
        args["kind"] = "ping"
    return Check(p.member, "probe", p.label, args)


def checks_for(plan: Plan) -> dict[tuple[str, str], list[Check]]:
    """Every check of `plan`, by (site, host or router name). Pure.

    Example: ``checks_for(plan(layout))[("a", "h1")][0].check == "management"``
    """
    out: dict[tuple[str, str], list[Check]] = {}
    for site in plan.sites:
        probes: dict[tuple[bool, str], list[Check]] = {}
        for p in site.probes:
            probes.setdefault((p.on_router, p.member), []).append(_probe_check(p))
        for host in site.hosts:
            out[(site.name, host.name)] = [*_host_checks(site, host),
                                           *probes.get((False, host.name), [])]
        prefixes = [r.prefix for r in site.upstream_routes]
        routed = [(h, c, a) for h in site.hosts for c in h.containers for a in _addresses(c)
                  if any(a in p for p in prefixes)]
        for router in site.routers:
            checks = [Check(router.name, "router", f"{router.name} -> {c.name} {a} ({h.name})",
                            {"kind": "ping", "target": str(a)}) for h, c, a in routed
                      ] + probes.get((True, router.name), [])
            if router.managed and checks:
                out[(site.name, router.name)] = [
                    Check(router.name, "management", "agent hello", {}), *checks]
    return out


def _run_member(agent_of: Any, member: Any, checks: list[Check]) -> list[Row]:
    started = time.monotonic()
    try:
        return _member_rows(agent_of, member, checks, started)
    except Exception as err:  # a malformed answer fails this member's rows, not the apply
        ms = (time.monotonic() - started) * 1000
        return [Row(c.where, c.check, c.target, False, ms,
                    f"not verified: {type(err).__name__}: {err}") for c in checks]


def _member_rows(agent_of: Any, member: Any, checks: list[Check], started: float) -> list[Row]:
    try:
        agent = agent_of(member)
        agent.start()
    except VlanInfraError as err:
        ms = (time.monotonic() - started) * 1000
        return [Row(c.where, c.check, c.target, False, ms,
                    f"management path down: {err}" if c.check == "management" else "not run")
                for c in checks]
    rows = [Row(checks[0].where, "management", "agent hello", True,
                (time.monotonic() - started) * 1000, "answers")]
    probes = [c for c in checks if c.args]
    if probes:
        try:
            results = agent.call("probe.run", checks=[dict(c.args) for c in probes],
                                 timeout=HOST_TIMEOUT)
        except VlanInfraError as err:
            results = [{"ok": False, "ms": 0.0, "detail": f"probe failed: {err}"}] * len(probes)
        rows += [Row(c.where, c.check, c.target, r["ok"], r["ms"], r["detail"])
                 for c, r in zip(probes, results, strict=True)]
    return rows


def verify(plan: Plan, hosts: Mapping[tuple[str, str], Any],
           routers: Mapping[tuple[str, str], Any] | None = None,
           config: Any = None) -> Verification:
    """Runs `checks_for(plan)` on every host and managed router in parallel. `hosts` and
    `routers` map (site, name) to a `vlaninfra.providers.DockerHost`; `config` looks up secret
    stack config keys (the SSH private key) as the providers do.

    Example: ``verify(the_plan, hosts_of(layout), routers_of(layout)).ok``
    """
    from vlaninfra.providers._host import CONNECTION, target_of
    from vlaninfra.transport import agent_for

    def agent_of(member: Any) -> Any:
        return agent_for(target_of({CONNECTION: member.connection()}, config))

    members = {**hosts, **(routers or {})}
    started = time.monotonic()
    work = [(members[key], checks) for key, checks in checks_for(plan).items() if key in members]
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(work)))) as pool:
        done = list(pool.map(lambda w: _run_member(agent_of, *w), work))
    return Verification(tuple(r for rows in done for r in rows), time.monotonic() - started)
