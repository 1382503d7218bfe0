"""Pulumi components that lay a planned layout onto hosts: `Site`, the root of one site, and
below it per network the Docker network on each host, the host shims and the containers."""

from __future__ import annotations

from ._root import (
    ContainerOutput,
    Site,
    SiteArgs,
    SiteOutputs,
    UpstreamRouteOutput,
    deploy,
)
from ._site import (
    ConfigPaths,
    SiteNetwork,
    SiteVlanParents,
    UpstreamRoutes,
    container_inputs,
    network_inputs,
    shim_inputs,
)

__all__ = [
    "ConfigPaths",
    "ContainerOutput",
    "Site",
    "SiteArgs",
    "SiteNetwork",
    "SiteOutputs",
    "SiteVlanParents",
    "UpstreamRouteOutput",
    "UpstreamRoutes",
    "container_inputs",
    "deploy",
    "network_inputs",
    "shim_inputs",
]
