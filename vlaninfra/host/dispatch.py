"""Which function serves which op, and how its outcome becomes a protocol answer.

Two tables: :data:`OPS` (functions called with keyword args, checked against their signature)
and :data:`TYPED` (the ops of the typed contract, whose args are decoded into the op's argument
type). Every exception an op raises becomes an error object, errno first.

Example: ``handle(ctx, "ping", {})["uid"]`` → ``0``
"""

from __future__ import annotations

import errno as _errno
import inspect
import logging
import os
from collections.abc import Callable
from typing import TypedDict

from vlaninfra.host import (
    agent_ops,
    contract,
    docker_facts,
    docker_ops,
    doctor_facts,
    facts,
    guard,
    probe,
    protocol,
    typed_ops,
)
from vlaninfra.host.context import Context
from vlaninfra.host.docker_api import DockerError, DockerIOError, DockerUnreachable, NotFound
from vlaninfra.host.errors import OpError
from vlaninfra.host.untyped import JsonObject

__all__ = [
    "OPS",
    "TYPED",
    "Answer",
    "BatchEntry",
    "batch",
    "describe_error",
    "errored",
    "handle",
    "run_request",
]

log = logging.getLogger("vlaninfra.host.agent")


class _BatchOk(TypedDict):
    ok: bool


class BatchEntry(_BatchOk, total=False):
    """One answer of a batch: ``{"ok": true, "result": ...}`` or ``{"ok": false, "error":
    {...}}``."""

    result: object
    error: protocol.ErrorBody


def batch(ctx: Context, calls: list[object], parallel: bool = False) -> list[BatchEntry]:
    """Run ``[{op, args}]`` in order (with ``parallel``: concurrently, for independent reads);
    each entry becomes ``{ok, result}`` or ``{ok, error}``, in the order of ``calls``.

    Meant for checks and reads (many cheap facts in one round trip).
    """
    if not isinstance(calls, list):
        raise OpError(_errno.EINVAL, "batch: calls must be a list of {op, args}")

    def one(call: object) -> BatchEntry:
        try:
            if not isinstance(call, dict) or call.get("op") in ("batch", "check.facts"):
                raise OpError(_errno.EINVAL, "batch entries are {op, args} (no nested batch "
                                             "or check.facts)")
            return {"ok": True, "result": handle(ctx, call.get("op"), call.get("args"))}
        except Exception as exc:
            return {"ok": False, "error": describe_error(exc)}

    if not parallel or len(calls) < 2:
        return [one(call) for call in calls]
    return list(agent_ops.batch_pool().map(one, calls))


OPS: dict[str, Callable[..., object]] = {
    "ping": agent_ops.ping,
    "hello": agent_ops.hello,
    "batch": batch,
    "debug.sleep": agent_ops.debug_sleep,
    "link.get": facts.link_get,
    "link.exists": facts.link_exists,
    "route.list": facts.route_list,
    "route.get": facts.route_get,
    "host.snapshot": agent_ops.host_snapshot,
    "check.facts": agent_ops.check_facts,
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

TYPED: dict[str, Callable[[Context, object], object]] = {h.op.name: h for h in (
    contract.handler(contract.NETWORK_CREATE, docker_ops.network_create),
    contract.handler(contract.NETWORK_REMOVE, docker_ops.network_remove),
    contract.handler(contract.NETWORK_CONNECT, docker_ops.network_connect),
    contract.handler(contract.NETWORK_DISCONNECT, docker_ops.network_disconnect),
    contract.handler(contract.CONTAINER_CREATE, docker_ops.container_create),
    contract.handler(contract.CONTAINER_REMOVE, docker_ops.container_remove),
    contract.handler(contract.CONTAINER_UPDATE, docker_ops.container_update),
    contract.handler(contract.CONTAINER_START, docker_ops.container_start),
    # Ops that make what a reboot loses also keep (and their reads check) the file that
    # brings it back, when the caller names the owning stack (`persist_owner`).
    contract.handler(contract.SHIM_ENSURE, typed_ops.shim_ensure),
    contract.handler(contract.SHIM_READ, typed_ops.shim_read),
    contract.handler(contract.SHIM_DELETE, typed_ops.shim_delete),
    contract.handler(contract.VLAN_ENSURE, typed_ops.vlan_ensure),
    contract.handler(contract.VLAN_READ, typed_ops.vlan_read),
    contract.handler(contract.VLAN_DELETE, typed_ops.vlan_delete),
    contract.handler(contract.ROUTE_ENSURE, typed_ops.route_ensure),
    contract.handler(contract.ROUTE_READ, typed_ops.route_read),
    contract.handler(contract.ROUTE_DELETE, typed_ops.route_delete),
)}
"""The ops of the typed contract (:mod:`vlaninfra.host.contract`): name → handler decoding the
request's args into the op's argument type (a field it does not know is ``EINVAL``)."""

_HTTP_ERRNO = {400: _errno.EINVAL, 401: _errno.EACCES, 403: _errno.EPERM, 404: _errno.ENOENT,
               409: _errno.EEXIST, 500: _errno.EIO, 503: _errno.EAGAIN}


def handle(ctx: Context, op: object, args: object) -> object:
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


def describe_error(exc: BaseException) -> protocol.ErrorBody:
    """Turn an exception from an op into the protocol's error object (errno first)."""
    code: int | None
    details: dict[str, object] = {}
    if isinstance(exc, OpError):
        code, message, details = exc.code, exc.message, exc.details
    elif type(exc).__name__ == "NetlinkError" and isinstance(getattr(exc, "code", None), int):
        code = exc.code  # type: ignore[attr-defined]
        message = f"netlink: {os.strerror(code)}" if code else f"netlink: {exc}"
    elif isinstance(exc, DockerError):
        status = exc.status_code
        code = _errno.ENOENT if isinstance(exc, NotFound) else _HTTP_ERRNO.get(status,
                                                                               _errno.EIO)
        # The Engine API gives an HTTP status and a sentence, nothing finer; the sentence is
        # passed on as the message, never matched.
        message = f"docker: {exc.explanation or exc}"
        details = {"http_status": status}
    elif isinstance(exc, DockerUnreachable):
        code, message = _errno.ECONNREFUSED, f"docker daemon not reachable: {exc}"
    elif isinstance(exc, DockerIOError):
        code, message = exc.errno, f"docker: {exc.strerror}"
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


Answer = protocol.Success | protocol.Failure
"""A response message."""


def run_request(ctx: Context, message: JsonObject) -> Answer:
    """Run one request message (as decoded, its id checked) and build its response message
    (never raises)."""
    id_: int = message["id"]
    try:
        return protocol.success(id_, handle(ctx, message.get("op"), message.get("args")))
    except Exception as exc:
        answer = errored(id_, exc)
        log.info("op %s (id %s) failed: %s %s", message.get("op"), id_,
                 answer["error"]["errname"], answer["error"]["message"])
        return answer


def errored(id_: int, exc: BaseException) -> protocol.Failure:
    """The failure answer to request ``id_`` for ``exc``."""
    return {"id": id_, "ok": False, "error": describe_error(exc)}

