"""A stand-in host whose typed ops answer through typed handlers: the provider's args are
decoded with the op's own argument type and the answer is a contract object encoded as the
agent would, so a renamed op, argument or result field fails here as it would on a host."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from vlaninfra.host.contract import ContainerState, Endpoint, LinkState, Op, RouteState, encode
from vlaninfra.transport.testing import FakeAgent

A = TypeVar("A")
R = TypeVar("R")


class TypedAgent(FakeAgent):
    """A :class:`FakeAgent` that also serves typed ops.

    Example: ``agent.serve(SHIM_ENSURE, link("shim0"))``, then
    ``agent.args(SHIM_ENSURE)[0].persist_owner``
    """

    def serve(self, op: Op[A, R], answer: R | Callable[[A], R] | BaseException) -> None:
        """Answer ``op`` with ``answer`` (a result, a function of the decoded args, or an
        exception to raise)."""
        if isinstance(answer, BaseException):
            self.responses[op.name] = answer
            return

        def handle(**args: object) -> Any:
            decoded = op.decode_args(args)
            result = answer(decoded) if callable(answer) else answer
            return encode(result)

        self.responses[op.name] = handle

    def args(self, op: Op[A, R]) -> list[A]:
        """The decoded args of every call to ``op``."""
        return [op.decode_args(a) for a in self.calls_to(op.name)]


def link(name: str = "eth0.50", **fields: Any) -> LinkState:
    """A link state with plausible defaults (a VLAN parent eth0.50 on eth0)."""
    base = LinkState(name=name, index=7, kind="vlan", parent="eth0", mode=None, flag=None,
                     vlan_id=50, mac="02:00:00:00:00:07", mtu=1500, up=True, addresses=(),
                     alias=None)
    return replace(base, **fields)


def route(dst: str = "198.18.1.0/24", **fields: Any) -> RouteState:
    """A route state with plausible defaults (vlaninfra's route via 192.0.2.21)."""
    base = RouteState(dst=dst, gateway="192.0.2.21", dev="eth0", scope="universe",
                      proto="vlaninfra", metric=None)
    return replace(base, **fields)


def container(name: str = "web1", **fields: Any) -> ContainerState:
    """A running container state with plausible defaults (web1 on lan at 192.0.2.130)."""
    base = ContainerState(id="c", name=name, image="vlaninfra/busybox:lab", command=None,
                          hostname=None, running=True, restart_policy="unless-stopped",
                          labels={}, networks={"lan": Endpoint("n1", "192.0.2.130", None,
                                                                "02:42:c0:00:02:82")})
    return replace(base, **fields)
