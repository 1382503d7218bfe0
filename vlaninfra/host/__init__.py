"""The agent that runs ON a Docker host: netlink via pyroute2, Docker's Engine API over its socket.

This package is shipped to the host inside a zipapp (see :mod:`vlaninfra.transport`) and run
with the host's ``python3``. It therefore imports nothing from vlaninfra outside
``vlaninfra.host``, never imports Pulumi or paramiko, and importing the package itself pulls
in no third-party module (only ``facts``/``ops`` do: pyroute2).

Modules:

- ``protocol``: line-delimited JSON framing shared with the transport (stdlib only);
- ``facts`` / ``ops``: netlink reads / idempotent, transactional netlink changes;
- ``docker_facts`` / ``docker_ops``: the same for the Docker Engine API, spoken by
  ``docker_api`` (stdlib only);
- ``agent``: the stdin/stdout loop; ``dispatch``: the op registry and error objects;
  ``agent_ops``: the agent's own ops (``ping``, ``hello``, ``host.snapshot``, ``check.facts``);
- ``untyped``: the few untyped values from outside (Engine JSON, pyroute2, parsed JSON),
  each named once.

Example (on the host): ``python3 vlaninfra-agent-<sha12>.pyz`` then write
``{"id": 1, "op": "ping", "args": {}}`` to its stdin.
"""

from __future__ import annotations

__all__: list[str] = []
