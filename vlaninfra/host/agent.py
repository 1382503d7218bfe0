"""The agent process: reads requests from stdin, runs ops, writes responses to stdout.

Started by the transport's bootstrap (``python3 -I -c <bootstrap> <archive> <sha256>``, over
SSH or locally), which runs this archive's checked bytes. Requests run concurrently on a
pool of ``MAX_WORKERS`` threads (Docker container creation is slow, and many provider
threads call at once); more requests queue, ``ping`` is answered at once; responses carry
the request id and are written whole, one line each, under a lock. stdout carries only
protocol lines: the real stdout is kept for the protocol and fd 1 is pointed at stderr, so
a stray ``print`` or a child process cannot corrupt the stream. stderr carries logs. The
agent exits when stdin closes, after the ops in flight have finished (an op is never cut in
half).

Example: ``printf '{"id":1,"op":"ping","args":{}}\\n' | python3 agent.pyz``
"""

from __future__ import annotations

import errno as _errno
import inspect
import logging
import os
import platform
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

from vlaninfra.host import (
    docker_facts,
    docker_ops,
    doctor_facts,
    facts,
    guard,
    persist,
    probe,
    protocol,
    typed_ops,
)
from vlaninfra.host.context import Context
from vlaninfra.host.contract import (
    CONTAINER_CREATE,
    CONTAINER_REMOVE,
    CONTAINER_START,
    CONTAINER_UPDATE,
    NETWORK_CONNECT,
    NETWORK_CREATE,
    NETWORK_DISCONNECT,
    NETWORK_REMOVE,
    ROUTE_DELETE,
    ROUTE_ENSURE,
    ROUTE_READ,
    SHIM_DELETE,
    SHIM_ENSURE,
    SHIM_READ,
    VLAN_DELETE,
    VLAN_ENSURE,
    VLAN_READ,
    Handler,
    handler,
)
from vlaninfra.host.errors import OpError

__all__ = ["OPS", "TYPED", "describe_error", "handle", "main", "run_request"]

log = logging.getLogger("vlaninfra.host.agent")
MAX_WORKERS = 16
BATCH_WORKERS = 8
"""Threads that ``parallel`` batches and ``check.facts`` run their entries on (kept for the
agent's life: each keeps its netlink socket and Docker client)."""
_batch_pool: ThreadPoolExecutor | None = None
_batch_pool_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _batch_pool
    with _batch_pool_lock:
        if _batch_pool is None:
            _batch_pool = ThreadPoolExecutor(BATCH_WORKERS, thread_name_prefix="batch")
        return _batch_pool


def ping(ctx: Context) -> dict[str, Any]:
    """Who and where the agent is: ``{pid, python, kernel, hostname, uid}``."""
    return {
        "pid": os.getpid(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "hostname": socket.gethostname(),
        "uid": os.getuid(),
    }


def hello(ctx: Context, docker_socket: str | None = None,
          docker_timeout: float | None = None) -> dict[str, Any]:
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
        ctx.docker_timeout = max(1, int(docker_timeout))  # the client wants whole seconds
    return {**ping(ctx), "protocol": protocol.PROTOCOL_VERSION}


def host_snapshot(ctx: Context) -> dict[str, Any]:
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


def check_facts(ctx: Context) -> dict[str, Any]:
    """What preview checks ask about a host, for every object at once (one round trip per
    host instead of one per resource): links by name (as ``link.get``), main-table routes (as
    ``route.list``), image tags and ids, Docker networks and containers by name (as
    ``docker.network.inspect`` / ``docker.container.inspect``). The Docker parts are None
    when the Docker socket does not exist."""
    with ctx.netlink() as ipr:
        links = {link["name"]: link for link in facts.read_links(ipr)}
        routes = facts.read_routes(ipr)
    out: dict[str, Any] = {"links": links, "routes": routes, "images": None,
                           "networks": None, "containers": None}
    if not ctx.docker_available():
        return out
    images: set[str] = set()
    for image in ctx.docker().images():
        images.update(image.get("RepoTags") or [])
        images.add(image["Id"])
    nets = [n["name"] for n in docker_facts.network_list(ctx)]
    ctrs = [c["name"] for c in docker_facts.container_list(ctx)]
    net_dicts = list(_pool().map(lambda n: docker_facts.network_inspect(ctx, n), nets))
    ctr_dicts = list(_pool().map(lambda c: docker_facts.container_inspect(ctx, c), ctrs))
    out["images"] = sorted(images)
    out["networks"] = {n: d for n, d in zip(nets, net_dicts, strict=True) if d is not None}
    out["containers"] = {c: d for c, d in zip(ctrs, ctr_dicts, strict=True) if d is not None}
    return out


def debug_sleep(ctx: Context, seconds: float) -> float:
    """Sleep up to 30 s and return the seconds slept (timeouts, concurrency, death tests)."""
    if not isinstance(seconds, (int, float)) or not 0 <= seconds <= 30:
        raise OpError(_errno.EINVAL, "seconds must be 0-30")
    time.sleep(seconds)
    return float(seconds)


def batch(ctx: Context, calls: list[dict[str, Any]], parallel: bool = False
          ) -> list[dict[str, Any]]:
    """Run ``[{op, args}]`` in order (with ``parallel``: concurrently, for independent reads);
    each entry becomes ``{ok, result}`` or ``{ok, error}``, in the order of ``calls``.

    Meant for checks and reads (many cheap facts in one round trip).
    """
    if not isinstance(calls, list):
        raise OpError(_errno.EINVAL, "batch: calls must be a list of {op, args}")

    def one(call: object) -> dict[str, Any]:
        try:
            if not isinstance(call, dict) or call.get("op") in ("batch", "check.facts"):
                raise OpError(_errno.EINVAL, "batch entries are {op, args} (no nested batch "
                                             "or check.facts)")
            return {"ok": True, "result": handle(ctx, call.get("op"), call.get("args"))}
        except Exception as exc:
            return {"ok": False, "error": describe_error(exc)}

    if not parallel or len(calls) < 2:
        return [one(call) for call in calls]
    return list(_pool().map(one, calls))


OPS: dict[str, Callable[..., Any]] = {
    "ping": ping,
    "hello": hello,
    "batch": batch,
    "debug.sleep": debug_sleep,
    "link.get": facts.link_get,
    "link.exists": facts.link_exists,
    "route.list": facts.route_list,
    "route.get": facts.route_get,
    "host.snapshot": host_snapshot,
    "check.facts": check_facts,
    "docker.version": docker_facts.docker_version,
    "docker.image.exists": docker_facts.image_exists,
    "docker.network.inspect": docker_facts.network_inspect,
    "docker.container.inspect": docker_facts.container_inspect,
    "probe.run": probe.run,
    "doctor.facts": doctor_facts.collect,
    "guard.arm": guard.arm,
    "guard.disarm": guard.disarm,
    "guard.status": guard.status,
}
"""The ops the agent serves with keyword args: name → function(ctx, **args)."""

TYPED: dict[str, Handler[Any, Any]] = {h.op.name: h for h in (
    handler(NETWORK_CREATE, docker_ops.network_create),
    handler(NETWORK_REMOVE, docker_ops.network_remove),
    handler(NETWORK_CONNECT, docker_ops.network_connect),
    handler(NETWORK_DISCONNECT, docker_ops.network_disconnect),
    handler(CONTAINER_CREATE, docker_ops.container_create),
    handler(CONTAINER_REMOVE, docker_ops.container_remove),
    handler(CONTAINER_UPDATE, docker_ops.container_update),
    handler(CONTAINER_START, docker_ops.container_start),
    # Ops that make what a reboot loses also keep (and their reads check) the file that
    # brings it back, when the caller names the owning stack (`persist_owner`).
    handler(SHIM_ENSURE, typed_ops.shim_ensure),
    handler(SHIM_READ, typed_ops.shim_read),
    handler(SHIM_DELETE, typed_ops.shim_delete),
    handler(VLAN_ENSURE, typed_ops.vlan_ensure),
    handler(VLAN_READ, typed_ops.vlan_read),
    handler(VLAN_DELETE, typed_ops.vlan_delete),
    handler(ROUTE_ENSURE, typed_ops.route_ensure),
    handler(ROUTE_READ, typed_ops.route_read),
    handler(ROUTE_DELETE, typed_ops.route_delete),
)}
"""The ops of the typed contract (:mod:`vlaninfra.host.contract`): name → handler decoding the
request's args into the op's argument type (a field it does not know is ``EINVAL``)."""

_HTTP_ERRNO = {400: _errno.EINVAL, 401: _errno.EACCES, 403: _errno.EPERM, 404: _errno.ENOENT,
               409: _errno.EEXIST, 500: _errno.EIO, 503: _errno.EAGAIN}


def handle(ctx: Context, op: object, args: object) -> Any:
    """Run one op by name with keyword ``args``; unknown ops and bad args are ``EINVAL``."""
    typed = TYPED.get(op) if isinstance(op, str) else None
    if typed is not None:
        return typed(ctx, args)
    fn = OPS.get(op) if isinstance(op, str) else None
    if fn is None:
        raise OpError(_errno.EOPNOTSUPP, f"unknown op {op!r}", known=sorted({*OPS, *TYPED}))
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise OpError(_errno.EINVAL, f"{op}: args must be an object")
    try:
        inspect.signature(fn).bind(ctx, **args)
    except TypeError as exc:
        raise OpError(_errno.EINVAL, f"{op}: {exc}") from None
    return fn(ctx, **args)


def describe_error(exc: BaseException) -> dict[str, Any]:
    """Turn an exception from an op into the protocol's error object (errno first)."""
    code: int | None
    details: dict[str, Any] = {}
    if isinstance(exc, OpError):
        code, message, details = exc.code, exc.message, exc.details
    elif type(exc).__name__ == "NetlinkError" and isinstance(getattr(exc, "code", None), int):
        code = exc.code  # type: ignore[attr-defined]
        message = f"netlink: {os.strerror(code)}" if code else f"netlink: {exc}"
    elif type(exc).__module__.startswith("docker."):
        from docker.errors import APIError, NotFound

        if isinstance(exc, APIError):
            status = exc.status_code
            code = _errno.ENOENT if isinstance(exc, NotFound) else _HTTP_ERRNO.get(
                status or 0, _errno.EIO)
            # The Engine API gives an HTTP status and a sentence, nothing finer; the
            # sentence is passed on as the message, never matched.
            message = f"docker: {exc.explanation or exc}"
            details = {"http_status": status}
        else:
            code, message = _errno.ECONNREFUSED, f"docker daemon not reachable: {exc}"
    elif isinstance(exc, OSError) and exc.errno is not None:
        code, message = exc.errno, f"{exc.strerror or exc}"
    else:
        code, message = _errno.EIO, f"{type(exc).__name__}: {exc}"
        log.error("unexpected error", exc_info=exc)
    return {
        "errno": code,
        "errname": _errno.errorcode.get(code, None) if code is not None else None,
        "type": type(exc).__name__,
        "message": message,
        "details": details,
    }


def run_request(ctx: Context, message: dict[str, Any]) -> dict[str, Any]:
    """Run one request message and build its response message (never raises)."""
    id_ = message["id"]
    try:
        return protocol.success(id_, handle(ctx, message.get("op"), message.get("args")))
    except Exception as exc:
        err = describe_error(exc)
        log.info("op %s (id %s) failed: %s %s", message.get("op"), id_, err["errname"],
                 err["message"])
        return {"id": id_, "ok": False, "error": err}


class _Writer:
    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, message: dict[str, Any]) -> None:
        try:
            data = protocol.encode(message)
        except (TypeError, ValueError) as exc:
            data = protocol.encode({"id": message["id"], "ok": False, "error": describe_error(
                OpError(_errno.EIO, f"result is not JSON-serialisable: {exc}"))})
        if len(data) > protocol.MAX_LINE:
            data = protocol.encode({"id": message["id"], "ok": False, "error": describe_error(
                OpError(_errno.EMSGSIZE, f"result is {len(data)} bytes, more than the "
                        f"protocol's {protocol.MAX_LINE}"))})
        with self._lock:
            try:
                self._stream.write(data)
                self._stream.flush()
            except (BrokenPipeError, ValueError):
                pass  # the transport is gone; the op's effect stands, nobody listens


def _respond(ctx: Context, writer: _Writer, message: dict[str, Any]) -> None:
    writer.write(run_request(ctx, message))


# Set while no warm-up import runs. Ops wait for it: two threads importing the Docker SDK at
# once can see a partly initialised `docker.types` (ImportError), so only one thread imports.
_imported = threading.Event()
_imported.set()


def _run_op(ctx: Context, writer: _Writer, message: dict[str, Any]) -> None:
    _imported.wait()
    _respond(ctx, writer, message)


def serve(ctx: Context, stdin: BinaryIO, stdout: BinaryIO, workers: int = MAX_WORKERS,
          max_line: int = protocol.MAX_LINE) -> None:
    """Serve requests from ``stdin`` until EOF; responses go to ``stdout``.

    Ops run on a pool of ``workers`` threads; more requests queue in order. ``ping`` is
    answered at once by the reading thread (the transport's dead-peer check), never queued.
    A request line longer than ``max_line`` ends the agent (memory stays bounded).
    """
    writer = _Writer(stdout)
    writer.write(protocol.success(0, {"ready": True, "protocol": protocol.PROTOCOL_VERSION,
                                      "pid": os.getpid()}))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="op") as pool:
        while line := stdin.readline(max_line + 1):
            if len(line) > max_line:
                log.error("request line longer than %d bytes; exiting", max_line)
                break
            if not line.strip():
                continue
            try:
                message = protocol.decode(line)
            except protocol.ProtocolError as exc:
                log.error("dropping malformed request: %s", exc)
                continue
            if message.get("op") == "ping":
                _respond(ctx, writer, message)
            else:
                pool.submit(_run_op, ctx, writer, message)
    log.info("stdin closed; exiting")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the zipapp / ``python -m vlaninfra.host``; ``restore`` runs the boot
    hook's restore (:func:`vlaninfra.host.persist.restore_main`) instead of serving."""
    if (sys.argv[1:] if argv is None else argv)[:1] == ["restore"]:
        return persist.restore_main()
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(
        stream=sys.stderr,
        level=os.environ.get("VLANINFRA_AGENT_LOG", "INFO"),
        format=f"vlaninfra-agent[{os.getpid()}] %(levelname)s %(name)s: %(message)s",
    )
    _imported.clear()
    threading.Thread(target=_warm_up, daemon=True, name="warm-up").start()
    serve(Context(), sys.stdin.buffer, proto_out)
    return 0


def _warm_up() -> None:
    """Import the Docker SDK and pyroute2 (about 1 s together) while the controller is still
    between the banner and its first op, instead of inside the first op that needs them;
    ops start once it is done (:data:`_imported`)."""
    try:
        import docker  # noqa: F401
        import pyroute2  # noqa: F401
    except Exception:  # the op that needs one reports it
        log.debug("warm-up import failed", exc_info=True)
    finally:
        _imported.set()
