"""The contract's link and route ops on the host: each decodes into the netlink op (kept
with keyword args: boot files store those and ``restore`` replays them), wrapped by
:mod:`vlaninfra.host.persist` to keep or check the object's boot file when asked.

Example: ``shim_ensure(ctx, ShimEnsure(ShimSpec("shim0", "eth0", Driver.MACVLAN,
MacvlanMode.BRIDGE, "192.0.2.250/32")))``
"""

from __future__ import annotations

from vlaninfra.host import facts, ops, persist
from vlaninfra.host.context import Context
from vlaninfra.host.contract import (
    Deleted,
    LinkDelete,
    LinkRead,
    LinkState,
    RouteDelete,
    RouteEnsure,
    RouteRead,
    RouteState,
    ShimEnsure,
    VlanEnsure,
)

__all__ = ["route_delete", "route_ensure", "route_read", "shim_delete", "shim_ensure",
           "shim_read", "vlan_delete", "vlan_ensure", "vlan_read"]

_shim_ensure = persist.ensuring("shim", ops.shim_ensure)
_shim_read = persist.reading("shim", ops.shim_read)
_shim_delete = persist.deleting("shim", ops.shim_delete)
_vlan_ensure = persist.ensuring("vlan", ops.vlan_ensure)
_vlan_read = persist.reading("vlan", facts.link_get)
_vlan_delete = persist.deleting("vlan", ops.vlan_delete)
_route_ensure = persist.ensuring("route", ops.route_ensure)
_route_read = persist.reading("route", facts.route_get)
_route_delete = persist.deleting("route", ops.route_delete)


def _link(found: dict[str, object] | None) -> LinkState | None:
    return None if found is None else LinkState.of_link(found)


def shim_ensure(ctx: Context, a: ShimEnsure) -> LinkState:
    """Converge the shim ``a.spec`` (see :func:`ops.shim_ensure`)."""
    s = a.spec
    return LinkState.of_link(_shim_ensure(
        ctx, name=s.name, parent=s.parent, kind=s.kind.value, mode=s.mode.value,
        address=s.address, routes=list(s.routes), flag=s.flag.value if s.flag else None,
        owner=a.mark.owner, spec=a.mark.spec, ifindex=a.ifindex,
        extra_addresses=list(s.extra_addresses), persist_owner=a.persist_owner))


def shim_read(ctx: Context, a: LinkRead) -> LinkState | None:
    """The shim link and its routes (see :func:`ops.shim_read`)."""
    return _link(_shim_read(ctx, a.name, persist_owner=a.persist_owner))


def shim_delete(ctx: Context, a: LinkDelete) -> Deleted:
    """Delete ``a.owner``'s shim (see :func:`ops.shim_delete`)."""
    done = _shim_delete(ctx, a.name, owner=a.owner, ifindex=a.ifindex,
                        persist_owner=a.persist_owner)
    return Deleted(bool(done["deleted"]), done.get("kept"))


def vlan_ensure(ctx: Context, a: VlanEnsure) -> LinkState:
    """Converge the VLAN parent ``a.spec`` (see :func:`ops.vlan_ensure`)."""
    s = a.spec
    return LinkState.of_link(_vlan_ensure(
        ctx, trunk=s.trunk, vlan_id=s.vlan_id, name=s.name, owner=a.mark.owner,
        spec=a.mark.spec, persist_owner=a.persist_owner))


def vlan_read(ctx: Context, a: LinkRead) -> LinkState | None:
    """The VLAN link (see :func:`facts.link_get`)."""
    return _link(_vlan_read(ctx, a.name, persist_owner=a.persist_owner))


def vlan_delete(ctx: Context, a: LinkDelete) -> Deleted:
    """Delete ``a.owner``'s VLAN parent (see :func:`ops.vlan_delete`)."""
    done = _vlan_delete(ctx, a.name, owner=a.owner, ifindex=a.ifindex,
                        persist_owner=a.persist_owner)
    return Deleted(bool(done["deleted"]), done.get("kept"))


def route_ensure(ctx: Context, a: RouteEnsure) -> RouteState:
    """Converge the route ``a.spec`` (see :func:`ops.route_ensure`)."""
    s = a.spec
    return RouteState.of_route(_route_ensure(
        ctx, dst=s.destination, via=s.via, dev=s.dev, legacy_via=a.legacy_via,
        recorded_via=a.recorded_via, persist_owner=a.persist_owner))


def route_read(ctx: Context, a: RouteRead) -> RouteState | None:
    """The route to ``a.dst`` (see :func:`facts.route_get`)."""
    found = _route_read(ctx, a.dst, persist_owner=a.persist_owner)
    return None if found is None else RouteState.of_route(found)


def route_delete(ctx: Context, a: RouteDelete) -> Deleted:
    """Delete vlaninfra's route ``a.dst via a.via`` (see :func:`ops.route_delete`)."""
    done = _route_delete(ctx, a.dst, a.via, legacy=a.legacy, persist_owner=a.persist_owner)
    return Deleted(bool(done["deleted"]))
