"""Docker facts: read-only views of the daemon, its networks, containers and images.

Shapes are the agent's own (snake_case, only what vlaninfra compares), not Docker's raw
inspect JSON, so the providers never depend on daemon-version quirks. Lookups are by exact
name: Docker also resolves ID prefixes, which would make ``inspect("ab")`` find network
``ab12...``; a result whose name differs counts as absent.

Example: ``network_inspect(ctx, "lan")["ipam"]`` →
``[{"subnet": "192.0.2.0/24", "gateway": "192.0.2.1", "ip_range": "192.0.2.128/26",
"aux_addresses": {"shim": "192.0.2.250"}}]``
"""

from __future__ import annotations

from typing import Any

from vlaninfra.host.context import Context

__all__ = [
    "container_inspect",
    "container_list",
    "docker_version",
    "image_exists",
    "network_inspect",
    "network_list",
    "restart_policy_name",
]


def _not_found() -> type[Exception]:
    from docker.errors import NotFound

    return NotFound


def _strip_prefix(cidr: str | None) -> str | None:
    return cidr.split("/", 1)[0] if cidr else None


def docker_version(ctx: Context) -> dict[str, Any]:
    """The daemon's version facts.

    Example: ``docker_version(ctx)`` →
    ``{"version": "20.10.24+dfsg1", "api_version": "1.41", "os": "linux", "kernel": "6.1.0"}``
    """
    v = ctx.docker().version()
    return {
        "version": v.get("Version"),
        "api_version": v.get("ApiVersion"),
        "min_api_version": v.get("MinAPIVersion"),
        "os": v.get("Os"),
        "kernel": v.get("KernelVersion"),
    }


def _network_dict(raw: dict[str, Any]) -> dict[str, Any]:
    ipam = raw.get("IPAM") or {}
    containers: dict[str, Any] = {}
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


def network_inspect(ctx: Context, name: str) -> dict[str, Any] | None:
    """The network called exactly ``name``, or None."""
    try:
        raw = ctx.docker().inspect_network(name)
    except _not_found():
        return None
    if raw.get("Name") != name:
        return None
    return _network_dict(raw)


def network_list(ctx: Context) -> list[dict[str, Any]]:
    """Every network: ``[{name, id, driver}]`` sorted by name."""
    nets = ctx.docker().networks()
    return sorted(
        ({"name": n["Name"], "id": n["Id"], "driver": n.get("Driver")} for n in nets),
        key=lambda n: n["name"],
    )


def restart_policy_name(policy: dict[str, Any] | None) -> str:
    """Docker's ``{"Name": "on-failure", "MaximumRetryCount": 3}`` → ``"on-failure:3"``."""
    name = (policy or {}).get("Name") or "no"
    retries = (policy or {}).get("MaximumRetryCount") or 0
    return f"{name}:{retries}" if name == "on-failure" and retries else name


def _container_dict(raw: dict[str, Any]) -> dict[str, Any]:
    config = raw.get("Config") or {}
    host_config = raw.get("HostConfig") or {}
    state = raw.get("State") or {}
    settings = raw.get("NetworkSettings") or {}
    networks: dict[str, Any] = {}
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


def container_inspect(ctx: Context, name: str) -> dict[str, Any] | None:
    """The container called exactly ``name``, or None."""
    try:
        raw = ctx.docker().inspect_container(name)
    except _not_found():
        return None
    if raw.get("Name", "").lstrip("/") != name:
        return None
    return _container_dict(raw)


def container_list(ctx: Context) -> list[dict[str, Any]]:
    """Every container, running or not: ``[{name, id, running}]`` sorted by name."""
    out = []
    for c in ctx.docker().containers(all=True):
        names = c.get("Names") or [c["Id"]]
        out.append({"name": names[0].lstrip("/"), "id": c["Id"],
                    "running": c.get("State") == "running"})
    return sorted(out, key=lambda c: c["name"])


def image_exists(ctx: Context, name: str) -> bool:
    """Whether the image ``name`` (``repo:tag`` or id) is present locally."""
    try:
        ctx.docker().inspect_image(name)
    except _not_found():
        return False
    return True
