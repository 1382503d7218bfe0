"""Pulumi components that lay a planned layout onto hosts: per site and network, the Docker
network on each host, the host shims and the containers."""

from __future__ import annotations

from ._site import (
    SiteNetwork,
    SiteVlanParents,
    UpstreamRoutes,
    container_inputs,
    deploy,
    network_inputs,
    shim_inputs,
)

__all__ = [
    "SiteNetwork",
    "SiteVlanParents",
    "UpstreamRoutes",
    "container_inputs",
    "deploy",
    "network_inputs",
    "shim_inputs",
]
