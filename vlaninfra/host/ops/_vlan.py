"""802.1Q VLAN parents: a sub-interface of a trunk NIC that networks and shims sit on."""

from __future__ import annotations

import errno
from dataclasses import replace

from vlaninfra.host import marks
from vlaninfra.host.context import Context
from vlaninfra.host.contract import Deleted, LinkState, Mark, VlanSpec, encode
from vlaninfra.host.errors import OpError, raise_undone

from ._common import (
    check_ifname,
    delete_link,
    delete_owned,
    ignore,
    link_mark,
    parent_index,
    read_state,
    read_states,
)

__all__ = ["vlan_delete", "vlan_ensure"]


def vlan_ensure(ctx: Context, spec: VlanSpec, mark: Mark | None = None) -> LinkState:
    """Converge the 802.1Q sub-interface ``spec`` (id ``vlan_id`` on ``trunk``), up.

    A missing link is created with the alias ``vlaninfra:<owner>:<spec>`` from ``mark``. A
    link of that name that exists with another kind, trunk or id is an ``EEXIST`` error (it
    is someone else's; the caller decides). ``created`` says whether the link is the owner's
    (made by this call or an earlier interrupted one): an existing unmarked one is adopted
    read-only (``created: False``, so it is never deleted).

    Example: ``vlan_ensure(ctx, VlanSpec("eth0", 50, "eth0.50")).created`` → ``True``
    """
    mark = mark or Mark()
    trunk = check_ifname(spec.trunk, "trunk interface name")
    name = check_ifname(spec.name, "VLAN interface name")
    vlan_id = spec.vlan_id
    with ctx.netlink() as ipr:
        trunk_index = parent_index(ipr, trunk)
        current = read_state(ipr, name)
        created = False
        if current is None:
            try:
                ipr.link("add", ifname=name, kind="vlan", link=trunk_index, vlan_id=vlan_id)
                created = True
            except Exception as exc:
                ignore(exc, frozenset({errno.EEXIST}))
            current = read_state(ipr, name)
            assert current is not None
            if created:
                try:
                    ipr.link("set", index=current.index,
                             ifalias=marks.alias(mark.owner, mark.spec))
                except BaseException as exc:
                    delete_link(ipr, name)
                    raise_undone(exc)
        if (current.kind, current.parent, current.vlan_id) != ("vlan", trunk, vlan_id):
            raise OpError(
                errno.EEXIST,
                f"{name!r} exists as {current.kind} on {current.parent!r} "
                f"(vlan id {current.vlan_id}), not VLAN {vlan_id} on {trunk!r}; vlaninfra "
                "leaves it alone: name another VLAN parent in the config",
                link=encode(current),
            )
        found = link_mark(current)
        ours = created or (found is not None and found.owner == mark.owner)
        if not ours:
            # Another's (or a hand-made) link is used as it is, never changed.
            if not current.up:
                whose = f"owned by stack {found.owner!r}" if found else "not owned by vlaninfra"
                raise OpError(errno.ENETDOWN,
                              f"VLAN parent {name!r} exists but is down, and it is {whose}: "
                              f"vlaninfra does not change it; bring it up on the host (`ip "
                              f"link set {name} up`) or name another VLAN parent in the "
                              "config", link=encode(current))
            return replace(current, created=False)
        try:
            ipr.link("set", index=current.index, state="up")
            result = read_state(ipr, name)
            assert result is not None
        except BaseException as exc:
            if created:
                delete_link(ipr, name)
                raise_undone(exc)
            raise
        return replace(result, created=True)


def vlan_delete(ctx: Context, name: str, owner: str = marks.ADHOC_OWNER,
                ifindex: int | None = None) -> Deleted:
    """Delete an 802.1Q sub-interface when it is ``owner``'s (its alias, or unmarked and the
    VLAN link ``ifindex`` state recorded); tolerates it being gone. Another link of that
    name is left in place and reported as ``kept``.

    Links in this namespace whose parent it is (a shim, maybe another stack's) would go with it:
    that is an ``EBUSY`` error naming them. (Containers' macvlan links live in their own
    namespaces and are not seen here; the engine removes a stack's networks first.)

    Example: ``vlan_delete(ctx, "eth0.50")`` → ``Deleted(False)`` when already gone.
    """
    check_ifname(name)
    with ctx.netlink() as ipr:
        current = read_state(ipr, name)
        if current is not None and current.kind == "vlan":
            children = [link.name for link in read_states(ipr) if link.parent == name]
            if children:
                raise OpError(errno.EBUSY, f"VLAN parent {name!r} still carries "
                                           f"{', '.join(children)}: deleting it would delete "
                                           "them too; remove those first (from the config, or "
                                           "on the host if they are not vlaninfra's)",
                              links=children)
        return delete_owned(ipr, name, ("vlan",), owner, ifindex)
