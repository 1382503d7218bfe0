"""`vlaninfra.host.probe.run`'s bounds, with fake checks: targets validated, checks that do
not get to run within the bound reported as such, an ARP check that cannot listen not passed."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from vlaninfra.host import probe
from vlaninfra.host.errors import OpError


@pytest.mark.parametrize("target", ["-f", "192.0.2.1 -f", 3232235521, ""])
def test_a_target_that_is_not_an_ip_address_is_refused(target: Any) -> None:
    with pytest.raises(OpError, match="target is an IP address"):
        probe.run(None, [{"kind": "ping", "target": target}], timeout=1)  # type: ignore[arg-type]


def test_checks_not_run_within_the_bound_are_reported_not_raised(
        monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def stuck(ctx: Any, check: dict[str, Any], deadline: float) -> probe.Result:
        release.wait(5)
        return probe._result(True, time.monotonic(), "late")

    monkeypatch.setitem(probe._KINDS, "ping", stuck)
    monkeypatch.setattr(probe, "_MAX_WORKERS", 2)
    try:
        results = probe.run(None, [{"kind": "ping", "target": "192.0.2.1"}] * 4,  # type: ignore[arg-type]
                            timeout=0.1)
    finally:
        release.set()
    assert [r["ok"] for r in results] == [False] * 4
    assert all("not run within the bound" in r["detail"] for r in results)


def test_one_shot_checks_run_before_ping_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[str] = []

    def record(ctx: Any, check: dict[str, Any], deadline: float) -> probe.Result:
        ran.append(check["kind"])
        return probe._result(True, time.monotonic(), "ok")

    for kind in ("ping", "exec-ping", "container", "arp-unique"):
        monkeypatch.setitem(probe._KINDS, kind, record)
    monkeypatch.setattr(probe, "_MAX_WORKERS", 1)
    checks = [{"kind": "ping", "target": "192.0.2.1"}, {"kind": "container"},
              {"kind": "exec-ping", "target": "192.0.2.1"}, {"kind": "arp-unique"}]
    results = probe.run(None, checks, timeout=5)  # type: ignore[arg-type]
    assert ran == ["container", "arp-unique", "ping", "exec-ping"] and len(results) == 4


def test_an_arp_check_started_at_the_deadline_does_not_pass() -> None:
    result = probe._arp_unique(None, {"device": "eth9", "address": "192.0.2.9"},  # type: ignore[arg-type]
                               time.monotonic() + 0.1)
    assert result["ok"] is False and "deadline passed" in result["detail"]
