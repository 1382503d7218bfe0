"""Commit confirmed, the pure parts: durations, pending records and how runs settle them.
Through the real engine and lab: tests/e2e/test_confirm.py."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import pytest

from vlaninfra.errors import VlanInfraError
from vlaninfra.record import Control, finalized
from vlaninfra.rollout import RolloutError
from vlaninfra.verify import Row, Verification
from vlaninfra.window import (
    _ARMED,
    _dropped,
    iso,
    mark_pending,
    parse_duration,
    pending,
    refuse_unguarded,
    settle,
)


@pytest.mark.parametrize(("text", "seconds"), [
    ("60s", 60), ("60", 60), ("5m", 300), ("1m30s", 90), ("2h", 7200), (" 15S ", 15),
    ("1h0m10s", 3610), ("24h", 86400)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "s", "60x", "-60s", "1.5m", "m5", "60s60s", "5 m", "1d"])
def test_not_a_duration(text: str) -> None:
    with pytest.raises(RolloutError, match=r"is not a duration: give e\.g\. 60s, 5m or 1m30s; "
                                           r"nothing was changed"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["9s", "0", "25h"])
def test_windows_out_of_bounds(text: str) -> None:
    with pytest.raises(RolloutError, match="between 10s and 24h, and longer than an apply"):
        parse_duration(text)


def rec(version: int, status: str, **kw: Any) -> dict[str, Any]:
    return {"version": version, "status": status, **kw}


def arm(deadline: float) -> dict[str, Any]:
    _ARMED["t1"] = deadline  # what guard_hosts notes when it arms the hosts
    return {"arm": {"token": "t1", "seconds": 60, "return_to": 3}}


def test_a_verified_windowed_apply_is_pending_a_failed_one_keeps_its_status() -> None:
    deadline = time.time() + 60
    new = rec(4, "applied")  # the apply run notes the window ...
    mark_pending(new, Control(action="up", guard=arm(deadline)))
    assert new == rec(4, "applied", deadline=iso(deadline), token="t1", return_to=3)
    plain = rec(5, "applied")
    mark_pending(plain, Control(action="up"))
    assert plain == rec(5, "applied")
    # ... and the finalize run, verified, makes it pending; failed, it keeps its status
    ok = Verification((), 0.0)
    bad = Verification((Row("h1", "gateway", "web1", False, 1.0, "no answer"),), 0.0)
    assert finalized([new], 4, ok)[0]["status"] == "pending"
    assert finalized([new], 4, bad)[0]["status"] == "failed-verification"
    assert finalized([plain], 5, ok)[0]["status"] == "verified"


def test_pending_is_the_newest_record_only() -> None:
    assert pending([rec(1, "verified"), rec(2, "pending")]) == rec(2, "pending")
    assert pending([rec(2, "pending"), rec(3, "verified")]) is None
    assert pending([]) is None


def test_confirm_verifies_its_own_pending_record_only() -> None:
    future = iso(time.time() + 30)
    records = [rec(1, "verified"), rec(2, "pending", token="t1", deadline=future)]
    out = settle([dict(r) for r in records],
                 Control(action="confirm", guard={"disarm": {"token": "t1"}}))
    assert out[1]["status"] == "verified" and "confirmed" in out[1]
    other = settle([dict(r) for r in records],
                   Control(action="confirm", guard={"disarm": {"token": "t9"}}))
    assert other[1]["status"] == "pending"


@pytest.mark.parametrize(("action", "offset", "status"), [
    ("rollback", 30, "rolled-back"), ("rollback", -1, "expired"), ("up", -1, "expired"),
    ("up", 30, "superseded"), ("pulumi up", 30, "pending")])
def test_other_runs_settle_a_pending_record(action: str, offset: float, status: str) -> None:
    records = [rec(2, "pending", token="t1", deadline=iso(time.time() + offset))]
    assert settle(records, Control(action=action))[0]["status"] == status


@pytest.mark.parametrize(("ctl", "refused"), [
    (Control(action="pulumi up"), True),                       # a plain `pulumi up`
    (Control(action="up"), True),                              # `rollout.up` without a window
    (Control(action="rollback", rollback_to=1), True),         # elsewhere, guards still armed
    (Control(action="rollback", rollback_to=3), False),        # the very version they keep
    (Control(action="up", guard={"disarm": {"token": None}}), False),  # `vlaninfra up`
])
def test_an_apply_that_the_guards_would_undo_is_refused(ctl: Control, refused: bool) -> None:
    records = [rec(3, "verified"),
               rec(4, "pending", token="t1", return_to=3, deadline=iso(time.time() + 30))]
    if not refused:
        refuse_unguarded(records, ctl, "prod")
        return
    with pytest.raises(VlanInfraError) as err:
        refuse_unguarded(records, ctl, "prod")
    assert "version 4 was applied with --confirm-within and is pending confirmation" in str(err)
    assert "`vlaninfra confirm --stack prod`" in str(err)
    assert "`vlaninfra rollback --stack prod`" in str(err) and "nothing was changed" in str(err)
    refuse_unguarded(records[:1], ctl, "prod")  # nothing pending: any run goes


@dataclass(frozen=True)
class Member:
    name: str
    address: str

    def connection(self) -> dict[str, Any]:
        return {"kind": "ssh", "address": self.address}


def test_hosts_a_running_window_armed_and_the_layout_drops_are_found() -> None:
    h1, h2 = Member("h1", "192.0.2.11"), Member("h2", "192.0.2.12")
    layouts = {"both": {"h1": h1, "h2": h2}, "h1": {"h1": h1}}
    records = [rec(3, "verified", layout="h1"),
               rec(4, "pending", token="t1", layout="both", deadline=iso(time.time() + 30)),
               rec(2, "expired", token="t0", layout="both", deadline=iso(time.time() - 1))]
    found = _dropped(Control(action="rollback"), {"x": Member("h1", "192.0.2.11")}, records,
                     layouts.__getitem__)
    assert found == {"h2 of version 4": h2}
    assert _dropped(Control(action="rollback", phase="finalize"), {"x": h1}, records,
                    layouts.__getitem__) == {}
    assert _dropped(Control(action="up"), layouts["both"], records, layouts.__getitem__) == {}
