"""``vlaninfra doctor``: checks every host of a layout before a change, changing nothing.

One agent session per host (all hosts in parallel) reads the host's facts (``doctor.facts``:
kernel link kinds, DMI vendor/product, ``ip_forward``, links, Docker version and networks),
asks the providers' own preview clash checks about every planned object, and sends an ARP
probe for every planned container address on the LAN. ``diagnose`` (pure) turns layout and
facts into findings, one line each, with a severity and the config key or host fact.

Example::

    report = doctor(layout, hosts_of(layout), owner="vlaninfra/prod")
    print(report.text()); sys.exit(0 if report.ok else 1)
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from vlaninfra.errors import LayoutError, VlanInfraError
from vlaninfra.host.contract import ROUTED
from vlaninfra.layout import IpvlanNetwork, Layout, MacvlanNetwork, Network, Plan, Site, plan
from vlaninfra.layout import validate as validate_layout
from vlaninfra.layout._docker import docker_allows_shared_parent
from vlaninfra.layout._facts import routes_tenants

__all__ = ["CLOUD_ADVICE", "Finding", "HostFacts", "Report", "diagnose", "doctor", "gather"]

Severity = Literal["error", "warning", "info"]
CLOUD_ADVICE = ("cloud SDNs drop frames from MACs they did not assign, so macvlan containers "
                "cannot talk there: use ipvlan (l2, or l3 with upstream routes)")
"""The seed's advice for cloud VMs."""
ARP_TIMEOUT = 5.0
"""Seconds a host gets for all its ARP probes (each listens about 1 s, all in parallel)."""
_CLOUDS = (
    ("Amazon EC2", re.compile(r"amazon ec2|^amazon$", re.I)),
    ("Google Compute Engine", re.compile(r"^google", re.I)),
    ("Microsoft Azure", re.compile(r"microsoft corporation.*virtual machine|^7783-7084-3265"
                                   r"-9085-8269-3286-77$", re.I)),
    ("DigitalOcean", re.compile(r"digitalocean", re.I)),
    ("Hetzner Cloud", re.compile(r"hetzner", re.I)),
    ("OpenStack", re.compile(r"openstack", re.I)),
    ("Alibaba Cloud", re.compile(r"alibaba", re.I)),
    ("Oracle Cloud", re.compile(r"oraclecloud", re.I)),
    ("Scaleway", re.compile(r"scaleway", re.I)),
    ("Vultr", re.compile(r"vultr", re.I)),
    ("Linode", re.compile(r"linode|akamai", re.I)),
    ("Tencent Cloud", re.compile(r"tencent", re.I)),
    ("Exoscale", re.compile(r"exoscale", re.I)),
)
_VERSION = re.compile(r"(\d+)\.(\d+)")


@dataclass(frozen=True, slots=True)
class Finding:
    """One finding, e.g. ``Finding("error", "sites.a.hosts[0].parents[0]", "h1: ...")``."""

    severity: Severity
    key: str
    """The config key, or the host fact (``host a/h1: kernel``), it is about."""
    message: str
    """What was found and what to do."""

    def __str__(self) -> str:
        return f"{self.severity}: {self.key}: {self.message}"


@dataclass(frozen=True, slots=True)
class Report:
    """Every finding of one doctor run and how long it took."""

    findings: tuple[Finding, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        """True when nothing is an error."""
        return not any(f.severity == "error" for f in self.findings)

    def text(self) -> str:
        """One line per finding, then a summary line."""
        count = {s: sum(1 for f in self.findings if f.severity == s)
                 for s in ("error", "warning", "info")}
        tail = (f"doctor: {count['error']} error(s), {count['warning']} warning(s), "
                f"{count['info']} info in {self.seconds:.1f}s")
        return "\n".join([*(str(f) for f in self.findings), tail]) + "\n"


@dataclass(frozen=True)
class HostFacts:
    """What the agent of one host answered; ``error`` when it could not be reached."""

    facts: Mapping[str, Any] = field(default_factory=dict)
    clashes: Mapping[str, str] = field(default_factory=dict)
    """Config key -> why the object the plan would create there cannot be (preview checks)."""
    arp: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Config key of a container's address -> the ``arp-unique`` (IPv4) or ``ndp-unique``
    (IPv6) probe's answer."""
    error: str | None = None


# -- pure: layout + facts -> findings --------------------------------------------------------

def _version(text: str | None) -> tuple[int, int] | None:
    m = _VERSION.match(text or "")
    return (int(m.group(1)), int(m.group(2))) if m else None


def _nets_on(site: Site, host: str) -> list[tuple[int, Network]]:
    return [(i, n) for i, n in enumerate(site.networks) if host in n.hosts]


def _parent_key(site: Site, i: int, net: Network, host: str) -> str:
    where = f"parent_per_host.{host}" if host in net.parent_per_host else "parent"
    return f"sites.{site.name}.networks[{i}].{where}"


def _cloud(dmi: Mapping[str, Any]) -> str | None:
    """The cloud whose VM the DMI facts describe, e.g. ``"Amazon EC2"``; None otherwise."""
    values = [str(v) for v in dmi.values() if v]
    return next((name for name, pattern in _CLOUDS if any(pattern.search(v) for v in values)),
                None)


def _routed_here(site: Site, host: str) -> dict[int, list[str]]:
    """IP version -> the networks whose routed (tenant) subnets the site's router sends to
    ``host``."""
    nets = {n.name: n for n in site.networks}
    out: dict[int, list[str]] = {}
    for t in site.tenants:
        for ts in t.subnets:
            net = nets.get(ts.network)
            if net is not None and routes_tenants(net) and (ts.host or net.hosts[0]) == host:
                names = out.setdefault(ts.subnet.version, [])
                if net.name not in names:
                    names.append(net.name)
    return out


def _probe_name(answer: Mapping[str, Any]) -> str:
    return "NDP probe" if ":" in str(answer.get("address")) else "ARP probe"


def _host_findings(site: Site, hi: int, hf: HostFacts) -> list[Finding]:
    host = site.hosts[hi]
    hbase = f"sites.{site.name}.hosts[{hi}]"
    who = f"host {host.name}"
    if hf.error is not None:
        return [Finding("error", f"{hbase}.ssh", f"{who}: not checked, the agent is not "
                                                 f"reachable: {hf.error}")]
    facts = hf.facts
    out: list[Finding] = []
    nets = _nets_on(site, host.name)
    kernel = facts.get("kernel") or "?"
    kinds: Mapping[str, bool | None] = facts.get("kinds") or {}
    links = {link["name"]: link for link in facts.get("links") or ()}
    # Kernel support for what the layout uses.
    for driver in ("macvlan", "ipvlan"):
        users = [(i, n) for i, n in nets if n.driver == driver]
        if users and kinds.get(driver) is not True:
            i, net = users[0]
            told = "has no" if kinds.get(driver) is False else "could not say whether it has an"
            other = "macvlan" if driver == "ipvlan" else "ipvlan"
            out.append(Finding("error", f"sites.{site.name}.networks[{i}].driver", (
                f"{who}: its kernel ({kernel}) {told} {driver} driver (not built in, no "
                f"module), so network {net.name} cannot be made there: use {other}, or "
                f"a host whose kernel has {driver}")))
    vlan_users = [(i, n) for i, n in nets
                  if "." in n.parent_on(host.name) and n.parent_on(host.name) not in links]
    if vlan_users and kinds.get("vlan") is not True:
        i, net = vlan_users[0]
        out.append(Finding("error", _parent_key(site, i, net, host.name), (
            f"{who}: its kernel ({kernel}) has no 802.1Q (8021q) support, so the VLAN parent "
            f"{net.parent_on(host.name)} cannot be made: use an untagged parent, or load "
            "8021q")))
    kv = _version(kernel)
    for i, net in nets:
        if isinstance(net, IpvlanNetwork) and net.flag != "bridge" and kv and kv < (4, 15):
            out.append(Finding("error", f"sites.{site.name}.networks[{i}].flag", (
                f"{who}: ipvlan flags need Linux 4.15 or later; the kernel is {kernel}: "
                "drop the flag")))
    # Parent NICs present and up.
    for j, parent in enumerate(host.parents):
        if not any(n.parent_on(host.name).split(".")[0] == parent
                   or n.parent_on(host.name) == parent for _, n in nets):
            continue
        link = links.get(parent)
        if link is None:
            names = ", ".join(sorted(links)) or "none"
            out.append(Finding("error", f"{hbase}.parents[{j}]", (
                f"{who}: parent NIC {parent} does not exist (links: {names}): name an "
                "existing NIC of the host")))
        elif not link.get("up"):
            out.append(Finding("warning", f"{hbase}.parents[{j}]", (
                f"{who}: parent NIC {parent} is down, so its containers are cut off: "
                f"bring it up (ip link set {parent} up)")))
    # Docker: the daemon's version and its known limits.
    docker = facts.get("docker")
    if docker is None:
        out.append(Finding("error", f"{hbase}.ssh.docker_socket", (
            f"{who}: no Docker daemon socket there: start dockerd, or set the socket path")))
    else:
        out += _docker_findings(site, hi, docker, nets)
    # Cloud VM (local DMI facts only).
    cloud = _cloud(facts.get("dmi") or {})
    if cloud is not None:
        dmi = ", ".join(f"{k} {v!r}" for k, v in (facts.get("dmi") or {}).items() if v)
        for i, net in nets:
            if isinstance(net, MacvlanNetwork):
                out.append(Finding("error", f"sites.{site.name}.networks[{i}].driver", (
                    f"{who} runs on a cloud VM ({cloud}; DMI {dmi}): {CLOUD_ADVICE}")))
    # ip_forward where tenants are routed (ipvlan l3).
    l3 = [n.name for _, n in nets if isinstance(n, IpvlanNetwork) and n.mode in ("l3", "l3s")]
    if l3 and facts.get("ip_forward") is False:
        out.append(Finding("warning", f"host {site.name}/{host.name}: net.ipv4.ip_forward", (
            f"{who}: ip_forward is 0 while it routes the tenants of {', '.join(l3)} (ipvlan "
            "l3): set net.ipv4.ip_forward=1 (in /etc/sysctl.d) if tenant traffic must pass "
            "between the host's interfaces")))
    # A macvlan tenant subnet (any family), or an IPv6 one: the host is its router.
    routed = _routed_here(site, host.name)
    for version, sysctl, fact in ((4, "net.ipv4.ip_forward", "ip_forward"),
                                  (6, "net.ipv6.conf.all.forwarding", "ip6_forward")):
        routing = [n for n in routed.get(version, []) if version == 6 or n not in l3]
        if routing and facts.get(fact) is False:
            out.append(Finding("warning", f"host {site.name}/{host.name}: {sysctl}", (
                f"{who}: {sysctl} is 0 while it routes the IPv{version} tenant subnets of "
                f"{', '.join(routing)}: set {sysctl}=1 (in /etc/sysctl.d), or the router's "
                "routes to them lead nowhere")))
    out += [Finding("error", key, f"{who}: {why}") for key, why in hf.clashes.items()]
    for key, answer in hf.arp.items():
        if answer.get("answered_by"):
            out.append(Finding("error", key, (
                f"{who}: the planned address {answer.get('address')} already answers on the "
                f"LAN from MAC {answer['answered_by']} ({_probe_name(answer)} on "
                f"{answer.get('device')}): "
                "another device holds it; free it there, or give the container another "
                "address")))
        elif answer.get("ok") is not True:
            out.append(Finding("warning", key, (
                f"{who}: could not tell whether {answer.get('address')} is free on the LAN: "
                f"{answer.get('detail')}")))
    return out


def _docker_findings(site: Site, hi: int, docker: Mapping[str, Any],
                     nets: list[tuple[int, Network]]) -> list[Finding]:
    host = site.hosts[hi]
    who = f"host {host.name}"
    version = str(docker.get("version") or "?")
    actual = _version(version)
    out: list[Finding] = []
    stated = _version(host.docker_version)
    if actual and stated and stated > actual:
        out.append(Finding("error", f"sites.{site.name}.hosts[{hi}].docker_version", (
            f"{who}: the layout says Docker {host.docker_version} but the daemon is {version}; "
            f"the plan applied newer Docker's rules: set docker_version: \"{actual[0]}."
            f"{actual[1]}\"")))
    if actual and actual < (23, 0):
        for i, net in nets:
            if isinstance(net, IpvlanNetwork) and (net.flag != "bridge" or net.mode == "l3s"):
                key = "flag" if net.flag != "bridge" else "mode"
                out.append(Finding("error", f"sites.{site.name}.networks[{i}].{key}", (
                    f"{who}: Docker {version} ignores ipvlan_flag (every link gets flag "
                    "bridge) and refuses mode l3s: use mode l2 or l3 with flag bridge, or "
                    "Docker 23.0 or later")))
    planned = {n.name for _, n in nets}
    for existing in docker.get("networks") or ():
        if existing["name"] in planned or not existing.get("parent"):
            continue  # the same name is the preview's clash check
        for i, net in nets:
            parent = net.parent_on(host.name)
            if existing["parent"] != parent:
                continue
            if existing["driver"] != net.driver:
                why = (f"the kernel refuses macvlan and ipvlan on one parent: network "
                       f"{existing['name']} ({existing['driver']}) already uses {parent}")
            elif not docker_allows_shared_parent(version, net.driver):
                why = (f"Docker {version} allows one {net.driver} network per parent and "
                       f"network {existing['name']} (not in this plan) already uses {parent}")
            else:
                continue
            out.append(Finding("error", _parent_key(site, i, net, host.name), (
                f"{who}: {why}, so network {net.name} would be refused at apply: remove "
                f"{existing['name']}, or give {net.name} another parent (an 802.1Q parent "
                f"such as {parent}.50)")))
    return out


def diagnose(layout: Layout, facts: Mapping[tuple[str, str], HostFacts],
             problems: bool = True) -> list[Finding]:
    """Findings of ``layout`` on hosts whose facts are ``facts`` by (site, host); pure.
    ``problems``: also the layout's own errors and warnings (``validate``).

    Example: ``diagnose(layout, {("a", "h1"): HostFacts(facts={...})})``
    """
    out: list[Finding] = []
    if problems:
        out += [Finding(p.severity, p.path, f"{p.message} (value: {p.value})")
                for p in validate_layout(layout)]
    for site in layout.sites:
        for hi, host in enumerate(site.hosts):
            hf = facts.get((site.name, host.name))
            if hf is not None:
                out += _host_findings(site, hi, hf)
    return out


# -- I/O: one agent session per host ---------------------------------------------------------

def _container_keys(site: Site) -> dict[tuple[str, str], str]:
    return {(c.host, c.name): f"sites.{site.name}.containers[{i}]"
            for i, c in enumerate(site.containers)}


def _planned_objects(site: Site, the_plan: Plan | None, host: str, member: Any,
                     owner: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(config key, provider kind, props) of every object the plan makes on ``host``: what
    the providers' preview clash checks are asked about."""
    from vlaninfra.providers._host import CONFIG_PATH, CONNECTION, HOST, OWNER

    if the_plan is None:
        return []
    hp = next(h for s in the_plan.sites if s.name == site.name for h in s.hosts
              if h.name == host)
    base = {CONNECTION: member.connection(), HOST: host, OWNER: owner}
    nets = {n.name: i for i, n in enumerate(site.networks)}
    keys = _container_keys(site)
    out: list[tuple[str, str, dict[str, Any]]] = []
    for n in hp.networks:
        key = f"sites.{site.name}.networks[{nets[n.name]}]"
        out.append((f"{key}.name", "network", {**base, "name": n.name, CONFIG_PATH: key}))
    for s in hp.shims:
        key = f"sites.{site.name}.networks[{nets[s.network]}].shim"
        out.append((f"{key}.name", "shim", {**base, "name": s.name, CONFIG_PATH: key}))
    for c in hp.containers:
        key = keys[(host, c.name)]
        out.append((f"{key}.name", "container", {**base, "name": c.name, CONFIG_PATH: key}))
    for v in hp.vlan_parents:
        key = f"sites.{site.name}.hosts.{host}.parents"
        out.append((key, "vlan", {**base, "name": v.name, "trunk": v.trunk,
                                  "vlan_id": v.vlan_id, CONFIG_PATH: key}))
    return out


def _arp_checks(site: Site, the_plan: Plan | None, host: str,
                links: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(config key, ``arp-unique`` check) for every planned container address on the LAN's
    L2 (macvlan, ipvlan l2; not internal) whose parent exists on the host."""
    if the_plan is None:
        return []
    hp = next(h for s in the_plan.sites if s.name == site.name for h in s.hosts
              if h.name == host)
    keys = _container_keys(site)
    fixed = {(c.host, c.name): c.ipv4 is not None for c in site.containers}
    out: list[tuple[str, dict[str, Any]]] = []
    for c in hp.containers:
        net = next(n for n in hp.networks if n.name == c.network)
        if net.internal or net.mode in ROUTED or net.parent not in links:
            continue
        if c.ipv4 is not None:
            key = keys[(host, c.name)] + (".ipv4" if fixed[(host, c.name)] else "")
            out.append((key, {"kind": "arp-unique", "device": net.parent,
                              "address": str(c.ipv4), "own": [c.mac] if c.mac else []}))
        if c.ipv6 is not None:  # NDP (neighbour solicitation) for IPv6
            out.append((keys[(host, c.name)] + ".ipv6", {
                "kind": "ndp-unique", "device": net.parent, "address": str(c.ipv6),
                "own": [c.mac] if c.mac else []}))
    return out


def gather(site: Site, the_plan: Plan | None, host: str, member: Any, owner: str,
           agent_of: Callable[[Any], Any], dmi_dir: str | None = None) -> HostFacts:
    """One host's facts through its agent: ``doctor.facts``, the preview clash checks of the
    planned objects, and one ``probe.run`` of ARP probes. Never raises for a host problem."""
    from vlaninfra.providers import _container, _network, _shim, _vlan

    providers: dict[str, Any] = {"network": _network.NetworkProvider(),
                                 "shim": _shim.ShimProvider(),
                                 "container": _container.ContainerProvider(),
                                 "vlan": _vlan.VlanParentProvider()}
    try:
        agent = agent_of(member)
        facts = agent.call("doctor.facts", **({"dmi_dir": dmi_dir} if dmi_dir else {}))
        clashes: dict[str, str] = {}
        for key, kind, props in _planned_objects(site, the_plan, host, member, owner):
            why = providers[kind].clash(agent, props)
            if why:
                clashes[key] = why
        links = {link["name"] for link in facts.get("links") or ()}
        checks = _arp_checks(site, the_plan, host, {n: True for n in links})
        arp: dict[str, dict[str, Any]] = {}
        if checks:
            answers = agent.call("probe.run", checks=[c for _, c in checks],
                                 timeout=ARP_TIMEOUT)
            for (key, check), answer in zip(checks, answers, strict=True):
                arp[key] = {**answer, "address": check["address"], "device": check["device"]}
    except VlanInfraError as err:
        return HostFacts(error=str(err))
    except (KeyError, TypeError, ValueError, AttributeError) as err:  # a malformed answer
        return HostFacts(error=f"unexpected answer: {type(err).__name__}: {err}")
    return HostFacts(facts, clashes, arp)


def doctor(layout: Layout, hosts: Mapping[tuple[str, str], Any], owner: str,
           config: Any = None, dmi_dir: str | None = None) -> Report:
    """Checks every host of ``layout`` (reached as ``hosts`` says: (site, host) -> a
    ``DockerHost``) for the stack ``owner`` (``project/stack``), read-only. ``config`` looks
    up secret stack config keys as the providers do; ``dmi_dir`` replaces
    ``/sys/class/dmi/id`` on every host (tests).

    Example: ``doctor(layout, hosts_of(layout), "vlaninfra/lab").ok``
    """
    from vlaninfra.providers._host import CONNECTION, target_of
    from vlaninfra.transport import agent_for

    started = time.monotonic()
    try:
        the_plan: Plan | None = plan(layout)
    except LayoutError:
        the_plan = None  # its errors are findings; planned objects are not checked

    def agent_of(member: Any) -> Any:
        return agent_for(target_of({CONNECTION: member.connection()}, config))

    work = [(site, host.name) for site in layout.sites for host in site.hosts
            if (site.name, host.name) in hosts]
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(work)))) as pool:
        answers = list(pool.map(lambda w: gather(
            w[0], the_plan, w[1], hosts[(w[0].name, w[1])], owner, agent_of, dmi_dir), work))
    facts = {(site.name, name): hf for (site, name), hf in zip(work, answers, strict=True)}
    findings = diagnose(layout, facts)
    if the_plan is None:
        findings.append(Finding("info", "sites", (
            "the layout has errors: the planned objects and addresses were not checked on "
            "the hosts; fix the errors and run doctor again")))
    return Report(tuple(findings), time.monotonic() - started)
