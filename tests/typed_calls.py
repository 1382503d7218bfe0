"""Agent tests written with flat keyword args (the netlink ops' own, as boot files keep
them), sent as the typed contract's ops: ``call(agent, "shim.ensure", name="shim0",
parent="eth0")``.
The wire form is built without checking it, so the host's own checks answer bad args."""

from __future__ import annotations

import json
from typing import Any

from vlaninfra.host.contract import (
    CONTAINER_CREATE,
    CONTAINER_REMOVE,
    CONTAINER_START,
    CONTAINER_UPDATE,
    DEFAULT_MODE,
    LINK_GET,
    NETWORK_CONNECT,
    NETWORK_DISCONNECT,
    ROUTE_DELETE,
    ROUTE_ENSURE,
    ROUTE_READ,
    SHIM_DELETE,
    SHIM_ENSURE,
    SHIM_READ,
    VLAN_DELETE,
    VLAN_ENSURE,
    VLAN_READ,
    Caller,
    Driver,
    Op,
    encode,
)

_OPS: dict[str, Op[Any, Any]] = {op.name: op for op in (
    LINK_GET, ROUTE_DELETE, ROUTE_ENSURE, ROUTE_READ, SHIM_DELETE, SHIM_ENSURE, SHIM_READ,
    VLAN_DELETE, VLAN_ENSURE, VLAN_READ, CONTAINER_CREATE, CONTAINER_REMOVE, CONTAINER_START,
    CONTAINER_UPDATE, NETWORK_CONNECT, NETWORK_DISCONNECT)}
_SPEC = {"vlan.ensure": ("trunk", "vlan_id", "name"),
         "docker.container.create": ("name", "image", "command", "network", "ipv4", "ipv6",
                                     "mac", "restart_policy", "labels", "hostname"),
         "shim.ensure": ("name", "parent", "kind", "mode", "address", "routes", "flag",
                         "extra_addresses"),
         "route.ensure": ("dst", "via", "dev")}


def wire(op: str, flat: dict[str, Any]) -> dict[str, Any]:
    """The typed op's args from an ensure's flat args (other ops take them as they are)."""
    if op not in _SPEC:
        return flat
    spec = {("destination" if k == "dst" else k): v for k, v in flat.items() if k in _SPEC[op]}
    if op == "shim.ensure":  # the netlink op's defaults
        spec.setdefault("kind", "macvlan")
        if spec["kind"] in ("macvlan", "ipvlan"):
            spec.setdefault("mode", DEFAULT_MODE[Driver(spec["kind"])].value)
    mark = {k: flat[k] for k in ("owner", "spec", "resource")
            if k in flat and op != "route.ensure"}
    rest = {k: v for k, v in flat.items() if k not in _SPEC[op] and k not in mark}
    return {"spec": spec, **({"mark": mark} if mark else {}), **rest}


def call(agent: Caller, op: str, /, **flat: Any) -> Any:
    """Run ``op`` with flat args; its typed result as JSON (fields at their default left out,
    as the agent sends them), or None."""
    result = _OPS[op].result(agent.call(op, **wire(op, flat)))
    return json.loads(json.dumps(encode(result)))
