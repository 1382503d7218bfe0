"""The typed stand-in catches drift between a provider and the agent's op table: an argument
the op does not take, or a result missing a field, fails as it would against a host."""

from __future__ import annotations

import pytest

from vlaninfra.host.contract import SHIM_ENSURE, ContractError, encode
from vlaninfra.providers import ProviderError, ShimProvider

from .test_providers import shim
from .typed_host import TypedAgent, link


def test_an_argument_the_op_does_not_take_fails(agent: TypedAgent) -> None:
    agent.serve(SHIM_ENSURE, link("vshim0", kind="macvlan"))
    ShimProvider().create(shim())
    sent = agent.calls_to(SHIM_ENSURE.name)[0]
    with pytest.raises(ContractError, match=r"^shim.ensure: unknown field 'ifidx'"):
        agent.call(SHIM_ENSURE.name, **{**sent, "ifidx": 3})


def test_a_result_missing_a_field_fails_with_the_field_named(agent: TypedAgent) -> None:
    answer = encode(link("vshim0", kind="macvlan"))
    del answer["index"]
    agent.responses[SHIM_ENSURE.name] = answer
    with pytest.raises(ProviderError, match="create failed: result: field 'index' is missing"):
        ShimProvider().create(shim())


def test_a_shim_without_an_ipv4_address_sends_none_not_a_string(agent: TypedAgent) -> None:
    agent.serve(SHIM_ENSURE, link("vshim0", kind="macvlan"))
    ShimProvider().create(shim(address=None, extra_addresses=["2001:db8::250/128"]))
    sent = agent.calls_to(SHIM_ENSURE.name)[0]
    assert sent["spec"].get("address") is None
    assert sent["spec"]["extra_addresses"] == ["2001:db8::250/128"]
