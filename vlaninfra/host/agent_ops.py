"""The agent's own ops: who and where it is (``ping``, ``hello``), whole-host reads in one
round trip (``host.snapshot``, ``check.facts``) and ``debug.sleep`` for timeout tests.

Example: ``ping(ctx)["kernel"]`` → ``"6.1.0-18-amd64"``
"""

from __future__ import annotations

import errno as _errno
import os
import platform
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypedDict

from vlaninfra.host import docker_facts, facts, protocol
from vlaninfra.host.context import Context
from vlaninfra.host.docker_facts import (
    ContainerInspect,
    ContainerSummary,
    NetworkInspect,
    NetworkSummary,
)
from vlaninfra.host.errors import OpError

__all__ = [
    "BATCH_WORKERS",
    "CheckFacts",
    "Hello",
    "HostSnapshot",
    "Ping",
    "batch_pool",
    "check_facts",
    "debug_sleep",
    "hello",
    "host_snapshot",
    "ping",
]

BATCH_WORKERS = 8
"""Threads that ``parallel`` batches and ``check.facts`` run their entries on (kept for the
agent's life: each keeps its netlink socket and Docker client)."""
_batch_pool: ThreadPoolExecutor | None = None
_batch_pool_lock = threading.Lock()

Fact = Mapping[str, object]
"""A link or route as :mod:`vlaninfra.host.facts` reads it."""


class Ping(TypedDict):
    """``{"pid": 4242, "python": "3.11.2", "kernel": "6.1.0", "hostname": "h1", "uid": 0}``"""

    pid: int
    python: str
    kernel: str
    hostname: str
    uid: int


class Hello(Ping):
    """:class:`Ping` plus the agent's protocol version."""

    protocol: int


class HostSnapshot(TypedDict):
    """Everything a before/after diff compares; the Docker parts are None without Docker."""

    links: Sequence[Fact]
    routes: Sequence[Fact]
    docker_networks: list[NetworkSummary] | None
    containers: list[ContainerSummary] | None


class CheckFacts(TypedDict):
    """What preview checks ask about a host; the Docker parts are None without Docker."""

    links: Mapping[str, Fact]
    routes: Sequence[Fact]
    images: list[str] | None
    networks: dict[str, NetworkInspect] | None
    containers: dict[str, ContainerInspect] | None


def batch_pool() -> ThreadPoolExecutor:
    """The agent's pool of :data:`BATCH_WORKERS` threads, made at first use."""
    global _batch_pool
    with _batch_pool_lock:
        if _batch_pool is None:
            _batch_pool = ThreadPoolExecutor(BATCH_WORKERS, thread_name_prefix="batch")
        return _batch_pool


def ping(ctx: Context) -> Ping:
    """Who and where the agent is: ``{pid, python, kernel, hostname, uid}``."""
    return {
        "pid": os.getpid(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "hostname": socket.gethostname(),
        "uid": os.getuid(),
    }


def hello(ctx: Context, docker_socket: str | None = None,
          docker_timeout: float | None = None) -> Hello:
    """First call of every session: configure the agent (Docker socket; Docker API timeout,
    the controller's Docker deadline), report ping facts plus the protocol version. (What the
    agent runs was checked by the transport's bootstrap before it started; the agent reports
    nothing about itself that anyone relies on.)"""
    if docker_socket is not None:
        if not isinstance(docker_socket, str) or not docker_socket.startswith("/"):
            raise OpError(_errno.EINVAL, "docker_socket must be an absolute path")
        ctx.docker_socket = docker_socket
    if docker_timeout is not None:
        if (isinstance(docker_timeout, bool) or not isinstance(docker_timeout, (int, float))
                or not docker_timeout > 0):
            raise OpError(_errno.EINVAL, "docker_timeout must be a positive number of seconds")
        ctx.docker_timeout = max(1, int(docker_timeout))
    return {**ping(ctx), "protocol": protocol.PROTOCOL_VERSION}


def host_snapshot(ctx: Context) -> HostSnapshot:
    """Links, main-table routes, Docker networks and containers, for before/after diffs.

    ``docker_networks``/``containers`` are None when the Docker socket does not exist.
    """
    with ctx.netlink() as ipr:
        links = facts.read_links(ipr)
        routes = facts.read_routes(ipr)
    docker_available = ctx.docker_available()
    return {
        "links": links,
        "routes": routes,
        "docker_networks": docker_facts.network_list(ctx) if docker_available else None,
        "containers": docker_facts.container_list(ctx) if docker_available else None,
    }


def check_facts(ctx: Context) -> CheckFacts:
    """What preview checks ask about a host, for every object at once (one round trip per
    host instead of one per resource): links by name (as ``link.get``), main-table routes (as
    ``route.list``), image tags and ids, Docker networks and containers by name (as
    ``docker.network.inspect`` / ``docker.container.inspect``). The Docker parts are None
    when the Docker socket does not exist."""
    with ctx.netlink() as ipr:
        links: dict[str, Fact] = {str(link["name"]): link for link in facts.read_links(ipr)}
        routes = facts.read_routes(ipr)
    out: CheckFacts = {"links": links, "routes": routes, "images": None,
                       "networks": None, "containers": None}
    if not ctx.docker_available():
        return out
    nets = [n["name"] for n in docker_facts.network_list(ctx)]
    ctrs = [c["name"] for c in docker_facts.container_list(ctx)]
    net_dicts = batch_pool().map(lambda n: docker_facts.network_inspect(ctx, n), nets)
    ctr_dicts = batch_pool().map(lambda c: docker_facts.container_inspect(ctx, c), ctrs)
    out["images"] = docker_facts.image_names(ctx)
    out["networks"] = {n: d for n, d in zip(nets, net_dicts, strict=True) if d is not None}
    out["containers"] = {c: d for c, d in zip(ctrs, ctr_dicts, strict=True) if d is not None}
    return out


def debug_sleep(ctx: Context, seconds: float) -> float:
    """Sleep up to 30 s and return the seconds slept (timeouts, concurrency, death tests)."""
    if not isinstance(seconds, (int, float)) or not 0 <= seconds <= 30:
        raise OpError(_errno.EINVAL, "seconds must be 0-30")
    time.sleep(seconds)
    return float(seconds)
