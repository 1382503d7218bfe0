"""802.1Q parents: the `eth0.50` sub-interface a macvlan/ipvlan network (or shim) hangs off.

vlaninfra creates the sub-interface before any network on it, so Docker finds it there and
never takes ownership (Docker 20.10 deletes a sub-interface it created itself on `network rm`,
which would leave a shim on it dangling). It is removed on destroy only if vlaninfra created it.
"""

from __future__ import annotations

from typing import cast

from pulumi.dynamic import CheckFailure, CreateResult, ReadResult, UpdateResult
from typing_extensions import TypedDict

from vlaninfra.host.contract import (
    LINK_GET,
    VLAN_DELETE,
    VLAN_ENSURE,
    VLAN_READ,
    ContractError,
    LinkRead,
    LinkState,
    Named,
    VlanEnsure,
    VlanSpec,
    run,
)
from vlaninfra.transport import Agent

from ._base import HostProvider, nic_missing
from ._host import CONFIG_PATH, PERSIST, Props, host_label

__all__ = ["VlanInputs", "VlanParentProvider"]


class VlanInputs(TypedDict):
    """A VLAN parent's inputs as `VlanParentProvider.normalize` reads them from Pulumi's
    properties (``vlan_id`` as given when it is no whole number: `VlanSpec` says why)."""

    name: str | None
    trunk: str | None
    vlan_id: int | None
    """The engine's float made an int; any other value stays as given: `VlanSpec` refuses
    it."""
    persist: bool


class VlanParentProvider(HostProvider):
    """Creates (when missing), reads and removes (only if it created it) one 802.1Q
    sub-interface on one host.

    Name, trunk and VLAN id are its identity: every one is a replace-key. The output `created`
    records whether vlaninfra made the link; an interface that was already there is adopted
    and left in place on delete.
    """

    KIND = "vlan parent"
    REPLACE_KEYS = frozenset({"name", "trunk", "vlan_id"})
    SPEC_KEYS = REPLACE_KEYS
    INPUT_KEYS = REPLACE_KEYS | {PERSIST}
    OUTPUT_KEYS = frozenset({"created", "ifindex"})
    PERSISTS = True

    def normalize(self, props: Props) -> VlanInputs:
        vid = props.get("vlan_id")
        if isinstance(vid, float) and vid.is_integer():
            vid = int(vid)  # the engine carries every number as a float
        elif isinstance(vid, str) and vid.isdigit():
            vid = int(vid)
        return VlanInputs(name=props.get("name"), trunk=props.get("trunk"), vlan_id=vid,
                          persist=bool(props.get(PERSIST)))

    def validate(self, news: Props) -> list[CheckFailure]:
        where = news.get(CONFIG_PATH) or "vlan parent"
        n = self.normalize(news)
        try:
            _spec(n)
        except ContractError as err:
            return [CheckFailure("vlan_id", f"{where}: {err.message.split(': ', 1)[1]}")]
        return []

    def validate_on_host(self, agent: Agent, news: Props) -> list[CheckFailure]:
        return nic_missing(agent, news, "trunk", "vlan parent")

    def clash(self, agent: Agent, news: Props) -> str | None:
        # An existing 802.1Q link with this trunk and id is used as it is (and kept on
        # destroy); a link of that name that is anything else cannot be.
        found = run(agent, LINK_GET, Named(news["name"]))
        n = self.normalize(news)
        if found is None or (found.kind, found.parent, found.vlan_id) == (
            "vlan", n["trunk"], n["vlan_id"]
        ):
            return None
        return (f"link {n['name']!r} on host {host_label(news)} exists as {found.kind} "
                f"on {found.parent!r} (vlan id {found.vlan_id}), not VLAN "
                f"{n['vlan_id']} on {n['trunk']!r}; vlaninfra leaves it alone: name another "
                "VLAN parent")

    def _ensure(self, props: Props, what: str) -> LinkState:
        # The host keeps a boot file only for a link it made (one found there is not ours).
        with self.failing(props, what):
            return run(self.agent(props), VLAN_ENSURE, VlanEnsure(
                _spec(self.normalize(props)), self.mark(props), self.persist_owner(props)))

    def create(self, props: Props) -> CreateResult:
        found = self._ensure(props, "create")
        outs = {**props, "created": bool(found.created), "ifindex": found.index}
        return CreateResult(id_=f"{props['host']}/{props['name']}", outs=outs)

    def read(self, id_: str, props: Props) -> ReadResult:
        ours = bool(props.get("created"))
        found = self.read_op(props, VLAN_READ,
                             LinkRead(props["name"], self.persist_owner(props) if ours else None))
        if found is None:
            return ReadResult(id_="", outs={})
        # Another kind of link under this name shows as a changed trunk and id: a replacement.
        actual = self.as_found(props, {
            "name": found.name,
            "trunk": found.parent if found.kind == "vlan" else None,
            "vlan_id": found.vlan_id,
            # an adopted link is not ours to bring back: nothing to keep
            PERSIST: self.persisted(found, props) if ours else props.get(PERSIST),
        })
        return self.read_result(id_, props, {**actual, "created": ours, "ifindex": found.index})

    def update(self, _id: str, olds: Props, news: Props) -> UpdateResult:
        # Only the transport properties and `persist` change in place; ownership stays as
        # recorded. A link vlaninfra made is ensured again, which rewrites its boot file.
        outs = {**olds, **news, "created": bool(olds.get("created"))}
        if olds.get("created"):
            outs["ifindex"] = self._ensure(outs, "update").index
        return UpdateResult(outs=outs)

    def delete(self, _id: str, props: Props) -> None:
        if props.get("created"):  # one there before vlaninfra is not ours to remove
            self.remove(props, VLAN_DELETE, self.link_delete(props))


def _spec(n: VlanInputs) -> VlanSpec:
    return VlanSpec(str(n["trunk"]), cast(int, n["vlan_id"]), str(n["name"]))
