"""The Pulumi program behind `stacks/`: stack config → layout → plan → resources.

A stack file (`stacks/Pulumi.<stack>.yaml`) holds the layout under `vlaninfra:sites`. A site
that says `inventory: lab` takes its hosts' (and its managed router's) SSH targets from the
inventory of that name (`vlaninfra.inventory`), which the local lab registers: its instance
`default`, or the one the environment variable `VLANINFRA_LAB_INSTANCE` names.

Example (the whole of `stacks/__main__.py`)::

    from vlaninfra.program import run
    run()
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import pulumi

from vlaninfra import confirm, record
from vlaninfra.components import deploy
from vlaninfra.engine import config_key, holds_private_key
from vlaninfra.errors import LayoutError, VlanInfraError
from vlaninfra.inventory import Resolver, Role, open_inventory
from vlaninfra.layout import Host, Layout, Router, Site, SshTarget, load_config, plan
from vlaninfra.providers import DockerHost
from vlaninfra.verify import verify

__all__ = ["by_config_path", "check_secrets", "check_targets", "hosts_of", "routers_of", "run"]


class _Reach:
    """Resolves how to reach hosts and routers: their `ssh` settings, else the site's
    inventory (`vlaninfra.inventory`; opened once, only when a site needs it)."""

    def __init__(self) -> None:
        self._open: dict[str, Resolver] = {}

    def target(self, site: Site, role: Role, name: str, ssh: SshTarget | None, key: str
               ) -> DockerHost:
        """`ssh` when given; else what the site's inventory says about the member."""
        if ssh is None:
            inventory = site.inventory
            if inventory is None:
                raise VlanInfraError(
                    f"{key}: required outside the lab (the site has no `inventory: lab`); "
                    "give its ssh address and host_key"
                )
            try:
                if inventory not in self._open:
                    self._open[inventory] = open_inventory(inventory)
                ssh = self._open[inventory](site.name, role, name)
            except VlanInfraError as err:
                raise VlanInfraError(f"{key}: inventory {inventory!r}: {err}") from None
            except Exception as err:  # a user's resolver: say where, not a traceback
                raise VlanInfraError(f"{key}: inventory {inventory!r} failed to resolve "
                                     f"{name!r}: {type(err).__name__}: {err}") from None
            if ssh is None:
                raise VlanInfraError(
                    f"{key}: {name!r} is not in the {inventory} inventory "
                    "(the lab's: run `vlaninfra lab up` with enough hosts)"
                )
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


def check_targets(targets: Mapping[str, DockerHost]) -> list[str]:
    """What keeps a target from being reached, by its layout key (`targets`): an SSH host
    without the pinned host key it needs. The layout alone may leave it out (a plan needs
    none), the program may not: refused before anything is declared."""
    return [
        f"{where}.host_key: an SSH host needs its pinned host key, e.g. 'ssh-ed25519 AAAA...': "
        f"add it from `ssh-keyscan -t ed25519{'' if host.port == 22 else f' -p {host.port}'} "
        f"{host.address.strip('[]')}` (without the host name), checked out of band"
        for where, host in targets.items() if host.address is not None and not host.host_key
    ]


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
    return _reach(layout, "host", lambda site: site.hosts, lambda site, host: True)


def routers_of(layout: Layout) -> dict[tuple[str, str], DockerHost]:
    """How to reach every managed router that has upstream routes to apply or probes to run,
    from its `ssh` settings or the lab inventory (the lab site's router).
    Example: ``routers_of(layout)``"""
    def wanted(site: Site, router: Router) -> bool:
        return router.managed and (
            any(n.driver == "ipvlan" and n.mode in ("l3", "l3s") for n in site.networks)
            or any(p.source == router.name for p in site.probes))

    return _reach(layout, "router", lambda site: site.routers, wanted)


Member = TypeVar("Member", Host, Router)


def _reach(layout: Layout, role: Role, members: Callable[[Site], tuple[Member, ...]],
           wanted: Callable[[Site, Member], bool]) -> dict[tuple[str, str], DockerHost]:
    """``(site, name)`` → how to reach each of a site's ``members`` it ``wanted``; the config
    key of its ``ssh`` is ``sites.<site>.<role>s[<i>].ssh``."""
    reach = _Reach()
    return {
        (site.name, member.name): reach.target(
            site, role, member.name, member.ssh, f"sites.{site.name}.{role}s[{i}].ssh")
        for site in layout.sites
        for i, member in enumerate(members(site))
        if wanted(site, member)
    }


def by_config_path(
    layout: Layout,
    hosts: Mapping[tuple[str, str], DockerHost],
    routers: Mapping[tuple[str, str], DockerHost],
) -> dict[str, DockerHost]:
    """Every SSH target by the layout key of its `ssh` settings (for messages)."""
    found: dict[str, DockerHost] = {}
    for site in layout.sites:
        for i, h in enumerate(site.hosts):
            if (site.name, h.name) in hosts:
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
        targets = by_config_path(layout, hosts, routers)
        problems = check_targets(targets) + check_secrets(targets, pulumi.get_stack())
        if problems:
            raise VlanInfraError("\n".join(problems))
        # `vlaninfra up --confirm-within` / `confirm`: the hosts' guards, before any change.
        confirm.guard_hosts(ctl, targets, _config_value, previous.records, _members_of)
    except LayoutError as err:
        raise pulumi.RunError(f"{source} is not a valid layout:\n{err}\n{record.REFUSED}"
                              ) from None
    except VlanInfraError as err:
        raise pulumi.RunError(f"{source}: {err}\n{record.REFUSED}") from None
    for warning in the_plan.warnings:
        pulumi.log.warn(str(warning))
    sites_declared = deploy(the_plan, hosts, routers, layout=layout)
    # What each site looks like once applied (addresses, MACs, ids): `pulumi stack output sites`.
    pulumi.export("sites", {s.name: d.outputs for s, d in zip(the_plan.sites, sites_declared,
                                                              strict=True)})
    resources = record.custom_resources(sites_declared)
    record.export(sites, the_plan, resources, previous, ctl,
                  verify=lambda: verify(the_plan, hosts, routers, _config_value))


def _members_of(sites: Any) -> dict[str, DockerHost]:
    """Every SSH target of a recorded layout (`vlaninfra:sites` value), by its layout key."""
    layout = load_config({"sites": sites}, source="a recorded layout")
    return by_config_path(layout, hosts_of(layout), routers_of(layout))


def _config_value(key: str) -> Any:
    """A stack config value by its full key (`vlaninfra:sshPrivateKey`), secrets decrypted."""
    namespace, _, name = key.partition(":")
    return pulumi.Config(namespace).get(name)
