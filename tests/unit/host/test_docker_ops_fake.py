"""docker_ops rollback logic against a fake Engine API (the real daemon: tests/lab)."""

from __future__ import annotations

from typing import Any

import pytest

from vlaninfra.host import docker_ops, marks
from vlaninfra.host.contract import ContainerCreate, ContainerSpec, Mark
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
