"""What every vlaninfra dynamic provider shares: the one agent per host, ownership marks, diffs
driven by one declared set of replace-keys, and failures that name host, object and config key.

Providers hold no state of their own (they are pickled into Pulumi state by dill): every call
rebuilds the transport target from the resource's properties and takes the host's agent from the
transport's process-wide cache, so a provider process opens one connection per host.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TypeVar

from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from vlaninfra.errors import VlanInfraError
from vlaninfra.host import marks
from vlaninfra.host.contract import (
    ContractError,
    Deleted,
    LinkDelete,
    LinkState,
    Mark,
    Op,
    Removed,
    RouteState,
    run,
)
from vlaninfra.host.errors import OpError
from vlaninfra.transport import (
    Agent,
    HostError,
    OutcomeUnknownError,
    TransportError,
    agent_for,
    checking,
)

from ._host import (
    CONFIG_PATH,
    CONNECTION,
    HOST,
    OWNER,
    PERSIST,
    UNKNOWN,
    Props,
    ProviderError,
    has_unknowns,
    host_label,
    target_of,
)
from ._warm import warm_hosts

__all__ = ["ConvergingProvider", "HostProvider", "clash_of", "docker_clash", "nic_missing"]

_A = TypeVar("_A")
_R = TypeVar("_R", bound=Removed | Deleted)
_T = TypeVar("_T")

# Properties that describe how to reach a host (or who asks), not the object on it: never a
# reason to replace it. The config path is not one: it only labels messages, and an object
# whose key moved (a container added above it) is not changed.
_TRANSPORT_KEYS = frozenset({CONNECTION, OWNER})


def _differs(old: object, new: object) -> bool:
    return bool(new == UNKNOWN or old != new)


def _can_persist(props: Props) -> bool:
    """Whether a host keeps boot files: not a network namespace reached with the local
    transport, which shares this machine's filesystem and would have its objects re-created in
    the machine's own namespace at boot (the lab's namespace hosts, reached over SSH, get a
    root of their own: `VLANINFRA_HOST_ROOT`)."""
    conn = props.get(CONNECTION)
    return not (isinstance(conn, Mapping) and conn.get("kind") == "local" and conn.get("netns"))


class HostProvider(ResourceProvider):
    """Base of the providers: subclasses declare their keys and implement the operations.

    `REPLACE_KEYS` are properties whose change needs a new object on the host; every other input
    property (but the transport ones) is updated in place. `normalize` reads Pulumi's untyped
    properties into the provider's typed inputs (a TypedDict), the one form that is compared,
    so that order and spelling never make a diff.
    """

    KIND = "object"
    REPLACE_KEYS: frozenset[str] = frozenset()
    INPUT_KEYS: frozenset[str] = frozenset()
    SPEC_KEYS: frozenset[str] | None = None
    """The normalized inputs hashed into the spec mark (default: `INPUT_KEYS`)."""
    PERSISTS = False
    """Whether the object is kept across reboot (the `persist` input, one of `INPUT_KEYS`)."""
    OUTPUT_KEYS: frozenset[str] = frozenset()
    """What the provider adds to the inputs in the outputs (ids, what the host picked)."""

    # -- hooks -------------------------------------------------------------------------------
    def normalize(self, props: Props) -> Mapping[str, object]:
        """The typed, comparable form of the input properties (subclasses sort, default,
        canonicalize)."""
        return {k: props.get(k) for k in self.INPUT_KEYS}

    def validate(self, news: Props) -> list[CheckFailure]:
        """Static checks of new inputs (no I/O)."""
        return []

    def validate_on_host(self, agent: Agent, news: Props) -> list[CheckFailure]:
        """Checks that need the host (a parent NIC exists, the image is there, ...)."""
        return []

    def clash(self, agent: Agent, news: Props) -> str | None:
        """Why the object a new resource would create cannot be: one of its name is on the
        host and is not this stack's (with this spec). None when the name is free or ours."""
        return None

    # -- ownership ---------------------------------------------------------------------------
    def owner(self, props: Props) -> str:
        """The stack that owns the object (`project/stack`)."""
        return str(props.get(OWNER) or marks.ADHOC_OWNER)

    def spec(self, props: Props) -> str:
        """The spec hash of the inputs that define the object."""
        n = self.normalize(props)
        return marks.spec_hash({k: n.get(k) for k in sorted(self.SPEC_KEYS or self.INPUT_KEYS)})

    def persist_owner(self, props: Props, *, deleting: bool = False) -> str | None:
        """The op argument asking the host to keep (or check) the object's boot file: the
        owning stack, or None. A delete always asks to remove it (state may say `persist:
        false` after a refresh found the file missing or altered, and a file left behind
        would re-create the object at boot)."""
        wanted = props.get(PERSIST) or (deleting and self.PERSISTS and _can_persist(props))
        return self.owner(props) if wanted else None

    def persisted(self, found: LinkState | RouteState, props: Props) -> bool:
        """The `persist` input as read from the host: whether its file matches the object."""
        return bool(props.get(PERSIST)) and found.persisted == "ok"

    def as_found(self, props: Props, found: Props) -> dict[str, object]:
        """The object's properties as a read finds them: state's (`props`, the outputs) with
        `found` (the host's values of input properties, normalized) where the two differ once
        normalized, so that order and spelling never make drift."""
        wanted, seen = self.normalize(props), self.normalize(found)
        return {**props, **{k: v for k, v in seen.items() if v != wanted.get(k)}}

    def read_result(self, id_: str, props: Props, outs: Props) -> ReadResult:
        """A read's answer: `outs`, the outputs as found (from `as_found`). Inputs only when
        the host differs from state (`props`): those outputs but `OUTPUT_KEYS`. Without drift
        the engine keeps state's own inputs, and then writes no state for the same step that
        follows in an `up --refresh` (it writes the whole file for one whose inputs changed,
        and outputs only mirror the inputs they were made from)."""
        def inputs(d: Props) -> dict[str, object]:
            return {k: v for k, v in d.items() if k not in self.OUTPUT_KEYS}

        found = inputs(outs)
        return ReadResult(id_=id_, outs=outs, inputs=found if found != inputs(props) else None)

    def mark(self, props: Props) -> Mark:
        """The mark an op puts on the object: this stack, the spec hash, the config key."""
        return Mark(self.owner(props), self.spec(props), props.get(CONFIG_PATH))

    # -- shared machinery --------------------------------------------------------------------
    def configure(self, req: ConfigureRequest) -> None:
        # The stack's config (secrets decrypted) reaches the provider process here, never state.
        self._stack_config = req.config

    def agent(self, props: Props) -> Agent:
        config = getattr(self, "_stack_config", None)
        return agent_for(target_of(props, config.get if config is not None else None))

    def _where(self, props: Props) -> str:
        return f" ({props[CONFIG_PATH]})" if props.get(CONFIG_PATH) else ""

    def _head(self, props: Props) -> str:
        where = self._where(props)
        return f"{self.KIND} {props.get('name', '?')!r}{where} on host {host_label(props)}"

    def removed(self, props: Props, kept: str | None) -> None:
        """Raise when the host kept the object instead of removing it (``kept``: why; it is
        not this stack's owner's): a delete that reports success would leave it there unseen."""
        if kept:
            raise ProviderError(
                f"{self._head(props)}: not removed, stack {self.owner(props)!r} does not own "
                f"it ({kept}); remove it on the host yourself, or make Pulumi forget it with "
                "`pulumi state delete <urn>` (`pulumi stack --show-urns` lists the URNs)"
            )

    def fail(self, props: Props, what: str, err: BaseException) -> ProviderError:
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
            said = str(err).removeprefix(f"outcome unknown on {err.host}: ")
            return ProviderError(f"{self.KIND} {props.get('name', '?')!r}{self._where(props)}: "
                                 f"outcome unknown on {host_label(props)}: {said}")
        if isinstance(err, TransportError) or details.get("outcome") == "unknown":
            return ProviderError(
                f"{head}: outcome unknown on {host_label(props)}: {what} was under way when it "
                f"failed ({err}); the next `pulumi up` (or `pulumi refresh`) reconciles it"
            )
        if what == "create" and details.get("rolled_back"):
            return ProviderError(f"{head}: create failed, nothing was left on the host: {err}")
        return ProviderError(f"{head}: {what} failed: {err}")

    @contextmanager
    def failing(self, props: Props, what: str) -> Iterator[None]:
        """Turns a host's or the contract's refusal of step ``what`` into `fail`'s error."""
        try:
            yield
        except (VlanInfraError, ContractError) as err:
            raise self.fail(props, what, err) from err

    def read_op(self, props: Props, op: Op[_A, _T], args: _A) -> _T:
        """Runs a refresh's read ``op``; a host that cannot answer raises an error naming the
        object, its config key and host (a read changes nothing: no outcome is unknown)."""
        try:
            return run(self.agent(props), op, args)
        except (VlanInfraError, ContractError) as err:
            raise ProviderError(f"{self._head(props)}: cannot read it, nothing was changed: "
                                f"{err}") from err

    def remove(self, props: Props, op: Op[_A, _R], args: _A) -> None:
        """Runs the remove ``op``; raises when it failed or the host kept the object."""
        with self.failing(props, "remove"):
            result = run(self.agent(props), op, args)
        self.removed(props, result.kept)

    def link_delete(self, props: Props) -> LinkDelete:
        """The delete of the link ``props`` name (by the ifindex state recorded, if any)."""
        ifindex = props.get("ifindex")
        return LinkDelete(props["name"], self.owner(props),
                          int(ifindex) if ifindex is not None else None,
                          self.persist_owner(props, deleting=True))

    def check(self, _olds: Props, news: Props) -> CheckResult:
        if self.PERSISTS and PERSIST not in news:
            news = {**news, PERSIST: _can_persist(news)}
        failures = self.validate(news)
        # The host is asked only about objects that are new or changed: a run that changes
        # nothing contacts no host (drift is what refresh is for). Inputs that failed to
        # validate are never compared (normalizing them would raise).
        if failures or has_unknowns(news.get(CONNECTION)) or not (
                _olds == {} or self._changed_keys(_olds, news)):
            return CheckResult(news, failures)
        warm_hosts(getattr(self, "_stack_config", None))  # every host at once, not in turn
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

    def _changed_keys(self, olds: Props, news: Props) -> list[str]:
        old_n, new_n = self.normalize(olds), self.normalize(news)
        keys = set(self.INPUT_KEYS) | {HOST}
        return sorted(
            k for k in keys if _differs(old_n.get(k, olds.get(k)), new_n.get(k, news.get(k)))
        )

    def diff(self, _id: str, olds: Props, news: Props) -> DiffResult:
        changed = self._changed_keys(olds, news)
        replaces = [k for k in changed if k in self.REPLACE_KEYS or k == HOST]
        return DiffResult(
            changes=bool(changed) or _transport_changed(olds, news),
            replaces=replaces,
            # Names are fixed on the host: the old object must go before the new one can exist.
            delete_before_replace=True,
        )


class ConvergingProvider(HostProvider):
    """A provider whose object the host converges to its inputs in place (a shim, a route):
    create and update both run `converge`, which returns the outputs."""

    def converge(self, props: Props, what: str, olds: Props | None) -> Props:
        """Asks the host to make the object match ``props`` (``olds``: the state recorded,
        None on create); ``what`` names the step in errors."""
        raise NotImplementedError

    def object_id(self, props: Props) -> str:
        """The resource id: ``host/name``."""
        return f"{props[HOST]}/{props['name']}"

    def create(self, props: Props) -> CreateResult:
        return CreateResult(id_=self.object_id(props), outs=self.converge(props, "create", None))

    def update(self, _id: str, olds: Props, news: Props) -> UpdateResult:
        return UpdateResult(outs=self.converge(news, "update", olds))


def _transport_changed(olds: Props, news: Props) -> bool:
    return any(olds.get(k) != news.get(k) for k in _TRANSPORT_KEYS)


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


def docker_clash(kind: str, labels: Mapping[str, str] | None, news: Props,
                 owner: str) -> str | None:
    """The clash message for the Docker object `news["name"]` when one of that name exists
    (``labels``: its labels; None when there is none) and its vlaninfra label is not
    `owner`'s. Example: ``docker_clash("network", found.labels, news, "p/s")``"""
    if labels is None:
        return None
    return clash_of(f"{kind} {news['name']!r} on host {host_label(news)}",
                    marks.of_labels(labels), owner)


def nic_missing(agent: Agent, news: Props, key: str, what: str) -> list[CheckFailure]:
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

