"""docker_ops rollback logic against a fake Engine API (the real daemon: tests/lab)."""

from __future__ import annotations

import errno
import time
from typing import Any

import pytest

from vlaninfra.host import docker_ops, facts, marks
from vlaninfra.host.contract import (
    ContainerCreate,
    ContainerRef,
    ContainerSpec,
    Driver,
    MacvlanMode,
    Mark,
    NetworkCreate,
    NetworkRemove,
    NetworkSpec,
)
from vlaninfra.host.docker_api import DockerError, NotFound
from vlaninfra.host.errors import OpError


class Conflict(Exception):
    """Stands in for Docker's 409: create raised, no id came back."""


def _api_error(status: int, explanation: str) -> Exception:
    return (NotFound if status == 404 else DockerError)(status, explanation)


class FakeApi:
    """Records removals; `refusals` errors (default: Docker counting endpoints) come first."""

    api_version = "1.44"

    def __init__(self, refusals: int = 0, refusal: tuple[int, str] = (
            403, "network lan id n1 has active endpoints")) -> None:
        self.removed: list[str] = []
        self.calls: list[str] = []
        self.refusals, self.refusal = refusals, refusal
        self.stop_error: Exception | None = None

    def inspect_image(self, image: str) -> dict[str, Any]:
        return {}

    def create_endpoint_config(self, **kw: Any) -> dict[str, Any]:
        return kw

    def create_networking_config(self, kw: Any) -> Any:
        return kw

    def create_host_config(self, **kw: Any) -> Any:
        return kw

    def create_container(self, *a: Any, **kw: Any) -> Any:
        raise Conflict("409 Conflict: the name is in use")

    def disconnect_container_from_network(self, ref: str, network: str,
                                          force: bool = False) -> None:
        self.calls.append(f"disconnect {ref} {network}")
        if self.stop_error is not None:
            raise self.stop_error

    def stop(self, ref: str, timeout: int | None = None) -> None:
        self.calls.append(f"stop {ref} t={timeout}")
        if self.stop_error is not None:
            raise self.stop_error

    def remove_container(self, ref: str, force: bool = False) -> None:
        self.calls.append(f"rm {ref}")
        self.removed.append(ref)

    def remove_network(self, ref: str) -> None:
        self.calls.append(f"rm-net {ref}")
        if self.refusals:
            self.refusals -= 1
            raise _api_error(*self.refusal)


class Ctx:
    def __init__(self, api: FakeApi | None = None) -> None:
        self.api = api or FakeApi()
        self.docker_socket = "/run/fake-docker.sock"
        self.docker_timeout: float = 120

    def docker(self) -> FakeApi:
        return self.api


@pytest.mark.parametrize(("labels", "removed"), [
    ({}, []),  # someone else's, made meanwhile: never removed by name
    (marks.labels("infra/other", "s1", None), []),
    (marks.labels("infra/prod", "s2", None), []),  # ours, but another spec
    (marks.labels("infra/prod", "s1", None), ["id-1"]),  # exactly this mark: rolled back by id
])
def test_failed_create_removes_only_a_container_with_its_own_mark(
        monkeypatch: pytest.MonkeyPatch, labels: dict[str, str], removed: list[str]) -> None:
    ctx = Ctx()
    found: list[dict[str, Any] | None] = [None, {"id": "id-1", "labels": labels}]
    monkeypatch.setattr(docker_ops, "container_inspect", lambda _ctx, _name: found.pop(0))
    monkeypatch.setattr(docker_ops, "_api_at_least", lambda _api, _v: True)
    with pytest.raises(Exception) as info:
        docker_ops.container_create(ctx, ContainerCreate(  # type: ignore[arg-type]
            ContainerSpec("web", "busybox:lab"), Mark("infra/prod", "s1")))
    assert ctx.api.removed == removed
    assert ctx.api.calls == [c for r in removed for c in (f"stop {r} t=0", f"rm {r}")]
    # "rolled back" only when it removed what it had made
    assert isinstance(info.value, OpError) == bool(removed)
    assert not removed or info.value.details["rolled_back"] is True  # type: ignore[attr-defined]


_OURS = marks.labels("infra/prod", "s1", None)
_WEB = ContainerRef("web", "infra/prod")
_LAN = NetworkRemove("lan", "infra/prod")


def _container(monkeypatch: pytest.MonkeyPatch, networks: tuple[str, ...] = ("lan",)) -> None:
    monkeypatch.setattr(docker_ops, "container_inspect", lambda _ctx, _name: {
        "id": "c1", "name": "web", "labels": _OURS, "running": True,
        "networks": {n: {} for n in networks}})


def test_a_container_leaves_its_network_and_stops_before_it_is_removed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Removing containers of one network at once leaves Docker 20.10 counting endpoints on it
    # (moby/moby#43286): the network could not be removed afterwards.
    _container(monkeypatch)
    ctx = Ctx()
    assert docker_ops.container_remove(ctx, _WEB).removed is True  # type: ignore[arg-type]
    assert ctx.api.calls == ["disconnect c1 lan", "stop c1 t=0", "rm c1"]


@pytest.mark.parametrize(("status", "removed", "calls"), [
    (404, False, ["disconnect c1 lan", "stop c1 t=0"]),  # gone meanwhile
    # a refused disconnect or stop is left to the force-removal
    (500, True, ["disconnect c1 lan", "stop c1 t=0", "rm c1"]),
])
def test_a_failed_stop(monkeypatch: pytest.MonkeyPatch, status: int, removed: bool,
                       calls: list[str]) -> None:
    _container(monkeypatch)
    ctx = Ctx()
    ctx.api.stop_error = _api_error(status, "no")
    assert docker_ops.container_remove(ctx, _WEB).removed is removed  # type: ignore[arg-type]
    assert ctx.api.calls == calls


def _net(containers: dict[str, Any] | None = None, id_: str = "n1") -> dict[str, Any]:
    return {"id": id_, "labels": _OURS, "containers": containers or {}}


def _found(monkeypatch: pytest.MonkeyPatch, *found: dict[str, Any] | None) -> list[float]:
    """`network_inspect` answers `found` in turn (the last one from then on); returns the
    sleeps."""
    answers, slept = list(found), list[float]()
    monkeypatch.setattr(docker_ops, "network_inspect",
                        lambda _ctx, _name: answers.pop(0) if len(answers) > 1 else answers[0])
    monkeypatch.setattr(time, "sleep", slept.append)
    return slept


@pytest.mark.parametrize("refusals", [1, 3])
def test_a_network_docker_still_counts_endpoints_on_is_removed_once_that_settles(
        monkeypatch: pytest.MonkeyPatch, refusals: int) -> None:
    slept = _found(monkeypatch, _net())
    ctx = Ctx(FakeApi(refusals))
    assert docker_ops.network_remove(ctx, _LAN).removed is True  # type: ignore[arg-type]
    assert ctx.api.calls == ["rm-net n1"] * (refusals + 1)
    assert slept == [0.5, 1.0, 2.0][:refusals]


def test_a_stale_endpoint_count_is_one_error_saying_to_restart_dockerd(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _found(monkeypatch, _net())
    ctx = Ctx(FakeApi(refusals=99))
    with pytest.raises(OpError) as info:
        docker_ops.network_remove(ctx, _LAN)  # type: ignore[arg-type]
    assert info.value.code == errno.EBUSY
    assert "no container is attached" in info.value.message
    assert "has active endpoints" in info.value.message
    assert "systemctl restart docker" in info.value.message
    assert len(ctx.api.calls) == 4


@pytest.mark.parametrize("refusal", [
    (403, "authorization denied by plugin authz: no"),  # another 403: not waited for
    (500, "driver failed"),
])
def test_other_refusals_are_passed_on_at_once(monkeypatch: pytest.MonkeyPatch,
                                              refusal: tuple[int, str]) -> None:
    slept = _found(monkeypatch, _net())
    ctx = Ctx(FakeApi(refusals=1, refusal=refusal))
    with pytest.raises(DockerError):
        docker_ops.network_remove(ctx, _LAN)  # type: ignore[arg-type]
    assert slept == []


def test_a_container_attached_meanwhile_is_named_not_waited_for(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _found(monkeypatch, _net(), _net({"web": {}}))
    with pytest.raises(OpError) as info:
        docker_ops.network_remove(Ctx(FakeApi(refusals=1)), _LAN)  # type: ignore[arg-type]
    assert info.value.code == errno.EBUSY and info.value.details["containers"] == ["web"]


@pytest.mark.parametrize("later", [None, _net(id_="n2")])
def test_a_network_gone_while_waiting_is_reported_gone(
        monkeypatch: pytest.MonkeyPatch, later: dict[str, Any] | None) -> None:
    _found(monkeypatch, _net(), later)
    ctx = Ctx(FakeApi(refusals=1))
    assert docker_ops.network_remove(ctx, _LAN).removed is False  # type: ignore[arg-type]
    assert ctx.api.calls == ["rm-net n1"]


_SPEC = NetworkSpec("lan", Driver.MACVLAN, "eth0", MacvlanMode.BRIDGE)


class Raced(FakeApi):
    """Docker refuses the create: another creator took the name after the inspect."""

    def __init__(self, status: int) -> None:
        super().__init__()
        self.status = status

    def create_network(self, name: str, **_kw: Any) -> Any:
        self.calls.append(f"create-net {name}")
        raise _api_error(self.status, f"network with name {name} already exists")


@pytest.mark.parametrize("status", [409, 403])  # 403: Docker before 23
@pytest.mark.parametrize(("labels", "adopted"), [
    (_OURS, True),  # an earlier run's create, finished late: taken over
    (marks.labels("infra/other", "s1", None), False),  # another stack's: EEXIST
])
def test_a_network_made_between_the_inspect_and_the_create_is_taken_over_when_ours(
        monkeypatch: pytest.MonkeyPatch, status: int, labels: dict[str, str],
        adopted: bool) -> None:
    monkeypatch.setattr(facts, "link_exists", lambda _ctx, _name: True)
    _found(monkeypatch, None, {**_net(), "name": "lan", "labels": labels})
    ctx = Ctx(Raced(status))
    create = NetworkCreate(_SPEC, Mark("infra/prod", "s1"))
    if adopted:
        state = docker_ops.network_create(ctx, create)  # type: ignore[arg-type]
        assert state.adopted and state.id == "n1"
    else:
        with pytest.raises(OpError) as info:
            docker_ops.network_create(ctx, create)  # type: ignore[arg-type]
        assert info.value.code == errno.EEXIST
    assert ctx.api.calls == ["create-net lan"]


def test_a_refused_create_with_no_network_there_is_passed_on(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(facts, "link_exists", lambda _ctx, _name: True)
    _found(monkeypatch, None)
    with pytest.raises(DockerError):
        docker_ops.network_create(Ctx(Raced(400)), NetworkCreate(_SPEC))  # type: ignore[arg-type]
