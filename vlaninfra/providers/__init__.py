"""Pulumi dynamic providers and resources for one object on one Docker host.

Layering: providers compare desired with actual and decide; `vlaninfra.transport` carries the
calls to the host's agent; `vlaninfra.host` acts there.
"""

from __future__ import annotations

from . import _quiet
from ._base import DockerHost, HostProvider, ProviderError
from ._container import ContainerProvider
from ._network import NetworkProvider
from ._resources import (
    Container,
    ContainerArgs,
    ContainerArgsDict,
    DockerNetwork,
    DockerNetworkArgs,
    DockerNetworkArgsDict,
    HostShim,
    HostShimArgs,
    HostShimArgsDict,
    IpamPool,
    RouterRoute,
    RouterRouteArgs,
    RouterRouteArgsDict,
    VlanParent,
    VlanParentArgs,
    VlanParentArgsDict,
)
from ._route import RouterRouteProvider
from ._shim import ShimProvider
from ._vlan import VlanParentProvider

__all__ = [
    "Container",
    "ContainerArgs",
    "ContainerArgsDict",
    "ContainerProvider",
    "DockerHost",
    "DockerNetwork",
    "DockerNetworkArgs",
    "DockerNetworkArgsDict",
    "HostProvider",
    "HostShim",
    "HostShimArgs",
    "HostShimArgsDict",
    "IpamPool",
    "NetworkProvider",
    "ProviderError",
    "RouterRoute",
    "RouterRouteArgs",
    "RouterRouteArgsDict",
    "RouterRouteProvider",
    "ShimProvider",
    "VlanParent",
    "VlanParentArgs",
    "VlanParentArgsDict",
    "VlanParentProvider",
]

_quiet.install()
