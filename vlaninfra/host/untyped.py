"""The host side's untyped boundaries, each named once.

Past these names every value is ours and typed (the contract's specs and states, the
TypedDicts of :mod:`vlaninfra.host.docker_facts` and :mod:`vlaninfra.host.agent`). Each
alias is ``Any`` because the library or format behind it has no types to offer, and its
values are turned into our own types as soon as they are read.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DockerApi", "DockerJson", "JsonObject", "Netlink", "NetlinkMsg"]

DockerApi = Any
"""The Engine API client (:meth:`Context.docker`, a
:class:`~vlaninfra.host.docker_api.DockerClient`) or a test's fake of its methods."""

DockerJson = dict[str, Any]
"""A JSON object of the Docker Engine API as the client returns it (``inspect_network``,
``containers()``, ``version()``); its fields vary with the daemon's version, so it is read with
``.get`` and turned into the agent's own forms at once (:mod:`vlaninfra.host.docker_facts`)."""

Netlink = Any
"""A ``pyroute2.IPRoute`` (:meth:`Context.netlink`, or a test's fake of it): pyroute2 ships no
type hints. The values read through it are narrowed into the contract's ``LinkState`` and
``RouteState`` right there (:mod:`vlaninfra.host.facts`)."""

NetlinkMsg = Any
"""One message pyroute2 returns (an ``nlmsg``, read with ``.get("IFLA_…")``): untyped like
:data:`Netlink`; read only in :mod:`vlaninfra.host.facts` and the route converge."""

JsonObject = dict[str, Any]
"""A JSON object as ``json.loads`` gives it: a protocol message, or an op's keyword
arguments before they are bound to the op's typed signature."""
