"""Inventories: where sites that say `inventory: NAME` find their hosts' and routers' SSH
targets at run time, instead of `ssh:` settings in the stack file.

An inventory is registered under its name, either in Python (`register_inventory`) or by an
installed package through the entry point group ``vlaninfra.inventories`` (the local lab
registers ``lab`` this way, so the program never imports the test bed). Registered is a
factory, opened once per lookup batch, returning a resolver: ``(site, role, name)`` → the
member's `SshTarget`, or None when the inventory has no such member. ``role`` is ``"host"`` or
``"router"``.

Example::

    def open_cmdb() -> Resolver:
        rows = read_my_cmdb()
        return lambda site, role, name: SshTarget(address=rows[site, name], host_key=...)

    register_inventory("cmdb", open_cmdb)
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Literal

from vlaninfra.errors import VlanInfraError
from vlaninfra.layout import SshTarget

__all__ = ["ENTRY_POINT_GROUP", "Resolver", "Role", "open_inventory", "register_inventory"]

ENTRY_POINT_GROUP = "vlaninfra.inventories"
Role = Literal["host", "router"]
Resolver = Callable[[str, Role, str], "SshTarget | None"]
"""``resolver(site, role, name)`` → how to reach that member, None when not in the inventory."""

_REGISTERED: dict[str, Callable[[], Resolver]] = {}


def register_inventory(name: str, factory: Callable[[], Resolver]) -> None:
    """Makes `inventory: <name>` sites resolve through `factory()` (replacing an earlier one)."""
    _REGISTERED[name] = factory


def open_inventory(name: str) -> Resolver:
    """The resolver of inventory `name`: registered in Python, else by an installed package's
    ``vlaninfra.inventories`` entry point. Raises VlanInfraError naming what to do."""
    factory = _REGISTERED.get(name)
    if factory is None:
        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        if not found:
            known = sorted({*_REGISTERED, *(ep.name for ep in entry_points(
                group=ENTRY_POINT_GROUP))})
            raise VlanInfraError(
                f"inventory {name!r} is not registered (known: {', '.join(known) or 'none'}): "
                "install the package that provides it, or call "
                "vlaninfra.register_inventory() before declaring the site"
            )
        factory = found[0].load()
    return factory()
