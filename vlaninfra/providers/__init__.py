"""Pulumi dynamic providers and resources for one object on one Docker host.

Layering: providers compare desired with actual and decide; `vlaninfra.transport` carries the
calls to the host's agent; `vlaninfra.host` acts there.
"""

from __future__ import annotations

from . import _quiet
from ._base import DockerHost, HostProvider, ProviderError
from ._container import ContainerProvider
from ._network import NetworkProvider
from ._resources import Container, DockerNetwork, HostShim, IpamPool, RouterRoute, VlanParent
from ._route import RouterRouteProvider
from ._shim import ShimProvider
from ._vlan import VlanParentProvider

__all__ = [
    "Container",
    "ContainerProvider",
    "DockerHost",
    "DockerNetwork",
    "HostProvider",
    "HostShim",
    "IpamPool",
    "NetworkProvider",
    "ProviderError",
    "RouterRoute",
    "RouterRouteProvider",
    "ShimProvider",
    "VlanParent",
    "VlanParentProvider",
]

_quiet.install()
