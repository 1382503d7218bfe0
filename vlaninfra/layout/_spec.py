"""A small declarative reader: one description per config object gives both the parser
(collecting every problem with its path) and the JSON Schema, so the two never drift."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import ip_address, ip_network
from typing import Any

from vlaninfra.errors import Problem
from vlaninfra.host.contract import Choice

from ._model import AddressRange

Json = dict[str, Any]


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""Returned by a parser that reported a problem; the caller drops the value."""


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return "null" if value is None else type(value).__name__


def _secure(value: object) -> bool:
    return isinstance(value, Mapping) and set(value) == {"secure"}


def _refuse(out: list[Problem], path: str, value: object, message: str) -> Any:
    """Reports ``value`` at ``path`` as a problem; MISSING, what a refused value reads as."""
    out.append(Problem(path, value, message))
    return MISSING


class Kind:
    """How one config value is read and described."""

    def parse(self, value: object, path: str, out: list[Problem]) -> Any:
        raise NotImplementedError

    def schema(self) -> Json:
        raise NotImplementedError

    def wrong(self, value: object, path: str, out: list[Problem], expected: str) -> Any:
        if _secure(value):
            out.append(Problem(path, "<secure>", (
                "secret values are not read here; keep secrets in their own config key "
                "(see ssh.private_key_config)")))
        else:
            hint = ""
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                hint = f'; quote it: "{value}"'
            elif isinstance(value, bool):
                hint = "; YAML reads yes/no/on/off as booleans: quote it"
            out.append(Problem(path, value, f"expected {expected}, got {_type_name(value)}{hint}"))
        return MISSING


@dataclass(frozen=True)
class Str(Kind):
    pattern: str | None = None
    what: str = "a string"
    max_bytes: int | None = None
    check: Callable[[str], str | None] | None = None
    """Beyond the pattern (and not in the schema): why a value is refused, or None."""

    def parse(self, value: object, path: str, out: list[Problem]) -> Any:
        if not isinstance(value, str):
            return self.wrong(value, path, out, self.what)
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            return _refuse(out, path, value, f"expected {self.what}")
        if self.check is not None and (why := self.check(value)) is not None:
            return _refuse(out, path, value, why)
        if self.max_bytes is not None and len(value.encode()) > self.max_bytes:
            out.append(Problem(path, value, (
                f"{len(value.encode())} bytes is too long: the kernel allows "
                f"{self.max_bytes}; choose a shorter name")))
            return MISSING
        return value

    def schema(self) -> Json:
        s: Json = {"type": "string"}
        if self.pattern is not None:
            s["pattern"] = f"^(?:{self.pattern})$"
        return s


@dataclass(frozen=True)
class Enum(Kind):
    values: tuple[str, ...]
    of: type[Choice] | None = None
    """The contract's enum the value becomes (its values are ``values``)."""

    @classmethod
    def choice(cls, of: type[Choice]) -> Enum:
        """One of the contract enum ``of``'s values, read as its member."""
        return cls(tuple(m.value for m in of), of)

    def parse(self, value: object, path: str, out: list[Problem]) -> Any:
        names = ", ".join(self.values)
        if not isinstance(value, str):
            return self.wrong(value, path, out, f"one of {names}")
        if value not in self.values:
            return _refuse(out, path, value, f"expected one of {names}")
        return value if self.of is None else self.of(value)

    def schema(self) -> Json:
        return {"type": "string", "enum": list(self.values)}


@dataclass(frozen=True)
class Int(Kind):
    minimum: int
    maximum: int

    def parse(self, value: object, path: str, out: list[Problem]) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            return self.wrong(value, path, out, "an integer")
        if not self.minimum <= value <= self.maximum:
            return _refuse(out, path, value, f"expected {self.minimum} to {self.maximum}")
        return value

    def schema(self) -> Json:
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}


@dataclass(frozen=True)
class Bool(Kind):
    def parse(self, value: object, path: str, out: list[Problem]) -> Any:
        return value if isinstance(value, bool) else self.wrong(value, path, out, "true or false")

    def schema(self) -> Json:
        return {"type": "boolean"}


@dataclass(frozen=True)
class Address(Kind):
    """An IP address; ``version`` 4 or 6 restricts it."""

    version: int | None = None

    def parse(self, value: object, path: str, out: list[Problem]) -> Any:
        what = f"an IPv{self.version} address" if self.version else "an IP address"
        if not isinstance(value, str):
            return self.wrong(value, path, out, what)
        try:
            addr = ip_address(value)
        except ValueError:
            return _refuse(out, path, value, f"expected {what}, e.g. {self._example()}")
        if self.version is not None and addr.version != self.version:
            return _refuse(out, path, value, f"expected {what}, e.g. {self._example()}")
        return addr

    def _example(self) -> str:
        return "2001:db8::10" if self.version == 6 else "192.0.2.10"

    def schema(self) -> Json:
        formats = {4: ["ipv4"], 6: ["ipv6"], None: ["ipv4", "ipv6"]}[self.version]
        return {"type": "string", "anyOf": [{"format": f} for f in formats]}


@dataclass(frozen=True)
class Prefix(Kind):
    """A network in CIDR form with no host bits; ``version`` 4 or 6 restricts it."""

    version: int | None = None

    def parse(self, value: object, path: str, out: list[Problem]) -> Any:
        what = f"an IPv{self.version} prefix" if self.version else "an IP prefix"
        example = "2001:db8:1::/64" if self.version == 6 else "192.0.2.0/24"
        if not isinstance(value, str):
            return self.wrong(value, path, out, what)
        if "/" not in value:
            return _refuse(out, path, value, f"expected {what} with a length, e.g. {example}")
        try:
            net = ip_network(value, strict=False)
        except ValueError:
            return _refuse(out, path, value, f"expected {what}, e.g. {example}")
        if self.version is not None and net.version != self.version:
            return _refuse(out, path, value, f"expected {what}, e.g. {example}")
        if ip_address(value.split("/")[0]) != net.network_address:
            return _refuse(out, path, value, f"host bits are set: write {net}")
        return net

    def schema(self) -> Json:
        return {"type": "string", "pattern": r"^[0-9A-Fa-f:.]+/[0-9]{1,3}$"}


@dataclass(frozen=True)
class Range(Kind):
    """``first-last`` inclusive, e.g. ``192.0.2.200-192.0.2.220``."""

    def parse(self, value: object, path: str, out: list[Problem]) -> Any:
        what = "a range first-last, e.g. 192.0.2.200-192.0.2.220"
        if not isinstance(value, str):
            return self.wrong(value, path, out, what)
        parts = value.split("-")
        try:
            if len(parts) != 2:
                raise ValueError(value)
            first, last = ip_address(parts[0].strip()), ip_address(parts[1].strip())
        except ValueError:
            return _refuse(out, path, value, f"expected {what}")
        if first.version != last.version or int(first) > int(last):
            return _refuse(out, path, value, "the range must run from low to high in one family")
        return AddressRange(first, last)

    def schema(self) -> Json:
        return {"type": "string", "pattern": r"^[0-9A-Fa-f:.]+ *- *[0-9A-Fa-f:.]+$"}


@dataclass(frozen=True)
class List(Kind):
    item: Kind
    min_items: int = 0

    def parse(self, value: object, path: str, out: list[Problem]) -> Any:
        if not isinstance(value, (list, tuple)):
            return self.wrong(value, path, out, "a list")
        if len(value) < self.min_items:
            return _refuse(out, path, value, f"expected at least {self.min_items} item(s)")
        items = [self.item.parse(v, f"{path}[{i}]", out) for i, v in enumerate(value)]
        return MISSING if any(i is MISSING for i in items) else tuple(items)

    def schema(self) -> Json:
        s: Json = {"type": "array", "items": self.item.schema()}
        if self.min_items:
            s["minItems"] = self.min_items
        return s


@dataclass(frozen=True)
class _Keyed(Kind):
    """A mapping with free keys matching ``key``, each value read by ``item`` (`Dict`, `Named`)."""

    key: Str
    item: Kind

    def entries(self, value: Mapping[Any, Any], path: str,
                out: list[Problem]) -> list[tuple[str, Any]]:
        """(key, value read) per entry; the value is MISSING when the key or the value is bad."""
        pairs = []
        for k, v in value.items():
            sub = f"{path}.{k}"
            name = self.key.parse(k, sub, out)
            parsed = self.read_item(k, v, sub, out)
            pairs.append((str(k), MISSING if name is MISSING else parsed))
        return pairs

    def read_item(self, key: object, value: object, path: str, out: list[Problem]) -> Any:
        return self.item.parse(value, path, out)

    def schema(self) -> Json:
        return {
            "type": "object",
            "propertyNames": self.key.schema(),
            "additionalProperties": self.item.schema(),
        }


@dataclass(frozen=True)
class Dict(_Keyed):
    """A mapping with free keys matching ``key``; values read by ``item``."""

    def parse(self, value: object, path: str, out: list[Problem]) -> Any:
        if not isinstance(value, Mapping) or _secure(value):
            return self.wrong(value, path, out, "a mapping")
        pairs = self.entries(value, path, out)
        return MISSING if any(v is MISSING for _, v in pairs) else dict(pairs)


@dataclass(frozen=True)
class F:
    """One key of an object."""

    key: str
    kind: Kind
    doc: str
    required: bool = False
    attr: str = ""
    """The model attribute, when it differs from the key; ``-`` reads the key but drops it."""


@dataclass(frozen=True)
class Obj(Kind):
    """A mapping with fixed keys, built into a model object by ``build``."""

    name: str
    doc: str
    fields: tuple[F, ...]
    build: Callable[..., Any]
    check: Callable[[Mapping[str, Any], str, list[Problem]], None] | None = None
    """Cross-key rules that only this object can check."""

    def parse(self, value: object, path: str, out: list[Problem], **extra: Any) -> Any:
        if not isinstance(value, Mapping) or _secure(value):
            return self.wrong(value, path, out, f"a mapping ({self.doc.rstrip('.')})")
        known = {f.key: f for f in self.fields}
        bad = False
        for key in value:
            if key not in known:
                out.append(Problem(f"{path}.{key}", value[key], (
                    f"unknown key {key!r}; expected one of: {', '.join(known)}")))
                bad = True
        args: dict[str, Any] = dict(extra)
        for f in self.fields:
            if f.key not in value:
                if f.required:
                    out.append(Problem(f"{path}.{f.key}", None, f"required: {f.doc}"))
                    bad = True
                continue
            parsed = f.kind.parse(value[f.key], f"{path}.{f.key}", out)
            if parsed is MISSING:
                bad = True
            elif f.attr != "-":
                args[f.attr or f.key] = parsed
        if bad:
            return MISSING
        before = len(out)
        if self.check is not None:
            self.check(args, path, out)
        return MISSING if len(out) > before else self.build(**args)

    def schema(self) -> Json:
        return {"$ref": f"#/$defs/{self.name}"}

    def definition(self) -> Json:
        return {
            "type": "object",
            "description": self.doc,
            "additionalProperties": False,
            "required": [f.key for f in self.fields if f.required],
            "properties": {
                f.key: {**f.kind.schema(), "description": f.doc} for f in self.fields
            },
        }


@dataclass(frozen=True)
class Named(_Keyed):
    """A mapping ``name -> object``; the key becomes the object's ``name``."""

    item: Obj

    def read_item(self, key: object, value: object, path: str, out: list[Problem]) -> Any:
        return self.item.parse(value, path, out, name=key)

    def parse(self, value: object, path: str, out: list[Problem]) -> Any:
        if not isinstance(value, Mapping) or _secure(value):
            return self.wrong(value, path, out, "a mapping of names to objects")
        items = [v for _, v in self.entries(value, path, out)]
        return MISSING if any(i is MISSING for i in items) else tuple(items)


@dataclass(frozen=True)
class OneOf(Kind):
    """Chooses an object spec by the value of one discriminating key."""

    key: str
    choices: Mapping[str, Obj]

    def parse(self, value: object, path: str, out: list[Problem]) -> Any:
        if not isinstance(value, Mapping) or _secure(value):
            return self.wrong(value, path, out, "a mapping")
        tag = value.get(self.key)
        if not isinstance(tag, str) or tag not in self.choices:
            names = ", ".join(self.choices)
            return _refuse(out, f"{path}.{self.key}", tag, f"expected one of {names}")
        return self.choices[str(tag)].parse(value, path, out)

    def schema(self) -> Json:
        return {"oneOf": [obj.schema() for obj in self.choices.values()]}


def collect_defs(kind: Kind, into: dict[str, Json]) -> None:
    """Gathers the ``$defs`` of every object reachable from ``kind``."""
    children: Sequence[Kind] = ()
    if isinstance(kind, Obj):
        if kind.name in into:
            return
        into[kind.name] = kind.definition()
        children = [f.kind for f in kind.fields]
    elif isinstance(kind, (List, _Keyed)):
        children = [kind.item]
    elif isinstance(kind, OneOf):
        children = list(kind.choices.values())
    for child in children:
        collect_defs(child, into)


__all__ = [
    "MISSING",
    "Address",
    "Bool",
    "Dict",
    "Enum",
    "F",
    "Int",
    "Kind",
    "List",
    "Named",
    "Obj",
    "OneOf",
    "Prefix",
    "Range",
    "Str",
    "collect_defs",
]
