"""The Pulumi program behind `stacks/`: stack config → layout → plan → resources.

A stack file (`stacks/Pulumi.<stack>.yaml`) holds the layout under `vlaninfra:sites`. A site
that says `inventory: lab` takes its hosts' (and its managed router's) SSH targets from the
local lab (`vlaninfra lab up`): from instance `default`, or the instance named by the
environment variable `VLANINFRA_LAB_INSTANCE` (so a test can point a stack at its own lab).

Example (the whole of `stacks/__main__.py`)::

    from vlaninfra.program import run
    run()
"""

from __future__ import annotations

import os
from typing import Any

import pulumi

from vlaninfra.components import deploy
from vlaninfra.errors import LayoutError, VlanInfraError
from vlaninfra.layout import Layout, SshTarget, load_config, plan
from vlaninfra.providers import DockerHost

__all__ = ["LAB_INSTANCE_ENV", "hosts_of", "routers_of", "run"]

LAB_INSTANCE_ENV = "VLANINFRA_LAB_INSTANCE"
"""Environment variable naming the lab instance whose inventory `inventory: lab` sites use."""


def _lab_inventory() -> Any:
    from vlaninfra.lab import load_inventory

    return load_inventory(os.environ.get(LAB_INSTANCE_ENV) or "default")


def _ssh_host(name: str, ssh: SshTarget) -> DockerHost:
    return DockerHost(
        name,
        ssh.address,
        host_key=ssh.host_key,
        port=ssh.port,
        user=ssh.user,
        key_config=ssh.private_key_config,
        sudo=ssh.sudo,
        python=ssh.python,
        docker_socket=ssh.docker_socket,
    )


def hosts_of(layout: Layout) -> dict[tuple[str, str], DockerHost]:
    """How to reach every host of the layout, from its `ssh` settings or the lab inventory."""
    out: dict[tuple[str, str], DockerHost] = {}
    lab: Any = None
    for site in layout.sites:
        for host in site.hosts:
            if host.ssh is not None:
                out[(site.name, host.name)] = _ssh_host(host.name, host.ssh)
                continue
            if site.inventory != "lab":
                raise VlanInfraError(
                    f"sites.{site.name}.hosts.{host.name}: no `ssh` settings and the site has no "
                    "`inventory: lab`; give the host's ssh address and host_key"
                )
            if lab is None:
                lab = _lab_inventory()
            out[(site.name, host.name)] = _lab_host(lab, site.name, host.name)
    return out


def routers_of(layout: Layout) -> dict[tuple[str, str], DockerHost]:
    """How to reach every managed router that has upstream routes to apply, from its `ssh`
    settings or the lab inventory (the lab site's router). Example: ``routers_of(layout)``"""
    out: dict[tuple[str, str], DockerHost] = {}
    lab: Any = None
    for site in layout.sites:
        routed = any(n.driver == "ipvlan" and n.mode in ("l3", "l3s") for n in site.networks)
        for i, router in enumerate(site.routers):
            if not (router.managed and routed):
                continue
            if router.ssh is not None:
                out[(site.name, router.name)] = _ssh_host(router.name, router.ssh)
                continue
            if site.inventory != "lab":
                raise VlanInfraError(
                    f"sites.{site.name}.routers[{i}].ssh: required for a managed router "
                    "outside the lab; give its ssh address and host_key"
                )
            if lab is None:
                lab = _lab_inventory()
            out[(site.name, router.name)] = _lab_router(lab, site.name)
    return out


def _lab_router(inventory: Any, site: str) -> DockerHost:
    for lab_site in inventory.sites:
        if lab_site.name == site or len(inventory.sites) == 1:
            r = lab_site.router
            return DockerHost(
                r.name,
                r.mgmt_address,
                host_key=r.host_key,
                port=r.ssh_port,
                user=r.user,
                key_path=str(inventory.key_path),
            )
    raise VlanInfraError(f"sites.{site}: the lab has no site {site!r} (run `vlaninfra lab up`)")


def _lab_host(inventory: Any, site: str, host: str) -> DockerHost:
    for lab_site in inventory.sites:
        for h in lab_site.hosts:
            if h.name == host and (lab_site.name == site or len(inventory.sites) == 1):
                return DockerHost(
                    host,
                    h.mgmt_address,
                    host_key=h.host_key,
                    port=h.ssh_port,
                    user=h.user,
                    key_path=str(inventory.key_path),
                    docker_socket=h.docker_socket,
                )
    raise VlanInfraError(
        f"sites.{site}: host {host!r} is not in the lab (run `vlaninfra lab up` with enough hosts)"
    )


def run() -> None:
    """Reads the stack's layout, validates and plans it (all errors at once, before anything is
    declared, so a bad config changes nothing anywhere), then declares its resources."""
    config = pulumi.Config("vlaninfra")
    source = f"stacks/Pulumi.{pulumi.get_stack()}.yaml"
    try:
        layout = load_config({"sites": config.require_object("sites")}, source=source)
        the_plan = plan(layout)
        hosts = hosts_of(layout)
        routers = routers_of(layout)
    except LayoutError as err:
        raise pulumi.RunError(f"{source} is not a valid layout:\n{err}") from None
    except VlanInfraError as err:
        raise pulumi.RunError(f"{source}: {err}") from None
    for warning in the_plan.warnings:
        pulumi.log.warn(str(warning))
    deploy(the_plan, hosts, routers)
