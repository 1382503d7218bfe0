"""The lab's inventory for `inventory: lab` sites (entry point ``vlaninfra.inventories:lab``):
the SSH targets of the hosts and routers of a running lab instance, `default` or the one the
environment variable `VLANINFRA_LAB_INSTANCE` names (so a test can point a stack at its own
lab)."""

from __future__ import annotations

import os

import vlaninfra.lab
from vlaninfra.inventory import Resolver, Role
from vlaninfra.layout import SshTarget

__all__ = ["LAB_INSTANCE_ENV", "open_lab"]

LAB_INSTANCE_ENV = "VLANINFRA_LAB_INSTANCE"
"""Environment variable naming the lab instance whose inventory `inventory: lab` sites use."""


def open_lab() -> Resolver:
    """Reads the instance's inventory (once) and resolves its members: a layout site takes the
    lab site of the same name, or the only one."""
    lab = vlaninfra.lab.load_inventory(os.environ.get(LAB_INSTANCE_ENV) or "default")

    def resolve(site: str, role: Role, name: str) -> SshTarget | None:
        for lab_site in lab.sites:
            if lab_site.name != site and len(lab.sites) != 1:
                continue
            if role == "router":
                m = lab_site.router
                return SshTarget(address=m.mgmt_address, port=m.ssh_port, user=m.user,
                                 host_key=m.host_key, private_key_file=str(lab.key_path))
            for h in lab_site.hosts:
                if h.name == name:
                    return SshTarget(address=h.mgmt_address, port=h.ssh_port, user=h.user,
                                     host_key=h.host_key, private_key_file=str(lab.key_path),
                                     docker_socket=h.docker_socket)
        return None

    return resolve
