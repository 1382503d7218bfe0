"""What every vlaninfra dynamic provider shares: the host connection carried in each resource's
properties, the one agent per host, and diffs driven by one declared set of replace-keys.

Providers hold no state of their own (they are pickled into Pulumi state by dill): every call
rebuilds the transport target from the resource's properties and takes the host's agent from the
transport's process-wide cache, so a provider process opens one connection per host.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    DiffResult,
    ResourceProvider,
)

from vlaninfra.errors import VlanInfraError
from vlaninfra.host import marks
from vlaninfra.host.contract import LinkState, Mark, RouteState, encode
from vlaninfra.host.errors import OpError
from vlaninfra.transport import (
    Agent,
    HostError,
    LocalTarget,
    OutcomeUnknownError,
    SshTarget,
    Target,
    TransportError,
    agent_for,
    checking,
)

__all__ = [
    "CONNECTION",
    "OWNER",
    "PERSIST",
    "DockerHost",
    "HostProvider",
    "ProviderError",
    "clash_of",
    "has_unknowns",
    "nic_missing",
    "target_of",
]

CONNECTION = "connection"
"""Property holding how to reach the host: kind, address, port, user, host_key, and where the
private key comes from (`key_path`, a file on the machine running Pulumi, `key_config`, the
name of a secret stack config key, or neither: ssh-agent). Never the key itself."""
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

# Properties that describe how to reach a host (or who asks), not the object on it: never a
# reason to replace it. The config path is not one: it only labels messages, and an object
# whose key moved (a container added above it) is not changed.
_TRANSPORT_KEYS = frozenset({CONNECTION, OWNER})

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""How the dynamic-provider protocol spells a value not known during preview."""


class ProviderError(VlanInfraError, RuntimeError):
    """A provider operation failed on a host; the message names host, object and what failed."""


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

    def connection(self) -> dict[str, Any]:
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
            raise ValueError(f"host {self.name}: an SSH host needs its pinned host_key")
        if self.key_path is not None and self.key_config is not None:
            raise ValueError(f"host {self.name}: give at most one of key_path and key_config")
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


def target_of(props: Mapping[str, Any], config: ConfigLookup | None = None) -> Target:
    """Rebuilds the transport target from a resource's properties (inputs or outputs), taking the
    private key from its file or from the stack's secret config (`config`, as the provider got
    it)."""
    conn = props[CONNECTION]
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


ConfigLookup = Callable[[str], Any]
"""Looks up a stack config value by its full key (`vlaninfra:sshPrivateKey`); None if unset."""


def _no_config(_key: str) -> None:
    return None


def _config_value(config: ConfigLookup, key: str | None) -> str | None:
    if not key:
        return None
    value = config(key if ":" in key else f"vlaninfra:{key}")
    return None if value is None else str(value)


def _private_key(conn: Mapping[str, Any], config: ConfigLookup) -> str | None:
    """The key from its file or secret config key; None: ssh-agent authenticates."""
    if conn.get("key_path"):
        path = os.path.expanduser(conn["key_path"])
        try:
            with open(path, encoding="utf-8") as f:
                return f.read()
        except OSError as err:
            raise ProviderError(
                f"cannot read the SSH private key file {path}: {err.strerror}"
            ) from None
    if not conn.get("key_config"):
        return None
    key = _config_value(config, conn.get("key_config"))
    if key is None:
        name = conn.get("key_config")
        raise ProviderError(
            f"the secret config key {name!r} holding the SSH private key is not set: "
            f"run `pulumi config set --secret {name} < KEYFILE`"
        )
    return key


def host_label(props: Mapping[str, Any]) -> str:
    """`h1 (203.0.113.2)`: how errors name a host."""
    conn = props[CONNECTION]
    where = conn.get("address") or conn.get("netns") or "local"
    return f"{props.get(HOST, '?')} ({where})"


def _differs(old: Any, new: Any) -> bool:
    return bool(new == UNKNOWN or old != new)


def _can_persist(connection: Any) -> bool:
    """Whether a host keeps boot files: not a network namespace reached with the local
    transport, which shares this machine's filesystem and would have its objects re-created in
    the machine's own namespace at boot (the lab's namespace hosts, reached over SSH, get a
    root of their own: `VLANINFRA_HOST_ROOT`)."""
    return not (isinstance(connection, Mapping) and connection.get("kind") == "local"
                and connection.get("netns"))


class HostProvider(ResourceProvider):
    """Base of the providers: subclasses declare their keys and implement the operations.

    `REPLACE_KEYS` are properties whose change needs a new object on the host; every other input
    property (but the transport ones) is updated in place. `normalize` brings inputs into the one
    form that is compared, so that order and spelling never make a diff.
    """

    KIND = "object"
    REPLACE_KEYS: frozenset[str] = frozenset()
    INPUT_KEYS: frozenset[str] = frozenset()
    SPEC_KEYS: frozenset[str] | None = None
    """The normalized inputs hashed into the spec mark (default: `INPUT_KEYS`)."""
    PERSISTS = False
    """Whether the object is kept across reboot (the `persist` input, one of `INPUT_KEYS`)."""

    # -- hooks -------------------------------------------------------------------------------
    def normalize(self, props: Mapping[str, Any]) -> dict[str, Any]:
        """The comparable form of the input properties (subclasses sort, default, canonicalize)."""
        return {k: props.get(k) for k in self.INPUT_KEYS}

    def validate(self, news: Mapping[str, Any]) -> list[CheckFailure]:
        """Static checks of new inputs (no I/O)."""
        return []

    def validate_on_host(self, agent: Agent, news: Mapping[str, Any]) -> list[CheckFailure]:
        """Checks that need the host (a parent NIC exists, the image is there, ...)."""
        return []

    def clash(self, agent: Agent, news: Mapping[str, Any]) -> str | None:
        """Why the object a new resource would create cannot be: one of its name is on the
        host and is not this stack's (with this spec). None when the name is free or ours."""
        return None

    # -- ownership ---------------------------------------------------------------------------
    def owner(self, props: Mapping[str, Any]) -> str:
        """The stack that owns the object (`project/stack`)."""
        return str(props.get(OWNER) or marks.ADHOC_OWNER)

    def spec(self, props: Mapping[str, Any]) -> str:
        """The spec hash of the inputs that define the object."""
        n = self.normalize(props)
        return marks.spec_hash({k: n.get(k) for k in sorted(self.SPEC_KEYS or self.INPUT_KEYS)})

    def persist_owner(self, props: Mapping[str, Any], *, deleting: bool = False
                      ) -> str | None:
        """The op argument asking the host to keep (or check) the object's boot file: the
        owning stack, or None. A delete always asks to remove it (state may say `persist:
        false` after a refresh found the file missing or altered, and a file left behind
        would re-create the object at boot)."""
        wanted = props.get(PERSIST) or (deleting and self.PERSISTS
                                        and _can_persist(props.get(CONNECTION)))
        return self.owner(props) if wanted else None

    def persisted(self, found: LinkState | RouteState, props: Mapping[str, Any]) -> bool:
        """The `persist` input as read from the host: whether its file matches the object."""
        return bool(props.get(PERSIST)) and found.persisted == "ok"

    def mark(self, props: Mapping[str, Any]) -> Mark:
        """The mark an op puts on the object: this stack, the spec hash, the config key."""
        return Mark(self.owner(props), self.spec(props), props.get(CONFIG_PATH))

    def mark_args(self, props: Mapping[str, Any]) -> dict[str, Any]:
        """The op arguments marking an object as this stack's."""
        return dict(encode(self.mark(props)))

    # -- shared machinery --------------------------------------------------------------------
    def configure(self, req: ConfigureRequest) -> None:
        # The stack's config (secrets decrypted) reaches the provider process here, never state.
        self._stack_config = req.config

    def agent(self, props: Mapping[str, Any]) -> Agent:
        config = getattr(self, "_stack_config", None)
        return agent_for(target_of(props, config.get if config is not None else None))

    def _head(self, props: Mapping[str, Any]) -> str:
        where = f" ({props[CONFIG_PATH]})" if props.get(CONFIG_PATH) else ""
        return f"{self.KIND} {props.get('name', '?')!r}{where} on host {host_label(props)}"

    def removed(self, props: Mapping[str, Any], kept: str | None) -> None:
        """Raise when the host kept the object instead of removing it (``kept``: why; it is
        not this stack's owner's): a delete that reports success would leave it there unseen."""
        if kept:
            raise ProviderError(
                f"{self._head(props)}: not removed, stack {self.owner(props)!r} does not own "
                f"it ({kept}); remove it on the host yourself, or make Pulumi forget it with "
                "`pulumi state delete <urn>` (`pulumi stack --show-urns` lists the URNs)"
            )

    def fail(self, props: Mapping[str, Any], what: str, err: BaseException) -> ProviderError:
        """An error naming the host, the object, its config key and the failed step (`create`,
        `update`, `remove`, ...); never the private key.

        A transport failure during a change leaves its outcome unknown (the agent may have
        finished it): the message says so, and that the next run reconciles it (creates adopt
        what an earlier run left). "Nothing was left" is said only when the host reported it
        undid what the failed create had made (``details["rolled_back"]``).
        """
        head = self._head(props)
        details = err.details if isinstance(err, HostError) else {}
        if isinstance(err, OutcomeUnknownError):
            # Its message says what is unknown, why, and what reconciles it: said once, on
            # the host as the config names it.
            where = f" ({props[CONFIG_PATH]})" if props.get(CONFIG_PATH) else ""
            said = str(err).removeprefix(f"outcome unknown on {err.host}: ")
            return ProviderError(f"{self.KIND} {props.get('name', '?')!r}{where}: outcome "
                                 f"unknown on {host_label(props)}: {said}")
        if isinstance(err, TransportError) or details.get("outcome") == "unknown":
            return ProviderError(
                f"{head}: outcome unknown on {host_label(props)}: {what} was under way when it "
                f"failed ({err}); the next `pulumi up` (or `pulumi refresh`) reconciles it"
            )
        if what == "create" and details.get("rolled_back"):
            return ProviderError(f"{head}: create failed, nothing was left on the host: {err}")
        return ProviderError(f"{head}: {what} failed: {err}")

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        if self.PERSISTS and PERSIST not in news:
            news = {**news, PERSIST: _can_persist(news.get(CONNECTION))}
        failures = self.validate(news)
        # The host is asked only about objects that are new or changed: a run that changes
        # nothing contacts no host (drift is what refresh is for).
        changed = _olds == {} or self._changed_keys(_olds, news)
        if failures or not changed or has_unknowns(news.get(CONNECTION)):
            return CheckResult(news, failures)
        try:
            with checking():  # host facts from one snapshot per host, not one call each
                agent = self.agent(news)
                if not has_unknowns(news):
                    failures += self.validate_on_host(agent, news)
                # A new resource whose name is taken on the host by an object that is not this
                # stack's: said at preview, before anything is created.
                if _olds == {} and not has_unknowns(news.get("name")):
                    clash = self.clash(agent, news)
                    if clash:
                        where = news.get(CONFIG_PATH) or self.KIND
                        failures.append(CheckFailure("name", f"{where}: {clash}"))
        except VlanInfraError as err:
            failures.append(CheckFailure(CONNECTION, f"host {host_label(news)}: {err}"))
        return CheckResult(news, failures)

    def _changed_keys(self, olds: Mapping[str, Any], news: Mapping[str, Any]) -> list[str]:
        old_n, new_n = self.normalize(olds), self.normalize(news)
        keys = set(self.INPUT_KEYS) | {HOST}
        return sorted(
            k for k in keys if _differs(old_n.get(k, olds.get(k)), new_n.get(k, news.get(k)))
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = self._changed_keys(olds, news)
        replaces = [k for k in changed if k in self.REPLACE_KEYS or k == HOST]
        return DiffResult(
            changes=bool(changed) or _transport_changed(olds, news),
            replaces=replaces,
            # Names are fixed on the host: the old object must go before the new one can exist.
            delete_before_replace=True,
        )


def _transport_changed(olds: Mapping[str, Any], news: Mapping[str, Any]) -> bool:
    return any(olds.get(k) != news.get(k) for k in _TRANSPORT_KEYS)


def has_unknowns(value: Any) -> bool:
    """Whether `value` holds a value not known during preview (anywhere inside it)."""
    if value == UNKNOWN:
        return True
    if isinstance(value, Mapping):
        return any(has_unknowns(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(has_unknowns(v) for v in value)
    return False


def clash_of(what: str, mark: marks.Mark | None, owner: str,
             how_marked: str = "vlaninfra label") -> str | None:
    """The clash message for an existing object `what` with `mark` (None if it is this stack's).

    The spec is not compared: the engine checks a replacement with no old inputs while the old
    object is still there (it is deleted before the new one is created); a real leftover with
    another spec is refused by the create itself.
    """
    try:
        marks.claim(what, mark, owner, None, how_marked=how_marked)
    except OpError as err:
        return err.message
    return None


def docker_clash(kind: str, labels: Mapping[str, str] | None, news: Mapping[str, Any],
                 owner: str) -> str | None:
    """The clash message for the Docker object `news["name"]` when one of that name exists
    (``labels``: its labels; None when there is none) and its vlaninfra label is not
    `owner`'s. Example: ``docker_clash("network", found.labels, news, "p/s")``"""
    if labels is None:
        return None
    return clash_of(f"{kind} {news['name']!r} on host {host_label(news)}",
                    marks.of_labels(labels), owner)


def nic_missing(
    agent: Agent, news: Mapping[str, Any], key: str, what: str
) -> list[CheckFailure]:
    """The check failure when the NIC input `key` names is not on the host, else nothing.

    An 802.1Q parent (`eth0.50`) is judged by its trunk (`eth0`): its VlanParent (or Docker)
    creates the sub-interface after preview. Example: ``nic_missing(agent, news, "parent",
    "network")``
    """
    nic = str(news[key]).split(".", 1)[0]
    if agent.call("link.exists", name=nic):
        return []
    where = news.get(CONFIG_PATH) or what
    return [
        CheckFailure(
            key,
            f"{where}.{key}: interface {nic!r} does not exist on host {news.get(HOST)}; "
            "name an existing NIC of that host",
        )
    ]


def keep(props: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The subset of `props` under `keys` (those present)."""
    return {k: props[k] for k in keys if k in props}
