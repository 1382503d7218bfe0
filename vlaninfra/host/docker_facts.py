"""Docker facts: read-only views of the daemon, its networks, containers and images.

Shapes are the agent's own (snake_case, only what vlaninfra compares; the TypedDicts below),
not Docker's raw inspect JSON, so the providers never depend on daemon-version quirks. Lookups
are by exact name: Docker also resolves ID prefixes, which would make ``inspect("ab")`` find
network ``ab12...``; a result whose name differs counts as absent.

Example: ``network_inspect(ctx, "lan")["ipam"]`` →
``[{"subnet": "192.0.2.0/24", "gateway": "192.0.2.1", "ip_range": "192.0.2.128/26",
"aux_addresses": {"shim": "192.0.2.250"}}]``
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypedDict, TypeVar

from vlaninfra.host.context import Context
from vlaninfra.host.docker_api import NotFound
from vlaninfra.host.untyped import DockerJson

__all__ = [
    "ContainerEndpoint",
    "ContainerInspect",
    "ContainerSummary",
    "DockerVersion",
    "IpamEntry",
    "NetworkEndpoint",
    "NetworkInspect",
    "NetworkSummary",
    "container_inspect",
    "container_list",
    "docker_version",
    "image_exists",
    "image_names",
    "network_inspect",
    "network_list",
    "restart_policy_name",
]

T = TypeVar("T")


class DockerVersion(TypedDict):
    """``{"version": "20.10.24+dfsg1", "api_version": "1.41", "os": "linux", ...}``"""

    version: str | None
    api_version: str | None
    min_api_version: str | None
    os: str | None
    kernel: str | None


class NetworkEndpoint(TypedDict):
    """A container attached to a network, as the network reports it (addresses without
    prefix length)."""

    id: str
    ipv4: str | None
    ipv6: str | None
    mac: str | None


class IpamEntry(TypedDict):
    """One IPAM pool: ``{"subnet": "192.0.2.0/24", "gateway": "192.0.2.1", ...}``."""

    subnet: str | None
    gateway: str | None
    ip_range: str | None
    aux_addresses: dict[str, str]


class NetworkInspect(TypedDict):
    """A network in the agent's inspect form (:meth:`NetworkState.of_inspect` reads it)."""

    id: str
    name: str
    driver: str | None
    scope: str | None
    options: dict[str, str]
    ipam_driver: str | None
    ipam: list[IpamEntry]
    internal: bool
    enable_ipv6: bool
    labels: dict[str, str]
    containers: dict[str, NetworkEndpoint]
    """By container name."""


class NetworkSummary(TypedDict):
    """``{"name": "lan", "id": "3f2a...", "driver": "macvlan"}``"""

    name: str
    id: str
    driver: str | None


class ContainerEndpoint(TypedDict):
    """A container's attachment to one network; a stopped container has no live address, so
    ``ipv4``/``ipv6`` fall back to the configured ones."""

    id: str | None
    ipv4: str | None
    ipv6: str | None
    mac: str | None
    configured_ipv4: str | None
    configured_ipv6: str | None


class ContainerInspect(TypedDict):
    """A container in the agent's inspect form (:meth:`ContainerState.of_inspect` reads it)."""

    id: str
    name: str
    image: str | None
    image_id: str | None
    command: list[str] | None
    hostname: str | None
    running: bool
    status: str | None
    restart_policy: str
    """Docker's spelling: ``on-failure:3``."""
    labels: dict[str, str]
    mac: str | None
    networks: dict[str, ContainerEndpoint]
    """By network name."""


class ContainerSummary(TypedDict):
    """``{"name": "web", "id": "9c1e...", "running": true}``"""

    name: str
    id: str
    running: bool


def _strip_prefix(cidr: str | None) -> str | None:
    return cidr.split("/", 1)[0] if cidr else None


def docker_version(ctx: Context) -> DockerVersion:
    """The daemon's version facts.

    Example: ``docker_version(ctx)`` →
    ``{"version": "20.10.24+dfsg1", "api_version": "1.41", "os": "linux", "kernel": "6.1.0"}``
    """
    v: DockerJson = ctx.docker().version()
    return {
        "version": v.get("Version"),
        "api_version": v.get("ApiVersion"),
        "min_api_version": v.get("MinAPIVersion"),
        "os": v.get("Os"),
        "kernel": v.get("KernelVersion"),
    }


def _network(raw: DockerJson) -> NetworkInspect:
    ipam: DockerJson = raw.get("IPAM") or {}
    containers: dict[str, NetworkEndpoint] = {}
    for cid, ep in (raw.get("Containers") or {}).items():
        containers[ep.get("Name") or cid] = {
            "id": cid,
            "ipv4": _strip_prefix(ep.get("IPv4Address")),
            "ipv6": _strip_prefix(ep.get("IPv6Address")),
            "mac": ep.get("MacAddress") or None,
        }
    return {
        "id": raw["Id"],
        "name": raw["Name"],
        "driver": raw.get("Driver"),
        "scope": raw.get("Scope"),
        "options": dict(raw.get("Options") or {}),
        "ipam_driver": ipam.get("Driver"),
        "ipam": [
            {
                "subnet": c.get("Subnet"),
                "gateway": c.get("Gateway") or None,
                "ip_range": c.get("IPRange") or None,
                "aux_addresses": dict(c.get("AuxiliaryAddresses") or {}),
            }
            for c in (ipam.get("Config") or [])
        ],
        "internal": bool(raw.get("Internal")),
        "enable_ipv6": bool(raw.get("EnableIPv6")),
        "labels": dict(raw.get("Labels") or {}),
        "containers": containers,
    }


def _inspect(read: Callable[[str], DockerJson], name: str, named: Callable[[DockerJson], str],
             shape: Callable[[DockerJson], T]) -> T | None:
    """``read(name)`` in the agent's form (``shape``), or None when Docker has nothing called
    exactly ``name`` (``named`` reads the name Docker answered with)."""
    try:
        raw = read(name)
    except NotFound:
        return None
    return shape(raw) if named(raw) == name else None


def network_inspect(ctx: Context, name: str) -> NetworkInspect | None:
    """The network called exactly ``name``, or None."""
    return _inspect(ctx.docker().inspect_network, name, lambda raw: raw.get("Name", ""),
                    _network)


def network_list(ctx: Context) -> list[NetworkSummary]:
    """Every network: ``[{name, id, driver}]`` sorted by name."""
    nets: list[DockerJson] = ctx.docker().networks()
    out: list[NetworkSummary] = [
        {"name": n["Name"], "id": n["Id"], "driver": n.get("Driver")} for n in nets]
    return sorted(out, key=lambda n: n["name"])


def restart_policy_name(policy: DockerJson | None) -> str:
    """Docker's ``{"Name": "on-failure", "MaximumRetryCount": 3}`` → ``"on-failure:3"``."""
    name = (policy or {}).get("Name") or "no"
    retries = (policy or {}).get("MaximumRetryCount") or 0
    return f"{name}:{retries}" if name == "on-failure" and retries else str(name)


def _container(raw: DockerJson) -> ContainerInspect:
    config: DockerJson = raw.get("Config") or {}
    host_config: DockerJson = raw.get("HostConfig") or {}
    state: DockerJson = raw.get("State") or {}
    settings: DockerJson = raw.get("NetworkSettings") or {}
    networks: dict[str, ContainerEndpoint] = {}
    for net, ep in (settings.get("Networks") or {}).items():
        ipam = ep.get("IPAMConfig") or {}
        networks[net] = {
            "id": ep.get("NetworkID") or None,
            # A stopped container has no live address; report the configured one then.
            "ipv4": ep.get("IPAddress") or ipam.get("IPv4Address") or None,
            "ipv6": ep.get("GlobalIPv6Address") or ipam.get("IPv6Address") or None,
            "mac": ep.get("MacAddress") or config.get("MacAddress") or None,
            "configured_ipv4": ipam.get("IPv4Address") or None,
            "configured_ipv6": ipam.get("IPv6Address") or None,
        }
    return {
        "id": raw["Id"],
        "name": raw["Name"].lstrip("/"),
        "image": config.get("Image"),
        "image_id": raw.get("Image"),
        "command": config.get("Cmd"),
        "hostname": config.get("Hostname"),
        "running": bool(state.get("Running")),
        "status": state.get("Status"),
        "restart_policy": restart_policy_name(host_config.get("RestartPolicy")),
        "labels": dict(config.get("Labels") or {}),
        "mac": config.get("MacAddress") or None,
        "networks": networks,
    }


def container_inspect(ctx: Context, name: str) -> ContainerInspect | None:
    """The container called exactly ``name``, or None."""
    return _inspect(ctx.docker().inspect_container, name,
                    lambda raw: str(raw.get("Name", "")).lstrip("/"), _container)


def container_list(ctx: Context) -> list[ContainerSummary]:
    """Every container, running or not: ``[{name, id, running}]`` sorted by name."""
    out: list[ContainerSummary] = []
    raw: list[DockerJson] = ctx.docker().containers(all=True)
    for c in raw:
        names = c.get("Names") or [c["Id"]]
        out.append({"name": names[0].lstrip("/"), "id": c["Id"],
                    "running": c.get("State") == "running"})
    return sorted(out, key=lambda c: c["name"])


def image_exists(ctx: Context, name: str) -> bool:
    """Whether the image ``name`` (``repo:tag`` or id) is present locally."""
    try:
        ctx.docker().inspect_image(name)
    except NotFound:
        return False
    return True


def image_names(ctx: Context) -> list[str]:
    """Every local image's tags and id, sorted (what ``image_exists`` would find)."""
    names: set[str] = set()
    images: list[DockerJson] = ctx.docker().images()
    for image in images:
        names.update(image.get("RepoTags") or [])
        names.add(image["Id"])
    return sorted(names)
