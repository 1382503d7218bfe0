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
from collections.abc import Callable, Mapping
from typing import Any

import pulumi

from vlaninfra import confirm, record
from vlaninfra.components import deploy
from vlaninfra.engine import config_key, holds_private_key
from vlaninfra.errors import LayoutError, VlanInfraError
from vlaninfra.layout import Layout, Site, SshTarget, load_config, plan
from vlaninfra.providers import DockerHost
from vlaninfra.verify import verify

__all__ = ["LAB_INSTANCE_ENV", "check_secrets", "hosts_of", "routers_of", "run"]

LAB_INSTANCE_ENV = "VLANINFRA_LAB_INSTANCE"
"""Environment variable naming the lab instance whose inventory `inventory: lab` sites use."""


class _Reach:
    """Resolves how to reach hosts and routers: their `ssh` settings, else the lab inventory
    (read once, only when a site needs it)."""

    def __init__(self) -> None:
        self._lab: Any = None

    def lab(self) -> Any:
        if self._lab is None:
            from vlaninfra.lab import load_inventory

            self._lab = load_inventory(os.environ.get(LAB_INSTANCE_ENV) or "default")
        return self._lab

    def target(
        self, site: Site, name: str, ssh: SshTarget | None, key: str, from_lab: Callable[[Any], Any]
    ) -> DockerHost:
        """`ssh` when given; else the lab member `from_lab(lab site)` names (lab sites only)."""
        if ssh is not None:
            return DockerHost(
                name,
                ssh.address,
                host_key=ssh.host_key,
                port=ssh.port,
                user=ssh.user,
                key_path=_key_file(ssh, key),
                key_config=ssh.private_key_config,
                sudo=ssh.sudo,
                python=ssh.python,
                docker_socket=ssh.docker_socket,
            )
        if site.inventory != "lab":
            raise VlanInfraError(
                f"{key}: required outside the lab (the site has no `inventory: lab`); "
                "give its ssh address and host_key"
            )
        lab = self.lab()
        for lab_site in lab.sites:
            if lab_site.name == site.name or len(lab.sites) == 1:
                member = from_lab(lab_site)
                if member is not None:
                    return DockerHost(
                        name,
                        member.mgmt_address,
                        host_key=member.host_key,
                        port=member.ssh_port,
                        user=member.user,
                        key_path=str(lab.key_path),
                        docker_socket=getattr(member, "docker_socket", "/var/run/docker.sock"),
                    )
        raise VlanInfraError(
            f"{key}: {name!r} is not in the lab (run `vlaninfra lab up` with enough hosts)"
        )


def _key_file(ssh: SshTarget, key: str) -> str | None:
    """The key file path `ssh` names, checked: one key source at most, a path not relative to
    wherever the engine happens to run the program."""
    path = ssh.private_key_file
    if path is not None and ssh.private_key_config is not None:
        raise VlanInfraError(
            f"{key}: give private_key_file or private_key_config, not both "
            "(neither: ssh-agent authenticates)"
        )
    if path is not None and not (os.path.isabs(path) or path.startswith("~")):
        raise VlanInfraError(
            f"{key}.private_key_file: give an absolute path or ~/..., not {path!r}"
        )
    return path


def check_secrets(
    targets: Mapping[str, DockerHost],
    stack: str,
    get: Callable[[str], Any] = pulumi.runtime.get_config,
    is_secret: Callable[[str], bool] = pulumi.runtime.is_config_secret,
    all_keys: Callable[[], Mapping[str, Any]] = pulumi.runtime.get_config_env,
) -> list[str]:
    """What is wrong with the private keys kept in stack config, by the layout key that uses
    them (`targets`): a config key that is unset, or not a secret; and any config value that
    holds a private key without being a secret. The engine copies the whole stack config into
    state, so a non-secret key would be stored there in plain text: refused before anything is
    registered. Values are never named, only keys."""
    fix = "pulumi config set --secret {} --stack " + stack + " < KEYFILE"
    problems: list[str] = []
    reported: set[str] = set()
    for where, host in targets.items():
        if host.key_config is None:
            continue
        full = config_key(host.key_config)
        if get(full) is None:
            problems.append(
                f"{where}.private_key_config: the config key {full} is not set: "
                f"run `{fix.format(full)}` (or use ssh-agent or private_key_file)"
            )
        elif not is_secret(full):
            reported.add(full)
            problems.append(
                f"{where}.private_key_config: the config key {full} is not a secret, so the key "
                f"would be stored in plain text in the stack file and in Pulumi state: run "
                f"`{fix.format(full)}` (or use ssh-agent or private_key_file)"
            )
    for full in sorted(all_keys()):
        value = get(full)
        if full in reported or is_secret(full):
            continue
        if holds_private_key(value):
            problems.append(
                f"config key {full} holds a private key but is not a secret, so it would be "
                f"stored in plain text in Pulumi state: run `{fix.format(full)}`, or "
                f"`pulumi config rm {full} --stack {stack}` when no host uses it"
            )
    return problems


def hosts_of(layout: Layout) -> dict[tuple[str, str], DockerHost]:
    """How to reach every host of the layout, from its `ssh` settings or the lab inventory."""
    reach = _Reach()

    def lab_host(name: str) -> Callable[[Any], Any]:
        return lambda lab_site: next((h for h in lab_site.hosts if h.name == name), None)

    return {
        (site.name, host.name): reach.target(
            site, host.name, host.ssh, f"sites.{site.name}.hosts[{i}].ssh", lab_host(host.name)
        )
        for site in layout.sites
        for i, host in enumerate(site.hosts)
    }


def routers_of(layout: Layout) -> dict[tuple[str, str], DockerHost]:
    """How to reach every managed router that has upstream routes to apply or probes to run,
    from its `ssh` settings or the lab inventory (the lab site's router).
    Example: ``routers_of(layout)``"""
    reach = _Reach()
    return {
        (site.name, router.name): reach.target(
            site,
            router.name,
            router.ssh,
            f"sites.{site.name}.routers[{i}].ssh",
            lambda lab_site: lab_site.router,
        )
        for site in layout.sites
        for i, router in enumerate(site.routers)
        if router.managed and (
            any(n.driver == "ipvlan" and n.mode in ("l3", "l3s") for n in site.networks)
            or any(p.source == router.name for p in site.probes))
    }


def _by_config_path(
    layout: Layout,
    hosts: Mapping[tuple[str, str], DockerHost],
    routers: Mapping[tuple[str, str], DockerHost],
) -> dict[str, DockerHost]:
    """Every SSH target by the layout key of its `ssh` settings (for messages)."""
    found: dict[str, DockerHost] = {}
    for site in layout.sites:
        for i, h in enumerate(site.hosts):
            found[f"sites.{site.name}.hosts[{i}].ssh"] = hosts[(site.name, h.name)]
        for i, r in enumerate(site.routers):
            if (site.name, r.name) in routers:
                found[f"sites.{site.name}.routers[{i}].ssh"] = routers[(site.name, r.name)]
    return found


def run() -> None:
    """Reads the stack's layout, validates and plans it (all errors at once, before anything is
    declared, so a bad config changes nothing anywhere), then declares its resources."""
    config = pulumi.Config("vlaninfra")
    source = f"stacks/Pulumi.{pulumi.get_stack()}.yaml"
    try:
        # Known-good records (vlaninfra.record): a rollback's layout, pinned allocations.
        ctl = record.control()
        previous = record.previous_records(ctl)
        sites, pinned = record.target(lambda: config.require_object("sites"), previous.records,
                                      ctl)
        if ctl.phase in ("finalize", "confirm") or ctl.layout is not None:
            source = f"the layout of version {ctl.version or ctl.rollback_to}"
        layout = load_config({"sites": sites}, source=source)
        the_plan = plan(layout, previous=pinned)
        record.check_exact(previous.records, ctl, the_plan)  # exactly the recorded allocations
        hosts = hosts_of(layout)
        routers = routers_of(layout)
        problems = check_secrets(_by_config_path(layout, hosts, routers), pulumi.get_stack())
        if problems:
            raise VlanInfraError("\n".join(problems))
        # `vlaninfra up --confirm-within` / `confirm`: the hosts' guards, before any change.
        confirm.guard_hosts(ctl, _by_config_path(layout, hosts, routers), _config_value,
                            previous.records, _members_of)
    except LayoutError as err:
        raise pulumi.RunError(f"{source} is not a valid layout:\n{err}\n{record.REFUSED}"
                              ) from None
    except VlanInfraError as err:
        raise pulumi.RunError(f"{source}: {err}\n{record.REFUSED}") from None
    for warning in the_plan.warnings:
        pulumi.log.warn(str(warning))
    resources = record.custom_resources(deploy(the_plan, hosts, routers))
    record.export(sites, the_plan, resources, previous, ctl,
                  verify=lambda: verify(the_plan, hosts, routers, _config_value))


def _members_of(sites: Any) -> dict[str, DockerHost]:
    """Every SSH target of a recorded layout (`vlaninfra:sites` value), by its layout key."""
    layout = load_config({"sites": sites}, source="a recorded layout")
    return _by_config_path(layout, hosts_of(layout), routers_of(layout))


def _config_value(key: str) -> Any:
    """A stack config value by its full key (`vlaninfra:sshPrivateKey`), secrets decrypted."""
    namespace, _, name = key.partition(":")
    return pulumi.Config(namespace).get(name)
