"""The boot file's record of one object, typed: its spec and mark, and the stored form
(format 1: the kind's ensure arguments as the netlink ops took them before they took specs;
files already on hosts are in that form, so it is kept for writing and reading)."""

from __future__ import annotations

import errno
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from vlaninfra.host import marks, ops
from vlaninfra.host.context import Context
from vlaninfra.host.contract import (
    ContractError,
    Driver,
    IpvlanFlag,
    Mark,
    RouteSpec,
    ShimSpec,
    VlanSpec,
    decode,
)
from vlaninfra.host.errors import OpError

__all__ = ["FORMAT", "KINDS", "Kept", "Kind", "entry_of", "key_of", "load_entry"]

FORMAT = 1
Kind = Literal["vlan", "shim", "route"]
KINDS: tuple[Kind, ...] = ("vlan", "shim", "route")
"""Kinds in restore order: a shim may sit on an 802.1Q parent; a route's next hop may be
reached through either."""

T = TypeVar("T")
Json = object
"""A value parsed from a boot file (``json.loads``): narrowed by :meth:`Kept.of_args`."""


def key_of(kind: str, name: str) -> str:
    """The object's name as files are keyed by it: a route's destination normalized; a link
    name checked."""
    if kind == "route":
        try:
            return str(ipaddress.ip_network(name))
        except (TypeError, ValueError) as exc:
            raise OpError(errno.EINVAL, f"route {name!r}: {exc}") from None
    return ops.check_ifname(name)


@dataclass(frozen=True)
class Kept:
    """One object a boot file brings back: ``spec`` and the ``mark`` it carries (links only;
    routes carry just proto 57).

    Example: ``Kept(VlanSpec("eth0", 50, "eth0.50"), Mark("infra/prod", "bbbbbbbbbbbb"))``
    """

    spec: ShimSpec | VlanSpec | RouteSpec
    mark: Mark = field(default_factory=Mark)

    @property
    def kind(self) -> Kind:
        if isinstance(self.spec, ShimSpec):
            return "shim"
        return "vlan" if isinstance(self.spec, VlanSpec) else "route"

    @property
    def name(self) -> str:
        if isinstance(self.spec, RouteSpec):
            return key_of("route", self.spec.destination)
        return key_of(self.kind, self.spec.name)

    def args(self) -> dict[str, Json]:
        """The stored form (what defines the object: never an ifindex or a recorded next
        hop, which describe this boot's objects, not the wanted ones)."""
        s, owner, spec = self.spec, self.mark.owner, self.mark.spec
        if isinstance(s, RouteSpec):
            return {"dst": self.name, "via": s.via, "dev": s.dev}
        if isinstance(s, VlanSpec):
            return {"trunk": s.trunk, "vlan_id": s.vlan_id, "name": s.name, "owner": owner,
                    "spec": spec}
        flag = (s.flag or IpvlanFlag.BRIDGE).value if s.kind is Driver.IPVLAN else None
        return {"name": s.name, "parent": s.parent, "kind": s.kind.value,
                "mode": s.mode.value, "address": s.address,
                "extra_addresses": list(s.extra_addresses), "routes": list(s.routes),
                "flag": flag, "owner": owner, "spec": spec}

    @classmethod
    def of_args(cls, kind: Json, args: Json) -> Kept:
        """The object a file's ``kind`` and ``args`` (the stored form) describe;
        ``ValueError`` saying what does not fit."""
        if kind not in KINDS or not isinstance(args, Mapping):
            raise ValueError("unknown kind or no args")
        given = {str(k): v for k, v in args.items() if v is not None}
        try:
            if kind == "route":
                given["destination"] = given.pop("dst", None)
                return cls(_decoded(RouteSpec, given))
            mark = Mark(**{k: _decoded(str, given.pop(k)) for k in ("owner", "spec")
                           if k in given})
            if kind == "shim":
                return cls(_decoded(ShimSpec, given), mark)
            return cls(_decoded(VlanSpec, given), mark)
        except ContractError as exc:
            raise ValueError(exc.message) from None

    def ensure(self, ctx: Context) -> None:
        """Converge the object (its kind's netlink op), marked as it was."""
        s = self.spec
        if isinstance(s, ShimSpec):
            ops.shim_ensure(ctx, s, self.mark)
        elif isinstance(s, VlanSpec):
            ops.vlan_ensure(ctx, s, self.mark)
        else:
            ops.route_ensure(ctx, s)


def _decoded(tp: type[T], value: Json) -> T:
    result: T = decode(tp, value, "args")
    return result


def entry_of(owner: str, kept: Kept) -> dict[str, Json]:
    """The whole file: header (owner, kind, name, spec hash: the object's mark) and args."""
    args = kept.args()
    return {
        "format": FORMAT,
        "owner": owner,
        "kind": kept.kind,
        "name": kept.name,
        # the object's own mark (its alias) where it has one; routes carry only proto 57
        "spec": kept.mark.spec or marks.spec_hash(args),
        "args": args,
    }


def load_entry(raw: Json) -> tuple[str, Kept]:
    """``(owner, object)`` of a parsed file; ``ValueError`` when it is not one of ours."""
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ValueError(f"not a vlaninfra persistence file of format {FORMAT}")
    owner = raw.get("owner")
    if not isinstance(owner, str):
        raise ValueError("no owner")
    return owner, Kept.of_args(raw.get("kind"), raw.get("args"))
