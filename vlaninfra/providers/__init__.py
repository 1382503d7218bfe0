"""Pulumi dynamic providers and resources for one object on one Docker host.

Layering: providers compare desired with actual and decide; `vlaninfra.transport` carries the
calls to the host's agent; `vlaninfra.host` acts there.
"""

from __future__ import annotations

from . import _args, _quiet, _resources
from ._args import *  # noqa: F403  (the resources' inputs: `_args.__all__`)
from ._base import HostProvider
from ._container import ContainerProvider
from ._host import DockerHost, ProviderError
from ._network import NetworkProvider
from ._resources import *  # noqa: F403  (the resources: `_resources.__all__`)
from ._route import RouterRouteProvider
from ._shim import ShimProvider
from ._vlan import VlanParentProvider

__all__ = [
    "ContainerProvider",
    "DockerHost",
    "HostProvider",
    "NetworkProvider",
    "ProviderError",
    "RouterRouteProvider",
    "ShimProvider",
    "VlanParentProvider",
]
__all__ += _args.__all__
__all__ += _resources.__all__

_quiet.install()
