"""What a resource's properties say about its host: the property names every resource carries,
how to reach the host (`DockerHost`, its `connection` property) and the transport target
rebuilt from it.

Pulumi hands a dynamic provider its properties as an untyped dict (`Props`); the connection
is read from it once, as a `Connection`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from typing_extensions import NotRequired, TypedDict

from vlaninfra.errors import VlanInfraError
from vlaninfra.transport import LocalTarget, SshTarget, Target, TargetError

__all__ = [
    "CONFIG_PATH",
    "CONNECTION",
    "HOST",
    "OWNER",
    "PERSIST",
    "UNKNOWN",
    "ConfigLookup",
    "Connection",
    "DockerHost",
    "Props",
    "ProviderError",
    "has_unknowns",
    "host_label",
    "target_of",
]

Props: TypeAlias = dict[str, Any]
"""A resource's properties as Pulumi's dynamic-provider API hands them over and takes them
back (`check`, `diff`, `create`, `read`, `update`, `delete`, and the results' `outs`): JSON-like
values, numbers as floats, unknowns as `UNKNOWN`. Pulumi gives them no type, so this is the one
untyped form; each provider reads it into its typed inputs (`normalize`) and the contract's
specs before anything acts on it."""

CONNECTION = "connection"
"""Property holding how to reach the host (a `Connection`): kind, address, port, user,
host_key, and where the private key comes from (`key_path`, a file on the machine running
Pulumi, `key_config`, the name of a secret stack config key, or neither: ssh-agent). Never the
key itself."""
HOST = "host"
"""Property naming the host (the layout's host name): a different host is a different object."""
CONFIG_PATH = "config_path"
"""Property naming the config key a resource came from, so errors say what to change."""
OWNER = "owner"
"""Property naming the owning stack (`project/stack`): the mark put on everything created."""
PERSIST = "persist"
"""Input of the objects a reboot loses (links, addresses, routes): true when the host keeps the
file that brings the object back at boot (`vlaninfra.host.persist`). `check` sets it; `read`
reports it false when the file is missing or would not re-create the live object (drift)."""

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""How the dynamic-provider protocol spells a value not known during preview."""


class ProviderError(VlanInfraError, RuntimeError):
    """A provider operation failed on a host; the message names host, object and what failed."""


class Connection(TypedDict):
    """The `connection` property: a host over SSH (``kind`` ``ssh``) or this machine
    (``local``, in network namespace ``netns`` when set)."""

    kind: Literal["ssh", "local"]
    sudo: bool
    python: str
    docker_socket: str
    netns: NotRequired[str | None]
    address: NotRequired[str]
    port: NotRequired[int]
    user: NotRequired[str]
    host_key: NotRequired[str]
    key_path: NotRequired[str | None]
    key_config: NotRequired[str | None]
    passphrase_config: NotRequired[str | None]


@dataclass(frozen=True)
class DockerHost:
    """How to reach one Docker host: over SSH (`address` set) or on this machine (`address` None).

    The private key never travels in resource properties: with neither `key_path` nor
    `key_config` ssh-agent (`SSH_AUTH_SOCK` of the machine running Pulumi) authenticates;
    `key_path` names a key file on that machine (`~` allowed); `key_config` names a secret stack
    config key holding it (`pulumi config set --secret vlaninfra:sshPrivateKey < KEYFILE`),
    which the engine then keeps, encrypted, in state.

    Example: ``DockerHost("h1", "203.0.113.2", host_key="ssh-ed25519 AAAA...", key_path=p)``
    """

    name: str
    address: str | None = None
    host_key: str | None = None
    port: int = 22
    user: str = "root"
    key_path: str | None = None
    key_config: str | None = None
    passphrase_config: str | None = None
    sudo: bool = False
    python: str = "python3"
    docker_socket: str = "/var/run/docker.sock"
    netns: str | None = None

    def connection(self) -> Connection:
        """The resource property describing this host (no secrets)."""
        if self.address is None:
            return {
                "kind": "local",
                "netns": self.netns,
                "python": self.python,
                "docker_socket": self.docker_socket,
                "sudo": self.sudo,
            }
        if not self.host_key:
            raise TargetError(f"host {self.name}: an SSH host needs its pinned host_key")
        if self.key_path is not None and self.key_config is not None:
            raise TargetError(f"host {self.name}: give at most one of key_path and key_config")
        return {
            "kind": "ssh",
            "address": self.address,
            "port": self.port,
            "user": self.user,
            "host_key": self.host_key,
            "sudo": self.sudo,
            "python": self.python,
            "docker_socket": self.docker_socket,
            "key_path": self.key_path,
            "key_config": self.key_config,
            "passphrase_config": self.passphrase_config,
        }


ConfigLookup = Callable[[str], object]
"""Looks up a stack config value by its full key (`vlaninfra:sshPrivateKey`); None if unset."""


def connection_of(props: Props) -> Connection:
    """The `connection` property of ``props`` (inputs or outputs)."""
    conn: Connection = props[CONNECTION]
    return conn


def target_of(props: Props, config: ConfigLookup | None = None) -> Target:
    """Rebuilds the transport target from a resource's properties (inputs or outputs), taking the
    private key from its file or from the stack's secret config (`config`, as the provider got
    it)."""
    conn = connection_of(props)
    if conn["kind"] != "ssh":
        return LocalTarget(
            netns=conn.get("netns"),
            python=conn["python"],
            docker_socket=conn["docker_socket"],
            sudo=bool(conn.get("sudo", False)),
        )
    return SshTarget(
        host=conn["address"],
        port=int(conn["port"]),
        user=conn["user"],
        host_key=conn["host_key"],
        private_key=_private_key(conn, config or _no_config),
        passphrase=_config_value(config or _no_config, conn.get("passphrase_config")),
        sudo=bool(conn["sudo"]),
        python=conn["python"],
        docker_socket=conn["docker_socket"],
    )


def _no_config(_key: str) -> None:
    return None


def _config_value(config: ConfigLookup, key: str | None) -> str | None:
    if not key:
        return None
    value = config(key if ":" in key else f"vlaninfra:{key}")
    return None if value is None else str(value)


def _private_key(conn: Connection, config: ConfigLookup) -> str | None:
    """The key from its file or secret config key; None: ssh-agent authenticates."""
    key_path = conn.get("key_path")
    if key_path:
        path = os.path.expanduser(key_path)
        try:
            with open(path, encoding="utf-8") as f:
                return f.read()
        except OSError as err:
            raise ProviderError(
                f"cannot read the SSH private key file {path}: {err.strerror}"
            ) from None
        except UnicodeDecodeError:  # never quote its bytes: they may be the key
            raise ProviderError(
                f"the SSH private key file {path} is not text: give an OpenSSH or PEM key "
                "file (`ssh-keygen -p -f FILE` rewrites one in OpenSSH format)"
            ) from None
    name = conn.get("key_config")
    if not name:
        return None
    key = _config_value(config, name)
    if key is None:
        raise ProviderError(
            f"the secret config key {name!r} holding the SSH private key is not set: "
            f"run `pulumi config set --secret {name} < KEYFILE`"
        )
    return key


def host_label(props: Props) -> str:
    """`h1 (203.0.113.2)`: how errors name a host."""
    conn = connection_of(props)
    where = conn.get("address") or conn.get("netns") or "local"
    return f"{props.get(HOST, '?')} ({where})"


def has_unknowns(value: object) -> bool:
    """Whether `value` holds a value not known during preview (anywhere inside it)."""
    if value == UNKNOWN:
        return True
    if isinstance(value, Mapping):
        return any(has_unknowns(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(has_unknowns(v) for v in value)
    return False
