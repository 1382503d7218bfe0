"""The contract's link and route ops on the host: each runs its typed netlink op
(:mod:`vlaninfra.host.ops`) and, when ``persist_owner`` names the owning stack, keeps, drops
or checks the object's boot file (:mod:`vlaninfra.host.persist`) in the same op.

Example: ``shim_ensure(ctx, ShimEnsure(ShimSpec("shim0", "eth0", Driver.MACVLAN,
MacvlanMode.BRIDGE, "192.0.2.250/32")))``
"""

from __future__ import annotations

from dataclasses import replace
from typing import TypeVar

from vlaninfra.host import facts, ops, persist
from vlaninfra.host.context import Context
from vlaninfra.host.contract import (
    Deleted,
    LinkDelete,
    LinkRead,
    LinkState,
    Mark,
    RouteDelete,
    RouteEnsure,
    RouteRead,
    RouteSpec,
    RouteState,
    ShimEnsure,
    ShimSpec,
    VlanEnsure,
    VlanSpec,
)

__all__ = ["route_delete", "route_ensure", "route_read", "shim_delete", "shim_ensure",
           "shim_read", "vlan_delete", "vlan_ensure", "vlan_read"]

S = TypeVar("S", LinkState, RouteState)


def _keep(owner: str | None, spec: ShimSpec | VlanSpec | RouteSpec, mark: Mark) -> None:
    if owner is not None:
        persist.record(persist.Store.from_env(), owner, persist.Kept(spec, mark))


def _forget(owner: str | None, kind: persist.Kind, name: str) -> None:
    if owner is not None:
        persist.forget(persist.Store.from_env(), kind, owner, name)


def _checked(kind: persist.Kind, owner: str | None, found: S | None) -> S | None:
    """``found`` with ``persisted`` set when asked (see :func:`persist.check`)."""
    if owner is None or found is None:
        return found
    return replace(found, persisted=persist.check(persist.Store.from_env(), kind, owner, found))


def shim_ensure(ctx: Context, a: ShimEnsure) -> LinkState:
    """Converge the shim ``a.spec`` (see :func:`ops.shim_ensure`)."""
    found = ops.shim_ensure(ctx, a.spec, a.mark, a.ifindex)
    _keep(a.persist_owner, a.spec, a.mark)
    return found


def shim_read(ctx: Context, a: LinkRead) -> LinkState | None:
    """The shim link and its routes (see :func:`ops.shim_read`)."""
    return _checked("shim", a.persist_owner, ops.shim_read(ctx, a.name))


def shim_delete(ctx: Context, a: LinkDelete) -> Deleted:
    """Delete ``a.owner``'s shim (see :func:`ops.shim_delete`)."""
    done = ops.shim_delete(ctx, a.name, a.owner, a.ifindex)
    _forget(a.persist_owner, "shim", a.name)
    return done


def vlan_ensure(ctx: Context, a: VlanEnsure) -> LinkState:
    """Converge the VLAN parent ``a.spec`` (see :func:`ops.vlan_ensure`); its boot file is kept
    only when it is the owner's (one found there is not ours to bring back)."""
    found = ops.vlan_ensure(ctx, a.spec, a.mark)
    if found.created:
        _keep(a.persist_owner, a.spec, a.mark)
    return found


def vlan_read(ctx: Context, a: LinkRead) -> LinkState | None:
    """The VLAN link (see :func:`facts.link_get`)."""
    found = facts.link_get(ctx, a.name)
    return _checked("vlan", a.persist_owner, None if found is None else LinkState.of_link(found))


def vlan_delete(ctx: Context, a: LinkDelete) -> Deleted:
    """Delete ``a.owner``'s VLAN parent (see :func:`ops.vlan_delete`)."""
    done = ops.vlan_delete(ctx, a.name, a.owner, a.ifindex)
    _forget(a.persist_owner, "vlan", a.name)
    return done


def route_ensure(ctx: Context, a: RouteEnsure) -> RouteState:
    """Converge the route ``a.spec`` (see :func:`ops.route_ensure`)."""
    found = ops.route_ensure(ctx, a.spec, a.legacy_via, a.recorded_via)
    _keep(a.persist_owner, a.spec, Mark())
    return found


def route_read(ctx: Context, a: RouteRead) -> RouteState | None:
    """The route to ``a.dst`` (see :func:`facts.route_get`)."""
    found = facts.route_get(ctx, a.dst)
    return _checked("route", a.persist_owner,
                    None if found is None else RouteState.of_route(found))


def route_delete(ctx: Context, a: RouteDelete) -> Deleted:
    """Delete vlaninfra's route ``a.dst via a.via`` (see :func:`ops.route_delete`)."""
    done = ops.route_delete(ctx, a.dst, a.via, a.legacy)
    _forget(a.persist_owner, "route", a.dst)
    return done
