"""User probes (``sites.<site>.probes``): reachability checks that verification runs besides
the ones the layout implies. The config spec, the rules and the resolution into a
``ProbePlan`` (which `vlaninfra.verify` turns into agent checks) live here; the loader, the
validation and the plan each call in with one line.

Example (stack config)::

    probes:
      - {from: h1, to: web1, port: 80}                       # h1 reaches web1's port 80
      - {from: web1, to: 198.18.2.10, expect: blocked}       # web1 must not reach it
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Literal

from vlaninfra.errors import Problem

from ._model import IPAddress, Probe, ProbeExpect, Site
from ._spec import Enum, F, Int, Obj, Str

__all__ = ["PROBE", "ProbePlan", "probe_problems", "resolve_probes"]

_TEXT = Str()
_KNOWN_SHOWN = 12
"""How many known names an error lists before it says how many more there are."""

PROBE = Obj("probe", "A reachability check verification runs (from, to, port, expect).", (
    F("from", _TEXT, (
        "Where it runs: a host of the site (on the host, through its shim where it has one), "
        "a container of the site (inside it; host/name when the name is on several hosts) or "
        "the site's managed router."), required=True, attr="source"),
    F("to", _TEXT, "A container of the site (its planned address; host/name when ambiguous) "
                   "or an IP address.", required=True),
    F("port", Int(1, 65535), "TCP port to connect to; without it an ICMP ping."),
    F("expect", Enum(("reach", "blocked")),
      "reach (default), or blocked: passes when the connection or ping fails within 2 s."),
    F("name", _TEXT, "Name shown in the verification table, unique in the site."),
), Probe)


@dataclass(frozen=True, slots=True)
class ProbePlan:
    """A probe resolved against the plan.

    Example: ``ProbePlan("h1 -> web1:80", "h1", False, None, IPv4Address("192.0.2.130"), 80,
    "reach")``
    """

    label: str
    """``from -> to:port`` as written (``name: ...`` when named), for the table."""
    member: str
    """The host or router that runs it."""
    on_router: bool
    container: str | None
    """Run inside this container of ``member``; None: in the member's own namespace."""
    target: IPAddress
    port: int | None
    """TCP port; None: ICMP echo."""
    expect: ProbeExpect


@dataclass(frozen=True, slots=True)
class _End:
    kind: Literal["host", "router", "container", "address"]
    member: str
    """The host (of a container too) or router; empty for an address."""
    name: str


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_KNOWN_SHOWN]) or "none"
    more = len(names) - _KNOWN_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


def _container(site: Site, ref: str) -> _End | str:
    """The container ``ref`` (``name`` or ``host/name``) names, or why there is none."""
    host, sep, name = ref.rpartition("/")
    found = [c for c in site.containers if c.name == name and (not sep or c.host == host)]
    if len(found) == 1:
        return _End("container", found[0].host, found[0].name)
    if found:
        on = [f"{c.host}/{c.name}" for c in found]
        return f"container {name} runs on several hosts: write one of {', '.join(on)}"
    where = f"on host {host!r} " if sep else ""
    known = _listing(sorted({c.name for c in site.containers}))
    return f"no container {name!r} {where}in site {site.name}; known: {known}"


def _source(site: Site, ref: str) -> _End | str:
    if "/" in ref:
        return _container(site, ref)
    hosts = [h for h in site.hosts if h.name == ref]
    routers = [r for r in site.routers if r.name == ref]
    containers = [c for c in site.containers if c.name == ref]
    if sum(1 for found in (hosts, routers, containers) if found) > 1:
        return (f"{ref} names more than one host, router or container of site {site.name}: "
                "rename one, or write host/name for a container")
    if hosts:
        return _End("host", ref, ref)
    if routers and not routers[0].managed:
        return (f"router {ref} is not managed: vlaninfra has no agent there; set managed: "
                "true (with its ssh settings) or probe from a host")
    if routers:
        return _End("router", ref, ref)
    if containers:
        return _container(site, ref)
    names = [h.name for h in site.hosts] + [r.name for r in site.routers if r.managed]
    return (f"no host, managed router or container {ref!r} in site {site.name}; known: "
            f"{_listing(names + sorted({c.name for c in site.containers}))}")


def _target(site: Site, ref: str) -> _End | str:
    try:
        return _End("address", "", str(ip_address(ref)))
    except ValueError:
        found = _container(site, ref)
        return found if isinstance(found, _End) else f"{found} (or give an IP address)"


def probe_problems(site: Site, addressed: Collection[tuple[str, str]]) -> list[Problem]:
    """Every problem of ``site.probes``; ``addressed`` holds the (host, name) of the containers
    that get an address. Example: ``probe_problems(site, {("h1", "web1")})``"""
    out: list[Problem] = []
    named: dict[str, str] = {}
    for i, probe in enumerate(site.probes):
        base = f"sites.{site.name}.probes[{i}]"
        source = _source(site, probe.source)
        if isinstance(source, str):
            out.append(Problem(f"{base}.from", probe.source, source))
        target = _target(site, probe.to)
        if isinstance(target, str):
            out.append(Problem(f"{base}.to", probe.to, target))
        elif target.kind == "container" and (target.member, target.name) not in addressed:
            out.append(Problem(f"{base}.to", probe.to, (
                f"container {target.name} gets no address on host {target.member} (its "
                "network has no subnet there): probe an address instead")))
        if probe.name is not None:
            first = named.setdefault(probe.name, f"{base}.name")
            if first != f"{base}.name":
                out.append(Problem(f"{base}.name", probe.name,
                                   f"duplicate probe name; first used at {first}"))
    return out


def _label(probe: Probe) -> str:
    text = f"{probe.source} -> {probe.to}" + (f":{probe.port}" if probe.port else "")
    if probe.expect == "blocked":
        text += " (expect blocked)"
    return f"{probe.name}: {text}" if probe.name else text


def resolve_probes(site: Site,
                   address_of: Mapping[tuple[str, str], IPAddress | None]) -> tuple[ProbePlan, ...]:
    """``site.probes`` (valid: `probe_problems` found none) against the planned container
    addresses by (host, name). Example: ``resolve_probes(site, {("h1", "web1"): addr})``"""
    out = []
    for probe in site.probes:
        source, target = _source(site, probe.source), _target(site, probe.to)
        assert isinstance(source, _End) and isinstance(target, _End)
        address = ip_address(target.name) if target.kind == "address" \
            else address_of[(target.member, target.name)]
        assert address is not None
        out.append(ProbePlan(_label(probe), source.member, source.kind == "router",
                             source.name if source.kind == "container" else None,
                             address, probe.port, probe.expect))
    return tuple(out)
