"""Preview checks answered from one snapshot per host (``check.facts``) instead of one round
trip per resource.

Inside :func:`checking` (the providers' ``check``), an :class:`~vlaninfra.transport.Agent`
answers the ops checks use from a snapshot of the host taken once and reused for
:data:`MAX_AGE` seconds. Only answers that a stale snapshot cannot make wrong are taken from
it: "exists" for an image or a NIC (a missing one is asked on the host, so preview still
names a missing parent or image exactly as before), and what holds a name (an object created
since by someone else is refused by the create itself, which claims names on the host).
Everything else goes to the host as usual.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
from collections.abc import Iterator
from typing import Any

__all__ = ["FACT_OPS", "MAX_AGE", "answer", "checking", "in_check"]

MAX_AGE = 30.0
"""Seconds one snapshot of a host serves checks (one engine phase checks within it)."""
FACT_OPS = frozenset({"docker.image.exists", "link.exists", "link.get", "route.get",
                      "docker.network.inspect", "docker.container.inspect"})
"""The ops a snapshot can answer."""

_checking: contextvars.ContextVar[bool] = contextvars.ContextVar("vlaninfra_checking",
                                                                 default=False)
_ASK = object()


@contextlib.contextmanager
def checking() -> Iterator[None]:
    """Within: this thread's agent calls may be answered from the host's check snapshot."""
    token = _checking.set(True)
    try:
        yield
    finally:
        _checking.reset(token)


def in_check() -> bool:
    """Whether this thread is inside :func:`checking`."""
    return _checking.get()


def answer(facts: dict[str, Any], op: str, args: dict[str, Any]) -> tuple[bool, Any]:
    """``(True, result)`` when the snapshot ``facts`` answers ``op(**args)`` the way the host
    would; ``(False, None)``: ask the host."""
    found = _answer(facts, op, args)
    return (False, None) if found is _ASK else (True, found)


def _answer(facts: dict[str, Any], op: str, args: dict[str, Any]) -> Any:
    name = args.get("name")
    if op == "link.exists" and isinstance(name, str):
        return True if name in facts["links"] else _ASK
    if op == "link.get" and isinstance(name, str):
        return facts["links"].get(name)
    if op == "docker.image.exists" and isinstance(name, str):
        images = facts.get("images")
        return True if images is not None and name in images else _ASK
    for key, what in (("networks", "docker.network.inspect"),
                      ("containers", "docker.container.inspect")):
        if op == what and isinstance(name, str) and facts.get(key) is not None:
            return facts[key].get(name)
    if op == "route.get" and isinstance(args.get("dst"), str):
        try:
            dst = str(ipaddress.ip_network(args["dst"]))
        except ValueError:
            return _ASK  # the host says what is wrong with it
        found = sorted((r for r in facts["routes"] if r["dst"] == dst),
                       key=lambda r: r["metric"] or 0)
        return found[0] if found else None
    return _ASK
