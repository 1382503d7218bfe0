"""Docker ops: idempotent, transactional changes to networks and containers.

Everything created carries vlaninfra's labels (:mod:`vlaninfra.host.marks`: owning stack,
config key, spec hash). Creating something that already exists takes it over when its labels
name the calling stack and the same spec (a retried or interrupted create converges: a
container left created but not started is started) and is an ``EEXIST`` error naming its
owner otherwise. An object without the caller's mark is never changed or removed: removing one
reports it as ``kept``; removing something already gone returns ``removed: False``.
Absence is decided by Docker's 404 (:class:`~vlaninfra.host.docker_api.NotFound`), never by
message text.
A create that fails half-way removes what it made (Docker leaves a stopped container behind
when starting it fails). Images are never pulled: a missing image is an ``ENOENT`` error.

Example: ``network_create(ctx, NetworkCreate(NetworkSpec("lan", Driver.MACVLAN, "eth0",
MacvlanMode.BRIDGE)))``
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TypedDict, TypeVar

from vlaninfra.host import facts, marks
from vlaninfra.host.context import Context
from vlaninfra.host.contract import (
    ContainerCreate,
    ContainerRef,
    ContainerState,
    ContainerUpdate,
    NetworkConnect,
    NetworkCreate,
    NetworkDisconnect,
    NetworkRemove,
    NetworkState,
    Removed,
    RestartPolicy,
)
from vlaninfra.host.docker_api import DockerError, NotFound, version_gte
from vlaninfra.host.docker_facts import (
    ContainerInspect,
    NetworkInspect,
    container_inspect,
    network_inspect,
)
from vlaninfra.host.errors import OpError, raise_undone
from vlaninfra.host.oplock import changes, changing, wait_for
from vlaninfra.host.untyped import DockerApi

__all__ = [
    "container_create",
    "container_remove",
    "container_update",
    "network_connect",
    "network_create",
    "network_disconnect",
    "network_remove",
    "parse_restart_policy",
]

Inspected = NetworkInspect | ContainerInspect
"""What ownership checks look at: its ``id`` and ``labels``."""
Found = TypeVar("Found", NetworkInspect, ContainerInspect)


class DockerRestartPolicy(TypedDict, total=False):
    """Docker's ``RestartPolicy``: ``{"Name": "on-failure", "MaximumRetryCount": 3}``."""

    Name: str
    MaximumRetryCount: int

log = logging.getLogger("vlaninfra.host.docker_ops")
_RESTART = tuple(p.value for p in RestartPolicy)


def _check_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or "/" in value or value.strip() != value:
        raise OpError(errno.EINVAL, f"invalid {what} {value!r}")
    return value


def _check_image(value: object) -> str:
    # Image references carry '/' and ':' (registry/repo:tag): only emptiness and spaces are wrong.
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise OpError(errno.EINVAL, f"invalid image {value!r}")
    return value


def _api_at_least(api: DockerApi, version: str) -> bool:
    return version_gte(api.api_version, version)


def parse_restart_policy(policy: str) -> DockerRestartPolicy:
    """``"on-failure:3"`` → ``{"Name": "on-failure", "MaximumRetryCount": 3}``."""
    name, _, count = policy.partition(":")
    if name not in _RESTART or (count and (name != "on-failure" or not count.isdigit())):
        raise OpError(errno.EINVAL, f"restart policy must be one of {_RESTART} "
                                    f"(or on-failure:N), not {policy!r}")
    out: DockerRestartPolicy = {"Name": "" if name == "no" else name}
    if count:
        out["MaximumRetryCount"] = int(count)
    return out


def _ours(what: str, found: Inspected, owner: str, expect_id: str | None) -> None:
    """Raise ``EPERM`` unless ``found`` is ``owner``'s: its labels say so, or it has no labels
    of vlaninfra and is the object ``expect_id`` that state recorded (made before marks)."""
    marks.require_owned(what, marks.of_labels(found.get("labels")), owner,
                        legacy=found["id"] == expect_id)


def _kept(what: str, found: Inspected, owner: str, expect_id: str | None) -> str | None:
    why = marks.refusal(what, marks.of_labels(found.get("labels")), owner,
                        legacy=found["id"] == expect_id)
    if why:
        log.warning("not removing: %s", why)
        return f"{why}: left in place"
    return None


def _remove(what: str, found: Found | None, owner: str, expect_id: str | None,
            remove: Callable[[Found], None]) -> Removed:
    """``remove(found)`` when it is ``owner``'s; ``removed: False`` when it is gone (also
    while removing), plus ``kept`` when it is not ``owner``'s."""
    if found is None:
        return Removed(False)
    kept = _kept(what, found, owner, expect_id)
    if kept:
        return Removed(False, kept)
    try:
        remove(found)
    except NotFound:
        return Removed(False)
    return Removed(True)


def _claim_existing(what: str, existing: Inspected, owner: str,
                    spec: str | None) -> None:
    """Take over ``existing`` (see :func:`marks.claim`); the ``EEXIST`` error carries its id."""
    try:
        marks.claim(what, marks.of_labels(existing["labels"]), owner, spec)
    except OpError as exc:
        exc.details["id"] = existing["id"]
        raise


@changes("network", "spec.name")
def network_create(ctx: Context, args: NetworkCreate) -> NetworkState:
    """Create the network ``args.spec`` labelled as ``args.mark``'s (owner, spec hash, config
    key). One that exists is taken over (``adopted``) when its labels name that owner and
    spec, else ``EEXIST`` naming its owner. ``parent_preexisted`` says whether the parent
    existed as a link before (for ``eth0.50`` Docker creates the 802.1Q sub-interface and
    removes it with the network; None when adopted).

    Example: ``network_create(ctx, NetworkCreate(NetworkSpec("lan", Driver.MACVLAN, "eth0",
    MacvlanMode.BRIDGE, ipam=(IpamPool("192.0.2.0/24", "192.0.2.1", "192.0.2.128/26",
    {"shim": "192.0.2.250"}),))))``
    """
    spec, mark = args.spec, args.mark
    name = _check_name(spec.name, "network name")

    def adopt(existing: NetworkInspect) -> NetworkState:
        _claim_existing(f"network {name!r}", existing, mark.owner, mark.spec)
        log.info("network.create %s: adopting the network an earlier run made", name)
        return replace(NetworkState.of_inspect(existing), parent_preexisted=None, adopted=True)

    existing = network_inspect(ctx, name)
    if existing is not None:
        return adopt(existing)
    parent_preexisted = facts.link_exists(ctx, spec.parent)
    pools = [{k: v for k, v in (("Subnet", p.subnet), ("IPRange", p.ip_range),
                                ("Gateway", p.gateway),
                                ("AuxiliaryAddresses", dict(p.aux_addresses) or None)) if v}
             for p in spec.ipam]
    api = ctx.docker()
    try:
        created = api.create_network(
            name,
            driver=spec.driver.value,
            options=spec.docker_options(),
            ipam={"Driver": "default", "Config": pools} if pools else None,
            check_duplicate=True,
            internal=spec.internal,
            labels={**spec.labels, **marks.labels(mark.owner, mark.spec, mark.resource)},
            enable_ipv6=spec.enable_ipv6,
        )
    except DockerError:
        # Refused because the name was taken since the inspect above (409; 403 before Docker
        # 23): by a create of an earlier run that dockerd finished late, say. Taken over like
        # any network that exists, when it is this owner's with this spec.
        existing = network_inspect(ctx, name)
        if existing is None:
            raise
        return adopt(existing)
    try:
        result = network_inspect(ctx, name)
        if result is None or result["id"] != created.get("Id"):
            raise OpError(errno.EIO, f"network {name!r} vanished right after creation")
    except BaseException as exc:
        if _remove_network_quietly(api, created.get("Id")):
            raise_undone(exc)
        raise
    return replace(NetworkState.of_inspect(result), parent_preexisted=parent_preexisted)


def _remove_network_quietly(api: DockerApi, net_id: str | None) -> bool:
    """Remove the network just made; whether it is gone."""
    if not net_id:
        return False
    try:
        api.remove_network(net_id)
    except NotFound:
        pass
    except Exception:
        log.exception("rollback: could not remove network %s", net_id)
        return False
    return True


_STALE_ENDPOINTS_RETRY = (0.5, 1.0, 2.0)
"""Seconds between removals of a network Docker says has endpoints while none is attached."""


def _active_endpoints(exc: Exception) -> bool:
    # Docker answers 403 both for a network it counts endpoints on and for an authorization
    # plugin's refusal; only its sentence tells them apart.
    return "active endpoints" in _short(exc)


def _stale_endpoints(name: str, exc: Exception) -> str:
    return (f"network {name!r}: Docker refuses to remove it ({_short(exc)}) although no "
            "container is attached to it: Docker's count of its endpoints is stale, a Docker "
            "fault seen after containers on it were force-removed at the same time "
            "(moby/moby#43286). Restart dockerd on this host (`systemctl restart docker`), "
            "which recounts them (unless live-restore is on, that also stops the host's "
            "containers and starts again those with a restart policy), then run this again")


@changes("network", "name")
def network_remove(ctx: Context, args: NetworkRemove) -> Removed:
    """Remove ``args.owner``'s network (its labels, or unlabelled and the ``args.id`` state
    recorded); ``removed: False`` if it is gone, plus ``kept`` when one of that name is not
    ours (left alone). Attached containers make it an ``EBUSY`` error naming them (they may be
    another stack's: vlaninfra never disconnects them), once the changes of them under way
    (another agent's, `oplock`) have ended. Docker refusing while none is attached (it still
    counts endpoints) is tried again 3 times over 3.5 s, then an ``EBUSY`` error saying to
    restart dockerd.

    Example: ``network_remove(ctx, NetworkRemove("lan"))`` → ``Removed(removed=True)``
    """
    name = _check_name(args.name, "network name")

    def remove(net: NetworkInspect) -> None:
        waits = list(_STALE_ENDPOINTS_RETRY)
        settled = False
        while True:
            attached = sorted(net["containers"])
            if attached and settled:
                raise OpError(errno.EBUSY, f"network {name!r} has containers attached: "
                                           f"{', '.join(attached)}; remove or disconnect them "
                                           "first", containers=attached)
            if attached:
                # A change of one of them may be under way (an interrupted run's create that
                # its agent is removing again): it ends first, then the network is looked at
                # again.
                wait_for(ctx, "container", attached)
                settled = True
            else:
                try:
                    ctx.docker().remove_network(net["id"])
                    return
                except DockerError as exc:
                    # No container attached, yet Docker counts endpoints: one being released
                    # right now (gone on the next try) or a stale count (never gone).
                    if exc.status_code != 403 or not _active_endpoints(exc):
                        raise
                    if not waits:
                        raise OpError(errno.EBUSY, _stale_endpoints(name, exc)) from exc
                time.sleep(waits.pop(0))
            again = network_inspect(ctx, name)
            if again is None or again["id"] != net["id"]:
                raise NotFound(404, f"network {name!r} was removed meanwhile")
            net = again

    return _remove(f"network {name!r}", network_inspect(ctx, name), args.owner, args.id,
                   remove)


@changes("container", "spec.name")
def container_create(ctx: Context, args: ContainerCreate) -> ContainerState:
    """Create and start the container ``args.spec`` attached to its network with a fixed
    IP/MAC, labelled as ``args.mark``'s (owner, spec hash, config key).

    A container of that name is taken over (started if stopped; ``adopted``) when its labels
    name that owner and spec, else ``EEXIST`` naming its owner. ``ENOENT`` if the image
    (never pulled) or the network is missing. If creating or starting fails, the container is
    removed again; if even that fails (dockerd went away) the error says the outcome is
    unknown (``details.outcome == "unknown"``): the next create adopts it.

    Example: ``container_create(ctx, ContainerCreate(ContainerSpec("web", "busybox:lab",
    ("sleep", "3600"), "lan", ipv4="192.0.2.130", mac="02:42:c0:00:02:82")))``
    """
    c, mark = args.spec, args.mark
    name, image, network, owner, spec = c.name, c.image, c.network, mark.owner, mark.spec
    _check_name(name, "container name")
    _check_image(image)
    policy = parse_restart_policy(c.restart_policy)
    api = ctx.docker()
    existing = container_inspect(ctx, name)
    if existing is not None:
        _claim_existing(f"container {name!r}", existing, owner, spec)
        log.info("container.create %s: adopting the container an earlier run made", name)
        if not existing["running"]:
            api.start(existing["id"])
            existing = container_inspect(ctx, name)
            if existing is None:
                raise OpError(errno.EIO, f"container {name!r} vanished while starting")
        return replace(ContainerState.of_inspect(existing), adopted=True)
    try:
        api.inspect_image(image)
    except NotFound:
        raise OpError(errno.ENOENT, f"image {image!r} is not present on host "
                                    f"{socket.gethostname()!r} (vlaninfra never pulls "
                                    "images: load or build it there first)",
                      image=image) from None
    if network is not None and network_inspect(ctx, network) is None:
        raise OpError(errno.ENOENT, f"network {network!r} does not exist", network=network)
    # Docker < 25 (API < 1.44) reads the MAC from the container config only.
    new_api = _api_at_least(api, "1.44")
    networking_config = None
    if network is not None:
        endpoint = api.create_endpoint_config(
            ipv4_address=c.ipv4, ipv6_address=c.ipv6, mac_address=c.mac if new_api else None
        )
        networking_config = api.create_networking_config({network: endpoint})
    host_config = api.create_host_config(restart_policy=policy,
                                         network_mode=network or "none")
    container_id: str | None = None
    try:
        created = api.create_container(
            image,
            command=list(c.command) if c.command is not None else None,
            name=name,
            hostname=c.hostname,
            labels={**c.labels, **marks.labels(owner, spec, mark.resource)},
            mac_address=None if new_api else c.mac,
            host_config=host_config,
            networking_config=networking_config,
        )
        container_id = created["Id"]
        api.start(container_id)
        result = container_inspect(ctx, name)
        if result is None:
            raise OpError(errno.EIO, f"container {name!r} vanished right after creation")
        return ContainerState.of_inspect(result)
    except BaseException as exc:
        log.warning("container.create %s failed; removing what was created", name)
        try:
            if container_id is None:
                # create raised: whatever holds the name now may be someone else's (a 409
                # Conflict means another creator got there first). Remove it only when it
                # carries this very mark.
                found = container_inspect(ctx, name)
                if found is not None and marks.of_labels(found["labels"]) == marks.Mark(
                        owner, spec or ""):
                    container_id = found["id"]
            if container_id is not None:
                _stop_and_remove(ctx, container_id)
        except NotFound:
            container_id = None
        except Exception:
            log.exception("rollback: could not remove container %s", name)
            if isinstance(exc, Exception):
                raise OpError(errno.EIO, f"container {name!r}: {_short(exc)}; removing it "
                                         "again failed too, so it may be left created but not "
                                         "started (the next create adopts it)",
                              outcome="unknown") from exc
            container_id = None  # not undone
        if container_id is not None:
            raise_undone(exc)  # it made a container and removed it again
        raise


def _short(exc: BaseException) -> str:
    if isinstance(exc, OpError):
        return exc.message
    return f"docker: {getattr(exc, 'explanation', None) or exc}"


def _owned_container(ctx: Context, name: str, owner: str, expect_id: str | None,
                     ) -> ContainerInspect:
    current = container_inspect(ctx, name)
    if current is None:
        raise OpError(errno.ENOENT, f"container {name!r} does not exist")
    _ours(f"container {name!r}", current, owner, expect_id)
    return current


_NETWORK_LOCKS: dict[str, threading.Lock] = {}
_NETWORK_LOCKS_GUARD = threading.Lock()


LEAVE_GRACE = 2.0
"""Seconds a container waits to leave a network while another agent's container leaves it,
even once its op's wait budget is spent (each leave takes a fraction of a second; the agent
polls for another agent's lock while its own threads hand it over at once)."""


def _leave(ctx: Context, container_id: str, network: str, force: bool = False) -> None:
    """Disconnect a container from ``network``, one container of that network at a time on
    this Docker, whichever agent disconnects it (moby/moby#43286, see `_stop_and_remove`): an
    agent still finishing an interrupted run's removals and the next run's agent are
    serialized too. The agent's own threads queue on a lock of the process, so a queue of
    disconnects hands over at once, and only another agent is polled for (`oplock`)."""
    with _NETWORK_LOCKS_GUARD:
        lock = _NETWORK_LOCKS.setdefault(network, threading.Lock())
    with lock, changing(ctx, "endpoints", network, at_least=LEAVE_GRACE,
                        what=f"network {network!r} (its containers leave it one at a time)"):
        ctx.docker().disconnect_container_from_network(container_id, network, force=force)


def _stop_and_remove(ctx: Context, container_id: str, networks: Iterable[str] = ()) -> None:
    """Remove a container as ``docker rm -f`` does (no grace period), after it has left
    ``networks`` (one container of a network at a time, `_leave`) and stopped.

    Docker 20.10, removing containers of one network at the same time (as a destroy does),
    can leave that network's endpoint count above zero: it then refuses to remove the network
    ("has active endpoints") until dockerd restarts (moby/moby#43286; README, "What ipvlan and
    Docker 20.10 really do"). Leaving the network is the call that lowers the count; it is
    done in turn per network, and the stop and removal that follow no longer touch it. A stop
    is manual: a restart policy does not start the container again. A disconnect or stop
    Docker refuses leaves it to the force-removal; one that must wait too long for another
    agent's is ``EBUSY`` (not force-removed: that would be the race).
    """
    api = ctx.docker()
    left: list[str] = []
    for network in sorted(networks):
        try:
            _leave(ctx, container_id, network)
            left.append(network)
        except DockerError as exc:
            log.warning("disconnecting container %s from %s failed (%s); force-removing "
                        "it", container_id, network, _short(exc))
        except OpError as exc:
            if not left:
                raise
            raise OpError(exc.code, exc.message.replace("nothing was changed", (
                f"the container has left {', '.join(left)} already")), **exc.details) from None
    try:
        api.stop(container_id, timeout=0)
    except DockerError as exc:
        if isinstance(exc, NotFound):
            raise
        log.warning("stopping container %s failed (%s); force-removing it", container_id,
                    _short(exc))
    api.remove_container(container_id, force=True)


@changes("container", "name")
def container_remove(ctx: Context, args: ContainerRef) -> Removed:
    """Removes ``args.owner``'s container (its labels, or unlabelled and the ``args.id`` state
    recorded): it leaves its networks, stops, then is force-removed (`_stop_and_remove`);
    ``removed: False`` if it is gone, plus ``kept`` when one of that name is not ours (left
    alone).

    Example: ``container_remove(ctx, ContainerRef("web"))`` → ``Removed(removed=True)``
    """
    name = _check_name(args.name, "container name")
    return _remove(f"container {name!r}", container_inspect(ctx, name), args.owner, args.id,
                   lambda c: _stop_and_remove(ctx, c["id"], c["networks"]))


@changes("container", "name")
def container_update(ctx: Context, args: ContainerUpdate) -> ContainerState:
    """Change ``args.owner``'s container's restart policy in place; ``ENOENT`` if it does not
    exist, ``EPERM`` if it is not that owner's (see :func:`container_remove`).

    Example: ``container_update(ctx, ContainerUpdate("web", "on-failure:3"))``
    """
    name = _check_name(args.name, "container name")
    policy = parse_restart_policy(args.restart_policy)
    current = _owned_container(ctx, name, args.owner, args.id)
    if current["restart_policy"] != args.restart_policy:
        ctx.docker().update_container(current["id"], restart_policy=policy)
    result = container_inspect(ctx, name)
    if result is None:
        raise OpError(errno.ENOENT, f"container {name!r} vanished during update")
    return ContainerState.of_inspect(result)


@changes("container", "name")
def container_start(ctx: Context, args: ContainerRef) -> ContainerState:
    """Start ``args.owner``'s stopped container (no-op if running); ``ENOENT`` if it does not
    exist, ``EPERM`` if it is not that owner's.

    Example: ``container_start(ctx, ContainerRef("web")).running`` → ``True``
    """
    name = _check_name(args.name, "container name")
    current = _owned_container(ctx, name, args.owner, args.id)
    if not current["running"]:
        ctx.docker().start(current["id"])
    result = container_inspect(ctx, name)
    if result is None:
        raise OpError(errno.ENOENT, f"container {name!r} vanished while starting")
    return ContainerState.of_inspect(result)


@changes("container", "container")
def network_connect(ctx: Context, args: NetworkConnect) -> ContainerState:
    """Attach ``args.owner``'s container (``EPERM`` otherwise) to a network (no-op if
    attached); returns the container.

    The attachment that exists is kept as is even if its address differs: the caller
    compares and disconnects first when it wants a change.

    Example: ``network_connect(ctx, NetworkConnect("lan", "web", ipv4="192.0.2.131"))``
    """
    network = _check_name(args.network, "network name")
    container = _check_name(args.container, "container name")
    current = _owned_container(ctx, container, args.owner, args.id)
    if network in current["networks"]:
        return ContainerState.of_inspect(current)
    net = network_inspect(ctx, network)
    if net is None:
        raise OpError(errno.ENOENT, f"network {network!r} does not exist")
    api = ctx.docker()
    api.connect_container_to_network(
        current["id"], net["id"], ipv4_address=args.ipv4, ipv6_address=args.ipv6,
        mac_address=args.mac if _api_at_least(api, "1.44") else None,
    )
    result = container_inspect(ctx, container)
    if result is None:
        raise OpError(errno.ENOENT, f"container {container!r} vanished during connect")
    return ContainerState.of_inspect(result)


@changes("container", "container")
def network_disconnect(ctx: Context, args: NetworkDisconnect) -> ContainerState | None:
    """Detach ``args.owner``'s container (``EPERM`` otherwise) from a network (no-op if not
    attached); returns the container, or None if it does not exist.

    Example: ``network_disconnect(ctx, NetworkDisconnect("lan", "web")).networks`` → ``{}``
    """
    network = _check_name(args.network, "network name")
    container = _check_name(args.container, "container name")
    current = container_inspect(ctx, container)
    if current is not None and network in current["networks"]:
        _ours(f"container {container!r}", current, args.owner, args.id)
        with contextlib.suppress(NotFound):
            _leave(ctx, current["id"], network, force=args.force)
        current = container_inspect(ctx, container)
    return None if current is None else ContainerState.of_inspect(current)
