"""The typed contract: strict decoding on the agent's side, one spelling of each vocabulary,
and Docker's option names written and read in one place."""

from __future__ import annotations

import errno

import pytest

from vlaninfra.host import agent
from vlaninfra.host.context import Context
from vlaninfra.host.contract import (
    NETWORK_CREATE,
    NETWORK_INSPECT,
    ContractError,
    Driver,
    IpamPool,
    IpvlanFlag,
    IpvlanMode,
    MacvlanMode,
    NetworkCreate,
    NetworkSpec,
    encode,
)
from vlaninfra.host.errors import OpError

LAN = NetworkSpec("lan", Driver.MACVLAN, "eth0", MacvlanMode.VEPA,
                  ipam=(IpamPool("192.0.2.0/24", aux_addresses={"shim": "192.0.2.250"}),))


def test_args_round_trip_through_json() -> None:
    args = NetworkCreate(LAN)
    wire = encode(args)
    assert wire["spec"]["mode"] == "vepa" and wire["spec"]["ipam"][0]["aux_addresses"] == {
        "shim": "192.0.2.250"}
    assert NETWORK_CREATE.decode_args(wire) == args


@pytest.mark.parametrize(("change", "said"), [
    ({"modus": "l2"}, "docker.network.create.spec: unknown field 'modus' (fields: name, "),
    ({"mode": "l4"}, "docker.network.create.spec.mode: 'l4' is not one of bridge, private, "
                     "vepa, passthru or one of l2, l3, l3s"),
    ({"mode": "l3"}, "docker.network.create.spec.mode: 'l3' is not one of bridge, private, "
                     "vepa, passthru"),
    ({"flag": "bridge"}, "docker.network.create.spec.flag: 'bridge' needs driver ipvlan"),
    ({"internal": "yes"}, "docker.network.create.spec.internal: 'yes' is not bool"),
])
def test_a_renamed_or_wrong_field_fails_loudly(change: dict[str, object], said: str) -> None:
    wire = encode(NetworkCreate(LAN))
    wire["spec"].update(change)
    with pytest.raises(ContractError, match="^" + said.replace(".", r"\.").replace("(", r"\(")):
        NETWORK_CREATE.decode_args(wire)


def test_the_agent_refuses_args_the_op_does_not_take() -> None:
    with pytest.raises(OpError) as err:
        agent.handle(Context(), "docker.network.create",
                     {"name": "lan", "driver": "macvlan", "options": {"parent": "eth0"}})
    assert err.value.code == errno.EINVAL
    said = "docker.network.create: unknown field 'driver' (fields: spec, mark)"
    assert err.value.message == said


def test_docker_options_are_written_and_read_in_one_place() -> None:
    spec = NetworkSpec("t", Driver.IPVLAN, "eth0", IpvlanMode.L3, IpvlanFlag.PRIVATE)
    opts = spec.docker_options()
    assert opts == {"parent": "eth0", "ipvlan_mode": "l3", "ipvlan_flag": "private"}
    state = NETWORK_INSPECT.result({"id": "n1", "name": "t", "driver": "ipvlan",
                                    "options": opts, "ipam": [], "labels": {},
                                    "containers": {}})
    assert state is not None and (state.parent, state.mode, state.flag) == (
        "eth0", "l3", "private")
    assert NETWORK_INSPECT.result(None) is None


def test_a_spec_checks_its_mode_against_its_driver() -> None:
    with pytest.raises(ContractError, match="mode: 'l2' is not one of bridge"):
        NetworkSpec("lan", Driver.MACVLAN, "eth0", IpvlanMode.L2)
    assert str(MacvlanMode.VEPA) == f"{MacvlanMode.VEPA}" == "vepa"
