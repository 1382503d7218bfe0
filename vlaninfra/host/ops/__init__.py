"""Netlink ops: idempotent, errno-based, transactional changes to links, addresses, routes.

Each op takes the contract's typed spec (:class:`~vlaninfra.host.contract.ShimSpec`,
``VlanSpec``, ``RouteSpec``), converges the host towards it and is a no-op when the host
already matches; it answers with the contract's typed state. ``NetlinkError.code`` decides
everything: ``EEXIST`` means already there, ``ENODEV``/``ESRCH``/``EADDRNOTAVAIL`` mean
already gone. A multi-step op undoes the steps it finished when a later step fails (today: a
link it created is deleted again).

Links and routes carry vlaninfra's mark (:mod:`vlaninfra.host.marks`: the link alias, route
protocol 57); an op never changes or deletes a link or route without the caller's mark.

Example: ``shim_ensure(ctx, ShimSpec("shim0", "eth0", Driver.MACVLAN, MacvlanMode.BRIDGE,
"192.0.2.250/32", ("192.0.2.128/26",)), Mark("infra/prod"))``
"""

from ._common import check_ifname
from ._route import route_delete, route_ensure
from ._shim import converge_addresses, shim_delete, shim_ensure, shim_read
from ._vlan import vlan_delete, vlan_ensure

__all__ = [
    "check_ifname",
    "converge_addresses",
    "route_delete",
    "route_ensure",
    "shim_delete",
    "shim_ensure",
    "shim_read",
    "vlan_delete",
    "vlan_ensure",
]
