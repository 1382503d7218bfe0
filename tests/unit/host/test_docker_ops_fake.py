"""docker_ops rollback logic against a fake Engine API (the real daemon: tests/lab)."""

from __future__ import annotations

import errno
import time
from typing import Any

import pytest

from vlaninfra.host import docker_ops, marks
from vlaninfra.host.contract import (
    ContainerCreate,
    ContainerRef,
    ContainerSpec,
    Mark,
    NetworkRemove,
)
from vlaninfra.host.errors import OpError


class Conflict(Exception):
    """Stands in for docker.errors.APIError 409: create raised, no id came back."""


class FakeApi:
    api_version = "1.44"

    def __init__(self) -> None:
        self.removed: list[str] = []

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

    def stop(self, ref: str, timeout: int | None = None) -> None:
        pass

    def remove_container(self, ref: str, force: bool = False) -> None:
        self.removed.append(ref)


class Ctx:
    def __init__(self) -> None:
        self.api = FakeApi()

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
    # "rolled back" only when it removed what it had made
    assert isinstance(info.value, OpError) == bool(removed)
    assert not removed or info.value.details["rolled_back"] is True  # type: ignore[attr-defined]


class Docker:
    """Records the calls of container and network removal; `refusals` 403s come first."""

    def __init__(self, refusals: int = 0) -> None:
        self.calls: list[str] = []
        self.refusals = refusals

    def stop(self, ref: str, timeout: int | None = None) -> None:
        self.calls.append(f"stop {ref} t={timeout}")

    def remove_container(self, ref: str, force: bool = False) -> None:
        self.calls.append(f"rm {ref}")

    def remove_network(self, ref: str) -> None:
        self.calls.append(f"rm-net {ref}")
        if self.refusals:
            self.refusals -= 1
            from docker.errors import APIError

            class Forbidden:
                status_code = 403

            raise APIError("403 Forbidden", response=Forbidden(),  # type: ignore[arg-type]
                           explanation="network lan id n1 has active endpoints")


def _docker_ctx(api: Docker) -> Any:
    return type("Ctx", (), {"docker": lambda self: api})()


def test_a_container_is_stopped_before_it_is_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    # Force-removing running containers of one network at once leaves Docker 20.10 counting
    # endpoints on it (moby/moby#43286): the network could not be removed afterwards.
    api = Docker()
    monkeypatch.setattr(docker_ops, "container_inspect", lambda _ctx, name: {
        "id": "c1", "labels": marks.labels("infra/prod", "s1", None), "running": True})
    out = docker_ops.container_remove(_docker_ctx(api), ContainerRef("web", "infra/prod"))
    assert out.removed is True
    assert api.calls == ["stop c1 t=0", "rm c1"]


def _net(containers: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": "n1", "labels": marks.labels("infra/prod", "s1", None),
            "containers": containers or {}}


@pytest.mark.parametrize("refusals", [1, 3])
def test_a_network_docker_still_counts_endpoints_on_is_removed_once_that_settles(
        monkeypatch: pytest.MonkeyPatch, refusals: int) -> None:
    api, slept = Docker(refusals), list[float]()
    monkeypatch.setattr(docker_ops, "network_inspect", lambda _ctx, _name: _net())
    monkeypatch.setattr(time, "sleep", slept.append)
    out = docker_ops.network_remove(_docker_ctx(api), NetworkRemove("lan", "infra/prod"))
    assert out.removed is True
    assert api.calls == ["rm-net n1"] * (refusals + 1)
    assert slept == [0.5, 1.0, 2.0][:refusals]


def test_a_stale_endpoint_count_is_one_error_saying_to_restart_dockerd(
        monkeypatch: pytest.MonkeyPatch) -> None:
    api = Docker(refusals=99)
    monkeypatch.setattr(docker_ops, "network_inspect", lambda _ctx, _name: _net())
    monkeypatch.setattr(time, "sleep", lambda _s: None)
    with pytest.raises(OpError) as info:
        docker_ops.network_remove(_docker_ctx(api), NetworkRemove("lan", "infra/prod"))
    assert info.value.code == errno.EBUSY
    assert "no container is attached" in info.value.message
    assert "has active endpoints" in info.value.message
    assert "systemctl restart docker" in info.value.message
    assert len(api.calls) == 4


def test_a_container_attached_meanwhile_is_named_not_waited_for(
        monkeypatch: pytest.MonkeyPatch) -> None:
    api = Docker(refusals=1)
    found = [_net(), _net({"web": {}})]
    monkeypatch.setattr(docker_ops, "network_inspect", lambda _ctx, _name: found.pop(0))
    monkeypatch.setattr(time, "sleep", lambda _s: None)
    with pytest.raises(OpError) as info:
        docker_ops.network_remove(_docker_ctx(api), NetworkRemove("lan", "infra/prod"))
    assert info.value.code == errno.EBUSY and info.value.details["containers"] == ["web"]


def test_a_network_gone_while_waiting_counts_as_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    api = Docker(refusals=1)
    found: list[dict[str, Any] | None] = [_net(), None]
    monkeypatch.setattr(docker_ops, "network_inspect", lambda _ctx, _name: found.pop(0))
    monkeypatch.setattr(time, "sleep", lambda _s: None)
    out = docker_ops.network_remove(_docker_ctx(api), NetworkRemove("lan", "infra/prod"))
    assert out.removed is True
