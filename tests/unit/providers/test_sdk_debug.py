"""The Pulumi SDK's debug lines (a blocking RPC each) are dropped once a resource is declared,
unless VLANINFRA_SDK_DEBUG asks for them."""

from __future__ import annotations

import pulumi
import pytest

from vlaninfra.providers._resources import quiet_sdk_debug


def test_sdk_debug_lines_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[str] = []
    monkeypatch.delenv("VLANINFRA_SDK_DEBUG", raising=False)
    monkeypatch.setattr(pulumi.log, "debug", lambda msg, *a, **k: sent.append(msg))
    warn = pulumi.log.warn
    quiet_sdk_debug()
    quiet_sdk_debug()
    pulumi.log.debug("registering resource: ty=x")
    assert sent == []
    assert pulumi.log.warn is warn


def test_vlaninfra_sdk_debug_keeps_them(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[str] = []
    monkeypatch.setenv("VLANINFRA_SDK_DEBUG", "1")
    monkeypatch.setattr(pulumi.log, "debug", lambda msg, *a, **k: sent.append(msg))
    quiet_sdk_debug()
    pulumi.log.debug("registering resource: ty=x")
    assert sent == ["registering resource: ty=x"]
