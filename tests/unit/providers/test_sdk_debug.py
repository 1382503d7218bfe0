"""The Pulumi SDK's own debug lines (a blocking RPC each) are dropped once a resource is
declared, unless VLANINFRA_SDK_DEBUG asks for them; the program's own still go."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from vlaninfra.providers._resources import quiet_sdk_debug


def _sdk_says(msg: str) -> None:
    """`log.debug(msg)` as a module of the SDK calls it."""
    exec("log.debug(msg)", {"__name__": "pulumi.runtime.resource", "log": pulumi.log,
                            "msg": msg})


def _capture(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    sent: list[str] = []

    def send(msg: str, *_: Any) -> None:
        sent.append(msg)

    monkeypatch.setattr(pulumi.log, "debug", send)
    return sent


def test_the_sdks_debug_lines_are_dropped_the_programs_kept(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLANINFRA_SDK_DEBUG", raising=False)
    sent = _capture(monkeypatch)
    warn = pulumi.log.warn
    quiet_sdk_debug()
    quiet_sdk_debug()  # once
    _sdk_says("registering resource: ty=x")
    pulumi.log.debug("the program's own line")
    assert sent == ["the program's own line"]
    assert pulumi.log.warn is warn


def test_vlaninfra_sdk_debug_keeps_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLANINFRA_SDK_DEBUG", "1")
    sent = _capture(monkeypatch)
    quiet_sdk_debug()
    _sdk_says("registering resource: ty=x")
    assert sent == ["registering resource: ty=x"]
