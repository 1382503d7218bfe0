"""`Site`, the root component of a site, under Pulumi's mocks: it parents every resource, gives
them layout keys as config paths and exports the site as applied; resources accept an Args
object, its dict form or keywords alike."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from tests.hostkeys import fake_host_key
from vlaninfra.components import Site, SiteArgs, SiteOutputs
from vlaninfra.layout import load_config
from vlaninfra.providers import Container, ContainerArgs, ContainerArgsDict, DockerHost

H1 = DockerHost("h1", "203.0.113.9", host_key=fake_host_key("h1"), key_path="/k")


class Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: dict[str, tuple[str, dict[str, Any]]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        outs = dict(args.inputs)
        if args.typ.endswith(":Container"):
            outs.update(ipv4_address=outs.get("ipv4"), mac_address=outs.get("mac"))
        if args.typ.endswith(":DockerNetwork"):
            outs["network_id"] = f"id-{args.name}"
        self.resources[args.name] = (args.typ, dict(args.inputs))
        return f"{args.name}-id", outs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        return {}, []


def _site() -> Any:
    return load_config({"sites": {"a": {
        "lan": {"subnet": "192.0.2.0/24", "gateway": "192.0.2.1"},
        "hosts": [{"name": "h1", "ssh": {"address": "203.0.113.9"}, "lan_address": "192.0.2.11",
                   "parents": ["eth0"]}],
        "networks": [{"name": "pub", "driver": "macvlan", "parent": "eth0", "hosts": ["h1"],
                      "subnets": [{"subnet": "192.0.2.0/24", "gateway": "192.0.2.1",
                                   "ip_range": "192.0.2.128/26"}],
                      "shim": {"address_per_host": {"h1": "192.0.2.250"}}}],
        "containers": [{"name": "web1", "host": "h1", "network": "pub", "image": "busybox"},
                       {"name": "web2", "host": "h1", "network": "pub", "image": "busybox",
                        "ipv4": "192.0.2.140"}]}}}).sites[0]  # fmt: skip


@pytest.fixture
def mocks() -> Any:
    m = Mocks()
    pulumi.runtime.set_mocks(m, preview=False)
    yield m
    pulumi.runtime.settings.reset_options()


def test_a_site_plans_itself_parents_everything_and_exports_what_it_applied(mocks: Mocks
                                                                            ) -> None:
    seen: list[SiteOutputs] = []

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def run() -> Any:
        site = Site("a", SiteArgs(site=_site(), hosts={"h1": H1}))
        return site.outputs.apply(seen.append)

    run()
    (out,) = seen
    assert out["containers"]["h1/web2"] == {"host": "h1", "ipv4": "192.0.2.140",
                                            "mac": out["containers"]["h1/web2"]["mac"]}
    assert sorted(out["containers"]) == ["h1/web1", "h1/web2"]
    assert out["containers"]["h1/web1"]["ipv4"] is not None
    assert out["network_ids"] == {"h1/pub": "id-a-h1-pub"}
    assert out["shim_addresses"] == {"h1/shim-pub": "192.0.2.250/24"}
    assert out["upstream_routes"] == []
    assert mocks.resources["a"][0] == "vlaninfra:index:Site"
    # Provider messages use the same keys as layout errors.
    assert mocks.resources["a-h1-web2"][1]["config_path"] == "sites.a.containers[1]"
    assert mocks.resources["a-h1-pub"][1]["config_path"] == "sites.a.networks[0]"
    assert mocks.resources["a-h1-shim-pub"][1]["config_path"] == "sites.a.networks[0].shim"


def test_args_object_dict_and_keywords_declare_the_same_inputs(mocks: Mocks) -> None:
    kw: ContainerArgsDict = {"host": H1, "container_name": "c", "image": "busybox",
                          "network": "pub", "ipv4": "192.0.2.9", "command": ["sleep", "1"]}

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def run() -> None:
        Container("by-args", ContainerArgs(**kw))
        Container("by-dict", kw)
        Container("by-keywords", **kw)

    run()
    inputs = [mocks.resources[n][1] for n in ("by-args", "by-dict", "by-keywords")]
    assert inputs[0] == inputs[1] == inputs[2]
    assert inputs[0]["command"] == ["sleep", "1"] and inputs[0]["restart_policy"] == (
        "unless-stopped")


def test_args_refuse_a_missing_or_unknown_field_as_a_call_would() -> None:
    with pytest.raises(TypeError, match=r"ContainerArgs\(\) missing required keyword "
                                        r"arguments: container_name, network; got unexpected "
                                        r"keyword arguments: ip"):
        ContainerArgs(host=H1, image="busybox", ip="192.0.2.9")  # type: ignore[call-arg]


def test_an_invalid_site_stops_the_program_listing_its_errors(mocks: Mocks) -> None:
    from dataclasses import replace

    bad = replace(_site(), containers=(*_site().containers, _site().containers[0]))

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def run() -> None:
        Site("a", SiteArgs(site=bad, hosts={"h1": H1}))

    with pytest.raises(pulumi.RunError, match=r"site a is not a valid layout:\n.*sites\.a\."):
        run()
    assert "a-h1-web1" not in mocks.resources


def test_a_site_whose_hosts_cannot_be_reached_stops_the_program_with_the_key(
        mocks: Mocks) -> None:
    """Hosts taken from the layout's `ssh` settings: one without its host key stops the
    program as a message (pulumi.RunError) naming the key, not a traceback."""

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def run() -> None:
        Site("a", SiteArgs(site=_site()))

    with pytest.raises(pulumi.RunError, match=r"^sites\.a\.hosts\[0\]\.ssh\.host_key: an SSH "
                       r"host needs its pinned host key"):
        run()
    assert [t for t, _ in mocks.resources.values()] == ["vlaninfra:index:Site"]  # nothing in it


def test_a_typed_resource_on_a_host_without_its_host_key_stops_the_program(
        mocks: Mocks) -> None:
    """A program that builds its own DockerHost without the pinned host key: the program stops
    as a message naming the resource, not a traceback."""

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def run() -> None:
        Container("web-h1", host=DockerHost("h1", "203.0.113.9"), container_name="web",
                  image="busybox", network="pub")

    with pytest.raises(pulumi.RunError, match=r"^web-h1: host h1: an SSH host needs its pinned "
                       r"host_key"):
        run()
    assert mocks.resources == {}


def test_get_reads_an_existing_object_by_name_and_id(mocks: Mocks) -> None:
    from vlaninfra.providers import DockerNetwork

    ids: list[str] = []

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def run() -> Any:
        net = DockerNetwork.get("old-pub", "abc123", host=H1, network_name="pub")
        return net.id.apply(ids.append)

    run()
    assert ids == ["abc123"]
    typ, inputs = mocks.resources["old-pub"]
    assert typ.endswith(":DockerNetwork") and inputs["name"] == "pub"
    assert inputs["connection"]["address"] == "203.0.113.9"
