"""Typed ops: an op's name, its argument type and its result type, declared once
(``NETWORK_CREATE: Op[NetworkCreate, NetworkState]``), and the JSON codec both sides use.

The controller calls ``run(agent, NETWORK_CREATE, args)``: the args dataclass is encoded to
the request's JSON object and the answer decoded into the result type. The agent serves
``handler(NETWORK_CREATE, docker_ops.network_create)``: the request's JSON object is decoded
into the args dataclass before the op runs. Decoding is strict: an unknown or missing field, a
value of another type or outside an enum is a :class:`ContractError` (``EINVAL``) naming the
field, so a renamed field or op fails loudly on both sides. Stdlib only (it runs in the agent).
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from vlaninfra.host.errors import OpError

if TYPE_CHECKING:
    from vlaninfra.host.context import Context

__all__ = ["Caller", "ContractError", "Handler", "Json", "Op", "as_", "decode", "encode", "handler",
           "maybe", "of_mapping", "run"]

Json = Any
"""A value in the wire's JSON form (as ``json.loads`` gives it, as :func:`encode` makes it):
untyped by nature; :func:`decode` turns it into the contract's types."""

A = TypeVar("A")
R = TypeVar("R")
T = TypeVar("T")


class ContractError(OpError):
    """A value that does not fit the contract: what, where, and what is allowed.

    Example: ``ContractError("spec.mode: 'l4' is not one of l2, l3, l3s")``
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(errno.EINVAL, message)
        self.field = field
        """The argument at fault (``mode``), when one is."""


def _default(f: dataclasses.Field[object]) -> object:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def encode(value: object) -> Json:
    """The JSON form of a contract value: dataclasses as objects (fields at their default
    left out: the other side fills them in), enums as their values, tuples as lists."""
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode(v) for f in dataclasses.fields(value)
                if (v := getattr(value, f.name)) != _default(f)}
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    return value


@functools.cache
def _hints(cls: type) -> dict[str, object]:
    return typing.get_type_hints(cls)


def _type_name(tp: object) -> str:
    if isinstance(tp, type) and issubclass(tp, Enum):
        return "one of " + ", ".join(str(m.value) for m in tp)
    return getattr(tp, "__name__", None) or str(tp)


def decode(tp: Any, value: object, where: str) -> Any:
    """``value`` (parsed JSON) as the contract type ``tp``; ``where`` names it in errors.

    Example: ``decode(MacvlanMode, "vepa", "spec.mode")`` → ``MacvlanMode.VEPA``
    """
    origin = typing.get_origin(tp)
    if tp is Any or tp is object:
        return value
    if origin is typing.Union or origin is types.UnionType:
        members = typing.get_args(tp)
        if value is None and type(None) in members:
            return None
        for member in members:
            if member is not type(None):
                try:
                    return decode(member, value, where)
                except ContractError:
                    pass
        said = " or ".join(_type_name(m) for m in members if m is not type(None))
        raise ContractError(f"{where}: {value!r} is not {said}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ContractError(f"{where}: {value!r} is not a list")
        item = typing.get_args(tp)[0]
        return tuple(decode(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ContractError(f"{where}: {value!r} is not an object")
        key_t, val_t = typing.get_args(tp)
        return {decode(key_t, k, where): decode(val_t, v, f"{where}.{k}")
                for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, Enum):
        try:
            return tp(value)
        except ValueError:
            raise ContractError(f"{where}: {value!r} is not {_type_name(tp)}") from None
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _decode_dataclass(tp, value, where)
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is type(None) and value is None:
        return None
    if isinstance(tp, type) and isinstance(value, tp) and not (
            tp is int and isinstance(value, bool)):
        return value
    raise ContractError(f"{where}: {value!r} is not {_type_name(tp)}")


def _decode_dataclass(cls: type, value: object, where: str) -> object:
    if not isinstance(value, Mapping):
        raise ContractError(f"{where}: {value!r} is not an object")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise ContractError(f"{where}: unknown field {unknown[0]!r} (fields: "
                            f"{', '.join(fields)})")
    hints = _hints(cls)
    kwargs = {}
    for name, f in fields.items():
        if name in value:
            kwargs[name] = decode(hints[name], value[name], f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ContractError(f"{where}: field {name!r} is missing")
    try:
        return cls(**kwargs)
    except ContractError as exc:  # a check of the spec itself, e.g. a mode of another driver
        raise ContractError(f"{where}.{exc.message}", exc.field) from None


def as_(cls: type[T]) -> Callable[[object], T]:
    """The decoder of a result of type ``cls``."""
    def parse(value: object) -> T:
        result: T = decode(cls, value, "result")
        return result
    return parse


def of_mapping(what: str, read: Callable[[Mapping[str, Json]], T],
               ) -> Callable[[object], T | None]:
    """The decoder of a result that is None (no such object) or the agent's JSON form of
    ``what`` (e.g. ``"a link"``), read by ``read`` (e.g. ``LinkState.of_link``)."""
    def parse(value: object) -> T | None:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise ContractError(f"result: {value!r} is not {what}")
        return read(value)
    return parse


def maybe(cls: type[T]) -> Callable[[object], T | None]:
    """The decoder of a result of type ``cls``, or None (the object is not there)."""
    def parse(value: object) -> T | None:
        return None if value is None else as_(cls)(value)
    return parse


@dataclass(frozen=True)
class Op(Generic[A, R]):
    """One agent op: its wire name, its argument dataclass and how its result is read.

    Example: ``NETWORK_REMOVE = Op("docker.network.remove", NetworkRemove, as_(Removed))``
    """

    name: str
    args: type[A]
    result: Callable[[object], R]

    def decode_args(self, value: object) -> A:
        """The request's args as this op's argument type (``ContractError`` if they do not fit)."""
        args: A = decode(self.args, {} if value is None else value, self.name)
        return args


class Caller(Protocol):
    """What calls an op on a host (the transport's ``Agent``)."""

    def call(self, op: str, /, **args: object) -> Json: ...


def run(agent: Caller, op: Op[A, R], args: A) -> R:
    """Run ``op`` with ``args`` on the host ``agent`` reaches; the decoded, typed result.

    Example: ``run(agent, NETWORK_REMOVE, NetworkRemove("lan")).removed`` → ``True``
    """
    return op.result(agent.call(op.name, **encode(args)))


@dataclass(frozen=True)
class Handler(Generic[A, R]):
    """The agent's side of an op: decodes the args, runs ``fn``, encodes its result."""

    op: Op[A, R]
    fn: Callable[[Context, A], R]

    def __call__(self, ctx: Context, args: object) -> Json:
        return encode(self.fn(ctx, self.op.decode_args(args)))


def handler(op: Op[A, R], fn: Callable[[Context, A], R]) -> Handler[A, R]:
    """Serve ``op`` with ``fn(ctx, args)`` (mypy checks ``fn`` takes and returns the op's
    types)."""
    return Handler(op, fn)
