"""Containers with fixed addresses on one network: the spec a provider asks for, the state
the daemon reports, and their ops."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from vlaninfra.host.marks import ADHOC_OWNER

from ._codec import Json, Op, as_, maybe, of_mapping
from ._common import Mark, Named, Removed
from ._enums import RestartPolicy

__all__ = [
    "CONTAINER_CREATE",
    "CONTAINER_INSPECT",
    "CONTAINER_REMOVE",
    "CONTAINER_START",
    "CONTAINER_UPDATE",
    "NETWORK_CONNECT",
    "NETWORK_DISCONNECT",
    "ContainerCreate",
    "ContainerRef",
    "ContainerSpec",
    "ContainerState",
    "ContainerUpdate",
    "Endpoint",
    "NetworkConnect",
    "NetworkDisconnect",
]


@dataclass(frozen=True)
class ContainerSpec:
    """A container, e.g. ``ContainerSpec("web", "busybox:lab", ("sleep", "3600"), "lan",
    ipv4="192.0.2.130", mac="02:42:c0:00:02:82")``."""

    name: str
    image: str
    command: tuple[str, ...] | None = None
    network: str | None = None
    ipv4: str | None = None
    ipv6: str | None = None
    mac: str | None = None
    restart_policy: str = RestartPolicy.UNLESS_STOPPED.value
    """A :class:`RestartPolicy`, in Docker's spelling: ``on-failure`` may carry ``:N``."""
    labels: Mapping[str, str] = field(default_factory=dict)
    hostname: str | None = None


@dataclass(frozen=True)
class Endpoint:
    """A container's attachment to one network (a stopped one reports its configured
    addresses)."""

    id: str | None
    ipv4: str | None
    ipv6: str | None
    mac: str | None


@dataclass(frozen=True)
class ContainerState:
    """A container as the host's daemon has it; ``restart_policy`` in Docker's spelling
    (``on-failure:3``); ``adopted``: the create took over the one an earlier run made."""

    id: str
    name: str
    image: str | None
    command: tuple[str, ...] | None
    hostname: str | None
    running: bool
    restart_policy: str
    labels: Mapping[str, str]
    networks: Mapping[str, Endpoint]
    adopted: bool = False

    @classmethod
    def of_inspect(cls, found: Mapping[str, Json]) -> ContainerState:
        """From the agent's container inspect (``docker_facts.container_inspect``)."""
        command = found.get("command")
        return cls(
            id=found["id"], name=found["name"], image=found.get("image"),
            command=tuple(command) if command is not None else None,
            hostname=found.get("hostname"), running=bool(found.get("running")),
            restart_policy=str(found.get("restart_policy") or "no"),
            labels=dict(found.get("labels") or {}),
            networks={n: Endpoint(e.get("id"), e.get("ipv4"), e.get("ipv6"), e.get("mac"))
                      for n, e in (found.get("networks") or {}).items()},
            adopted=bool(found.get("adopted")))


@dataclass(frozen=True)
class ContainerCreate:
    """Create and start the container ``spec`` marked ``mark`` (adopt it when an earlier run
    made it)."""

    spec: ContainerSpec
    mark: Mark = field(default_factory=Mark)


@dataclass(frozen=True)
class ContainerRef:
    """``owner``'s container ``name`` (``id``: the one state recorded, claimed even without
    labels: made before marks)."""

    name: str
    owner: str = ADHOC_OWNER
    id: str | None = None


@dataclass(frozen=True)
class ContainerUpdate:
    """Change ``owner``'s container's restart policy in place."""

    name: str
    restart_policy: str
    """As :attr:`ContainerSpec.restart_policy`."""
    owner: str = ADHOC_OWNER
    id: str | None = None


@dataclass(frozen=True)
class NetworkConnect:
    """Attach ``owner``'s container to ``network`` with these addresses."""

    network: str
    container: str
    ipv4: str | None = None
    ipv6: str | None = None
    mac: str | None = None
    owner: str = ADHOC_OWNER
    id: str | None = None


@dataclass(frozen=True)
class NetworkDisconnect:
    """Detach ``owner``'s container from ``network``."""

    network: str
    container: str
    force: bool = False
    owner: str = ADHOC_OWNER
    id: str | None = None


_inspected = of_mapping("a container", ContainerState.of_inspect)
"""The inspect op answers in the agent's inspect form (host snapshots carry it too)."""
CONTAINER_CREATE: Op[ContainerCreate, ContainerState] = Op(
    "docker.container.create", ContainerCreate, as_(ContainerState))
CONTAINER_INSPECT: Op[Named, ContainerState | None] = Op(
    "docker.container.inspect", Named, _inspected)
CONTAINER_REMOVE: Op[ContainerRef, Removed] = Op("docker.container.remove", ContainerRef,
                                                  as_(Removed))
CONTAINER_UPDATE: Op[ContainerUpdate, ContainerState] = Op(
    "docker.container.update", ContainerUpdate, as_(ContainerState))
CONTAINER_START: Op[ContainerRef, ContainerState] = Op(
    "docker.container.start", ContainerRef, as_(ContainerState))
NETWORK_CONNECT: Op[NetworkConnect, ContainerState] = Op(
    "docker.network.connect", NetworkConnect, as_(ContainerState))
NETWORK_DISCONNECT: Op[NetworkDisconnect, ContainerState | None] = Op(
    "docker.network.disconnect", NetworkDisconnect, maybe(ContainerState))
