"""The pure parts of verified apply and rollback: which checks a plan implies, the records'
bookkeeping (pins, pruning, the failed attempt), the history table, the probe op's argument
checks and its container check against a fake Docker API."""

from __future__ import annotations

import copy
import errno
from typing import Any

import pytest

from vlaninfra.engine import project_root
from vlaninfra.errors import VlanInfraError
from vlaninfra.host import probe
from vlaninfra.host.errors import OpError
from vlaninfra.layout import load_config, plan
from vlaninfra.loader import read_stack_config
from vlaninfra.record import (
    KEEP_LAYOUTS,
    KEEP_RECORDS,
    Control,
    check_exact,
    finalized,
    new_record,
    next_records,
    pins,
    prune,
    records_of,
    with_failure,
)
from vlaninfra.rollout import render_history, rollback_target
from vlaninfra.verify import Row, Verification, _run_member, checks_for

STACKS = project_root() / "stacks"


def sites_of(stack: str) -> dict[str, Any]:
    sites: Any = read_stack_config(STACKS / f"Pulumi.{stack}.yaml")["sites"]
    return dict(copy.deepcopy(sites))


def lab_plan(sites: dict[str, Any] | None = None, previous: Any = None) -> Any:
    return plan(load_config({"sites": sites or sites_of("lab")}), previous=previous)


def test_checks_of_the_lab_layout() -> None:
    the_plan = lab_plan()
    checks = checks_for(the_plan)
    assert sorted(checks) == [("a", "h1"), ("a", "h2")]  # no upstream routes: no router checks
    h1 = checks[("a", "h1")]
    kinds = [c.check for c in h1]
    # management, then per container: container, gateway, address-unique; then shim pings,
    # then the layout's probes run from h1
    assert kinds == ["management", *["container", "gateway", "address-unique"] * 2, "shim", "shim",
                     "probe"]
    web1 = next(c for s in the_plan.sites for h in s.hosts for c in h.containers
                if c.name == "web1")
    lan = the_plan.sites[0].lan
    assert h1[1].args == {"kind": "container", "name": "web1", "network": "pub_net",
                          "ipv4": str(web1.ipv4), "mac": web1.mac}
    assert h1[2].args == {"kind": "exec-ping", "container": "web1", "target": str(lan.gateway)}
    assert h1[3].args == {"kind": "arp-unique", "device": "eth0", "address": str(web1.ipv4),
                          "own": [web1.mac]}
    assert h1[-3].args == {"kind": "ping", "target": str(web1.ipv4)}


def test_routed_tenants_are_checked_from_the_managed_router() -> None:
    the_plan = plan(load_config({"sites": sites_of("lab-ipvlan")}))
    checks = checks_for(the_plan)
    router = checks[("a", "gw")]
    assert [c.check for c in router] == ["management", "router", "router", "probe", "probe"]
    targets = {c.args["target"] for c in router[1:3]}
    assert targets == {str(c.ipv4) for h in the_plan.sites[0].hosts for c in h.containers}
    # ipvlan L3: no gateway ping, no ARP probe (no L2 on the LAN), no shim
    assert {c.check for c in checks[("a", "v1")]} == {"management", "container"}


def test_pins_come_from_the_newest_applied_record_or_the_controller() -> None:
    the_plan = lab_plan()
    first = new_record(sites_of("lab"), the_plan, Control(action="up"), 1)
    failed = {"version": 2, "status": "apply-failed", "allocations": None}
    assert pins([first, failed], Control()) == first["allocations"]
    assert pins([], Control()) == {}
    assert pins([first], Control(pins={"a/h1/pub_net/web1": ["x"]})) == {
        "a/h1/pub_net/web1": ["x"]}


def test_pinned_allocations_keep_every_container_when_others_come() -> None:
    sites = sites_of("lab")
    first = lab_plan(sites)
    record = new_record(sites, first, Control(), 1)
    sites["a"]["containers"] = [
        {"name": f"new{i}", "host": "h1", "network": "pub_net", "image": "x"} for i in range(40)
    ] + sites["a"]["containers"]
    second = lab_plan(sites, previous=pins([record], Control()))
    after = new_record(sites, second, Control(), 2)["containers"]
    assert {k: after[k] for k in record["containers"]} == record["containers"]


def test_a_plain_pulumi_up_that_changes_nothing_adds_no_record() -> None:
    the_plan = lab_plan()
    first = new_record(sites_of("lab"), the_plan, Control(action="up"), 1)
    again = new_record(sites_of("lab"), the_plan, Control(), 2)
    assert next_records([first], again, Control()) == [first]
    changed = sites_of("lab")
    changed["a"]["containers"].pop()
    other = new_record(changed, lab_plan(changed), Control(), 2)
    assert [r["version"] for r in next_records([first], other, Control())] == [1, 2]


def test_a_failed_apply_is_recorded_in_place_or_appended() -> None:
    the_plan = lab_plan()
    first = {**new_record(sites_of("lab"), the_plan, Control(action="up"), 1),
             "status": "verified"}
    # the failed run left no record: the attempt is appended as the next version
    out = with_failure([first], 1, {"action": "up", "failed": ["image x missing on h2"]})
    assert [(r["version"], r["status"]) for r in out] == [(1, "verified"), (2, "apply-failed")]
    assert out[-1]["failed"] == ["image x missing on h2"] and out[-1]["layout"] is None
    # the engine kept the failed run's record (a delete failed after the creates): in place
    left = new_record(sites_of("lab"), the_plan, Control(action="up", run="r1"), 2)
    out = with_failure([first, left], 1, {"action": "up", "run": "r1", "failed": ["delete"]})
    assert [(r["version"], r["status"]) for r in out] == [(1, "verified"), (2, "apply-failed")]
    assert out[-1]["layout"] == left["layout"]
    # another run's record after `last` is never taken for this one's: verified, or only
    # applied so far (that run is between its apply and its finalize run, or crashed)
    for other in ({**left, "status": "verified"}, {**left, "run": "r2"}):
        out = with_failure([first, other], 1, {"action": "up", "run": "r1", "failed": ["x"]})
        assert [(r["version"], r["status"]) for r in out] == [
            (1, "verified"), (2, other["status"]), (3, "apply-failed")]


def test_finalize_sets_the_status_in_place() -> None:
    the_plan = lab_plan()
    applied = new_record(sites_of("lab"), the_plan, Control(action="up"), 1)
    assert applied["status"] == "applied"
    assert new_record(sites_of("lab"), the_plan, Control(), 1)["status"] == "unverified"
    bad = Verification((Row("h1", "shim", "h1 -> web1", False, 1.0, "no answer"),), 1.0)
    [out] = finalized([applied], 1, bad)
    assert (out["version"], out["status"]) == (1, "failed-verification")
    assert out["failed"] == ["h1 shim h1 -> web1: no answer"]
    [out] = finalized([applied], 1, Verification((), 1.0))
    assert out["status"] == "verified"


def test_a_finalize_run_verifies_only_the_plan_it_recorded() -> None:
    the_plan = lab_plan()
    applied = new_record(sites_of("lab"), the_plan, Control(action="up"), 4)
    ctl = Control(phase="finalize", version=4)
    check_exact([applied], ctl, the_plan)
    key = next(iter(applied["containers"]))
    moved = {**applied["containers"], key: {**applied["containers"][key], "ipv4": "192.0.2.9"}}
    with pytest.raises(VlanInfraError, match=f"verifying version 4 .*{key}"):
        check_exact([{**applied, "containers": moved}], ctl, the_plan)


def _rec(version: int, status: str, layout: int, rollback_to: int | None = None
         ) -> dict[str, Any]:
    return {"version": version, "status": status, "layout": {"n": layout},
            "allocations": {"k": [str(layout)]}, "rollback_to": rollback_to}


@pytest.mark.parametrize(("records", "want"), [
    # after an automatic rollback to 2, the hosts hold version 2's layout: go before it
    ([_rec(1, "verified", 1), _rec(2, "verified", 2), _rec(3, "apply-failed", 3),
      _rec(4, "verified", 2, rollback_to=2)], 1),
    # a plain newest version: the verified one before it
    ([_rec(1, "verified", 1), _rec(2, "verified", 2)], 1),
    # a change left failing verification (--no-rollback): the last verified before it
    ([_rec(1, "verified", 1), _rec(2, "verified", 2), _rec(3, "failed-verification", 3)], 2),
    # versions with the very layout on the hosts are skipped (nothing to undo)
    ([_rec(1, "verified", 1), _rec(2, "verified", 2), _rec(3, "verified", 2)], 1),
    ([_rec(1, "verified", 1)], None),
    ([], None),
])
def test_rollback_without_a_version_goes_before_what_the_hosts_hold(
        records: list[dict[str, Any]], want: int | None) -> None:
    found = rollback_target(records)
    assert (found["version"] if found else None) == want


def test_a_rollback_must_restore_every_recorded_address_and_mac() -> None:
    the_plan = lab_plan()
    target = new_record(sites_of("lab"), the_plan, Control(action="up"), 3)
    ctl = Control(action="rollback", rollback_to=3)
    check_exact([target], ctl, the_plan)  # the same plan: fine
    check_exact([], Control(), the_plan)  # not a rollback: nothing to compare
    key = next(iter(target["containers"]))
    other_mac = {**target["containers"][key], "mac": "02:00:00:00:00:99"}
    moved = {**target, "containers": {**target["containers"], key: other_mac}}
    with pytest.raises(VlanInfraError, match=f"1 container.*{key}.*nothing was changed"):
        check_exact([moved], ctl, the_plan)
    with pytest.raises(VlanInfraError, match="keeps no container addresses"):
        check_exact([{**target, "containers": None}], ctl, the_plan)


def test_prune_keeps_the_newest_layouts() -> None:
    records = [{"version": i, "layout": {"n": i}, "allocations": {}, "containers": {}}
               for i in range(1, 31)]
    kept = prune(records)
    assert [r["version"] for r in kept] == list(range(1, 31))
    assert [r["version"] for r in kept if r["layout"] is not None] == list(
        range(31 - KEEP_LAYOUTS, 31))


def test_prune_keeps_the_newest_verified_layout_behind_failed_attempts() -> None:
    records = [{"version": 1, "status": "verified", "layout": {"n": 1}, "allocations": {},
                "containers": {}}] + [
        {"version": i, "status": "failed-verification", "layout": {"n": i}, "allocations": {},
         "containers": {}} for i in range(2, KEEP_RECORDS + 10)]
    kept = prune(records)
    assert len(kept) == KEEP_RECORDS and kept[0]["version"] == 1
    assert kept[0]["layout"] == {"n": 1}
    assert sum(r["layout"] is not None for r in kept) == KEEP_LAYOUTS + 1


def test_records_of_ignores_foreign_outputs() -> None:
    assert records_of(None) == []
    assert records_of({"format": 99, "records": [{}]}) == []
    assert records_of({"format": 1, "records": [{"version": 1}]}) == [{"version": 1}]


def test_records_of_gives_whole_numbers_back_as_ints() -> None:
    """The engine's outputs hold numbers as floats: a layout read back must plan as written."""
    layout = {"a": {"probes": [{"from": "h1", "to": "web1", "port": 80.0}], "mtu": 1500.5}}
    got = records_of({"format": 1, "records": [{"version": 2.0, "layout": layout}]})
    assert got == [{"version": 2, "layout": {"a": {
        "probes": [{"from": "h1", "to": "web1", "port": 80}], "mtu": 1500.5}}}]
    assert isinstance(got[0]["layout"]["a"]["probes"][0]["port"], int)


def test_history_table_and_verification_round_trip() -> None:
    records = [
        {"version": 1, "time": "t1", "by": "ops@m", "action": "up", "status": "verified",
         "layout": {}, "summary": "2 hosts"},
        {"version": 2, "time": "t2", "by": "ops@m", "action": "up", "status": "apply-failed",
         "layout": None, "failed": ["image missing", "more"]},
        {"version": 3, "time": "t3", "by": "ops@m", "action": "rollback", "rollback_to": 1,
         "status": "verified", "layout": {}, "summary": "2 hosts"},
    ]
    lines = render_history(records).splitlines()
    assert lines[0].split() == ["version", "time", "by", "action", "status", "summary"]
    assert "image missing (+1 more)" in lines[2]
    assert "rollback to 1" in lines[3]
    v = Verification((Row("h1", "gateway", "web1 -> gw", False, 3.0, "no answer"),
                      Row("h1", "gateway", "x", None, 1.0, "no ping")), 1.5)
    again = Verification.from_json(v.to_json())
    assert again == v and not again.ok and len(again.failed) == 1
    assert "FAIL" in again.table() and "n/a" in again.table()


class _FakeDocker:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    def inspect_container(self, name: str) -> dict[str, Any]:
        return self.raw


class _Ctx:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.api = _FakeDocker(raw)

    def docker(self) -> _FakeDocker:
        return self.api


def _inspect(running: bool, ip: str, mac: str) -> dict[str, Any]:
    return {"State": {"Running": running, "Status": "running" if running else "exited"},
            "NetworkSettings": {"Networks": {"pub_net": {"IPAddress": ip, "MacAddress": mac}}}}


@pytest.mark.parametrize(("raw", "ok", "detail"), [
    (_inspect(True, "a", "0a:00"), True, "running"),
    (_inspect(False, "a", "0a:00"), False, "not running (status exited)"),
    (_inspect(True, "b", "0a:00"), False, "address b (planned a)"),
    (_inspect(True, "a", "0a:01"), False, "MAC 0a:01 (planned 0a:00)"),
])
def test_probe_container_check(raw: dict[str, Any], ok: bool, detail: str) -> None:
    check = {"kind": "container", "name": "web1", "network": "pub_net", "ipv4": "a",
             "mac": "0A:00"}
    [result] = probe.run(_Ctx(raw), [check], timeout=5)  # type: ignore[arg-type]
    assert (result["ok"], result["detail"]) == (ok, detail)


def test_probe_refuses_bad_arguments() -> None:
    ctx: Any = _Ctx({})
    with pytest.raises(OpError) as err:
        probe.run(ctx, [{"kind": "rm -rf"}])
    assert err.value.code == errno.EINVAL
    with pytest.raises(OpError):
        probe.run(ctx, [], timeout=3600)


def test_a_record_equals_itself_after_the_engines_round_trip() -> None:
    the_plan = lab_plan()
    first = new_record(sites_of("lab"), the_plan, Control(action="up"), 1)
    # the engine drops None-valued keys and hands numbers back as floats
    echoed = {k: v for k, v in first.items() if v is not None}
    echoed["version"] = 1.0
    echoed["containers"] = {k: {f: x for f, x in c.items() if x is not None}
                            for k, c in first["containers"].items()}
    [back] = records_of({"format": 1, "records": [echoed]})
    assert back["version"] == 1 and isinstance(back["version"], int)
    again = new_record(sites_of("lab"), the_plan, Control(), 2)
    assert next_records([back], again, Control()) == [back]


def test_internal_networks_get_no_gateway_ping_and_no_arp_probe() -> None:
    sites = sites_of("lab")
    sites["a"]["networks"][0]["internal"] = True
    kinds = {c.check for c in checks_for(lab_plan(sites))[("a", "h1")]}
    assert "address-unique" not in kinds and "gateway" not in kinds and "container" in kinds


@pytest.mark.parametrize("answer", [[{"ok": True}], [], None])
def test_a_malformed_probe_answer_fails_its_rows_instead_of_raising(answer: Any) -> None:
    class Agent:
        def start(self) -> None:
            pass

        def call(self, op: str, **kwargs: Any) -> Any:
            return answer

    checks = checks_for(lab_plan())[("a", "h1")]
    rows = _run_member(lambda member: Agent(), object(), checks)
    assert len(rows) == len(checks) and not any(r.ok for r in rows)
    assert all(r.detail.startswith("not verified: ") for r in rows)


def test_recording_a_failed_apply_twice_changes_nothing() -> None:
    from vlaninfra.record import with_failure

    once = with_failure([{"version": 1, "status": "verified"}], 1,
                        {"run": "r1", "failed": ["boom"]})
    assert [(r["version"], r["status"]) for r in once] == [(1, "verified"), (2, "apply-failed")]
    assert with_failure(once, 1, {"run": "r1", "failed": ["boom"]}) == once
