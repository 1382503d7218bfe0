"""vlaninfra: multi-tenant macvlan/ipvlan container networks on Docker hosts, through Pulumi.

The public API, all importable from here::

    import vlaninfra
    from vlaninfra.layout import Site as SiteLayout   # the typed layout model

    paris = vlaninfra.Site("paris", vlaninfra.SiteArgs(site=SiteLayout(name="paris", ...)))
    pulumi.export("paris", paris.outputs)

Names load on first use, so importing `vlaninfra.layout` (pure, no Pulumi) stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_HOMES = {
    "vlaninfra.components": (
        "ContainerOutput", "Site", "SiteArgs", "SiteOutputs", "UpstreamRouteOutput", "deploy",
    ),
    "vlaninfra.providers": (
        "Container", "ContainerArgs", "ContainerArgsDict", "DockerHost", "DockerNetwork",
        "DockerNetworkArgs", "DockerNetworkArgsDict", "HostShim", "HostShimArgs",
        "HostShimArgsDict", "IpamPool", "ProviderError", "RouterRoute", "RouterRouteArgs",
        "RouterRouteArgsDict", "VlanParent", "VlanParentArgs", "VlanParentArgsDict",
    ),
    "vlaninfra.errors": ("LayoutError", "VlanInfraError"),
    "vlaninfra.inventory": ("register_inventory",),
    "vlaninfra.layout": ("Layout", "SshTarget", "load_config", "plan"),
    "vlaninfra.loader": ("load_stack_file", "read_stack_config"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "Container",
    "ContainerArgs",
    "ContainerArgsDict",
    "ContainerOutput",
    "DockerHost",
    "DockerNetwork",
    "DockerNetworkArgs",
    "DockerNetworkArgsDict",
    "HostShim",
    "HostShimArgs",
    "HostShimArgsDict",
    "IpamPool",
    "Layout",
    "LayoutError",
    "ProviderError",
    "RouterRoute",
    "RouterRouteArgs",
    "RouterRouteArgsDict",
    "Site",
    "SiteArgs",
    "SiteOutputs",
    "SshTarget",
    "UpstreamRouteOutput",
    "VlanInfraError",
    "VlanParent",
    "VlanParentArgs",
    "VlanParentArgsDict",
    "deploy",
    "load_config",
    "load_stack_file",
    "plan",
    "read_stack_config",
    "register_inventory",
]


def __getattr__(name: str) -> Any:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'vlaninfra' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:
    from vlaninfra.components import (
        ContainerOutput,
        Site,
        SiteArgs,
        SiteOutputs,
        UpstreamRouteOutput,
        deploy,
    )
    from vlaninfra.errors import LayoutError, VlanInfraError
    from vlaninfra.inventory import register_inventory
    from vlaninfra.layout import Layout, SshTarget, load_config, plan
    from vlaninfra.loader import load_stack_file, read_stack_config
    from vlaninfra.providers import (
        Container,
        ContainerArgs,
        ContainerArgsDict,
        DockerHost,
        DockerNetwork,
        DockerNetworkArgs,
        DockerNetworkArgsDict,
        HostShim,
        HostShimArgs,
        HostShimArgsDict,
        IpamPool,
        ProviderError,
        RouterRoute,
        RouterRouteArgs,
        RouterRouteArgsDict,
        VlanParent,
        VlanParentArgs,
        VlanParentArgsDict,
    )
