"""The decisions of `vlaninfra.rollout.up` / `rollback` against a scripted fake engine: when
to roll back, to what, what is recorded, and what is refused before anything runs."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from vlaninfra import rollout
from vlaninfra.engine import EngineError, StackLockedError
from vlaninfra.record import REFUSED, ROLLOUT_ENV
from vlaninfra.rollout import RolloutError


@dataclass(frozen=True)
class FakeEngine:
    """Answers `stack output|export|import`, `preview` and both runs of an apply (`up`, then
    the finalize `up --target`) like the program would; `outcomes` scripts each apply: "ok"
    (verified), "bad" (verification fails), "silent" (no report) or "fail" (run 1 fails)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    controls: list[dict[str, Any]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    extra_env: Mapping[str, str] = field(default_factory=dict)
    root: Path = Path("/nonexistent")
    lost_after_apply: bool = False
    """The backend stops answering once the first apply went through."""
    import_errors: list[EngineError] = field(default_factory=list)
    """Raised, one each, by the next `stack import`s."""
    apply_says: str = ""
    """What a successful run 1 prints."""

    def run(self, stack: str | None, *args: str, check: bool = True, cwd: Path | None = None
            ) -> str:
        if self.lost_after_apply and "up" in self.calls and args[0] in ("up", "stack"):
            raise EngineError(list(args), 255, "backend timeout")
        self.calls.append(" ".join(args[:2]) if args[0] == "stack" else args[0])
        if args[:2] == ("stack", "output"):
            return json.dumps({"vlaninfra": {"format": 1, "records": self.records}})
        if args[:2] == ("stack", "export"):
            return json.dumps({"deployment": {"resources": [{"type": "pulumi:pulumi:Stack",
                "outputs": {"vlaninfra": {"format": 1, "records": self.records}}}]}})
        if args[:2] == ("stack", "import"):
            if self.import_errors:
                raise self.import_errors.pop(0)
            doc = json.loads(Path(args[args.index("--file") + 1]).read_text())
            self.records[:] = doc["deployment"]["resources"][0]["outputs"]["vlaninfra"][
                "records"]
            return ""
        control = json.loads(Path(self.extra_env[ROLLOUT_ENV]).read_text())
        assert control["last"] == max((r["version"] for r in self.records), default=0)
        if args[0] == "preview":
            return "preview of the change"
        self.controls.append(control)
        if control["phase"] == "finalize":
            assert "--target" in args and "--expect-no-changes" in args
            outcome = self.outcomes.pop(0)
            rows = [["h1", "gateway", "web1", outcome == "ok", 1.0, "answers"]]
            if outcome != "silent":  # "silent": a program that never writes the report
                Path(control["report"]).write_text(json.dumps({"seconds": 0.5, "rows": rows}))
                self.records[-1]["status"] = ("verified" if outcome == "ok"
                                              else "failed-verification")
            return ""
        if self.outcomes[0] == "fail":
            self.outcomes.pop(0)
            raise EngineError(list(args), 1, "image x is not on host h2")
        if self.outcomes[0] == "locked":  # another run holds the stack
            self.outcomes.pop(0)
            raise StackLockedError(list(args), 255, "the stack is currently locked", "s")
        if self.outcomes[0] == "refused":  # the program stops before registering anything
            self.outcomes.pop(0)
            raise EngineError(list(args), 1, f"records moved on\n{REFUSED}")
        self.records.append({
            "version": len(self.records) + 1, "action": control["action"], "status": "applied",
            "run": control["run"],
            "layout": control.get("layout") or {"n": len(self.records) + 1},
            "allocations": {}, "rollback_to": control.get("rollback_to")})
        return self.apply_says


def fake(records: int = 0, *outcomes: str) -> Any:
    engine = FakeEngine(outcomes=list(outcomes))
    for i in range(1, records + 1):
        engine.records.append({"version": i, "action": "up", "status": "verified",
                               "layout": {"n": i}, "allocations": {"k": [f"a{i}"]}})
    return engine


@pytest.fixture(autouse=True)
def _project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "Pulumi.yaml").write_text("name: proj\nruntime: python\n")
    monkeypatch.chdir(tmp_path)


def up(stack: str, **kw: Any) -> Any:
    return rollout.up(stack, cwd=Path.cwd(), **kw)


def rollback(stack: str, **kw: Any) -> Any:
    return rollout.rollback(stack, cwd=Path.cwd(), **kw)


def test_a_verified_change_is_not_rolled_back() -> None:
    engine = fake(1, "ok")
    report = up("s", engine=engine)
    assert report.ok and not report.rolled_back
    assert engine.calls == ["stack output", "preview", "up", "up"]
    assert "recorded as version 2" in report.text()
    assert "gateway" in report.text()  # the whole verification table
    assert [(r["version"], r["status"]) for r in engine.records] == [
        (1, "verified"), (2, "verified")]
    assert engine.controls[1]["version"] == 2


KILLED = ("Attempting to deploy or update resources with 1 pending operations from previous "
          "deployment.\n  * urn:pulumi:s::proj::vlaninfra:index:Container::a-h1-web9, "
          "interrupted while creating\n")


def test_an_apply_warned_of_a_killed_runs_pending_creates_settles_them() -> None:
    engine = dataclasses.replace(fake(1, "ok"), apply_says=json.dumps(
        {"diagnostics": [{"message": KILLED}]}))
    assert up("s", engine=engine).ok
    # this fake's export holds no pending operation: nothing to import
    assert engine.calls == ["stack output", "preview", "up", "stack export", "up"]


@pytest.mark.parametrize("error", [EngineError(["stack", "export"], 255, "backend timeout"),
                                   OSError(28, "No space left on device")])
def test_settling_the_pending_creates_never_fails_the_apply(
        error: Exception, monkeypatch: pytest.MonkeyPatch) -> None:
    def fails(*_: Any) -> list[str]:
        raise error
    monkeypatch.setattr(rollout, "settle_pending_creates", fails)
    engine = dataclasses.replace(fake(1, "ok"), apply_says=KILLED)
    report = up("s", engine=engine)
    assert report.ok and [r["status"] for r in engine.records] == ["verified", "verified"]
    said = report.text()  # in the report (stdout), not only in a log line
    assert "note: the pending creates a killed run left could not be dropped" in said
    assert "--clear-pending-creates --stack s" in said


def test_pending_creates_left_unsettled_are_named_in_the_report(
        monkeypatch: pytest.MonkeyPatch) -> None:
    web9 = "urn:pulumi:s::proj::vlaninfra:index:Container::a-h1-web9"
    monkeypatch.setattr(rollout, "settle_pending_creates", lambda *_: [web9])
    report = up("s", engine=dataclasses.replace(fake(1, "ok"), apply_says=KILLED))
    assert report.ok
    assert (f"  note: a killed run was creating {web9}, not in the state; what it made may be "
            "on the hosts: remove it by hand") in report.text()


def test_a_failed_apply_rolls_back_to_the_last_verified_and_records_the_attempt() -> None:
    engine = fake(2, "fail", "ok")
    report = up("s", engine=engine)
    assert not report.ok and report.rolled_back and report.steps[1].ok
    back = engine.controls[1]
    assert (back["action"], back["layout"], back["pins"]) == ("rollback", {"n": 2}, {"k": ["a2"]})
    assert [(r["version"], r["status"]) for r in engine.records][-2:] == [
        (3, "apply-failed"), (4, "verified")]
    assert "image x is not on host h2" in engine.records[2]["failed"][-1]
    assert "image x is not on host h2" in report.text()


def test_a_refused_apply_is_neither_recorded_nor_rolled_back() -> None:
    """E.g. another run added a version between this one's preview and apply: rolling back
    would undo that run's change."""
    engine = fake(2, "refused")
    with pytest.raises(RolloutError, match="refused before any change"):
        up("s", engine=engine)
    assert [(r["version"], r["status"]) for r in engine.records] == [
        (1, "verified"), (2, "verified")]
    assert len(engine.controls) == 1


def test_failed_verification_rolls_back_and_keeps_the_failed_version() -> None:
    engine = fake(1, "bad", "ok")
    report = up("s", engine=engine)
    assert not report.ok and report.rolled_back
    assert [(r["version"], r["status"]) for r in engine.records] == [
        (1, "verified"), (2, "failed-verification"), (3, "verified")]
    assert "verification FAILED" in report.text()


def test_no_rollback_leaves_the_change_and_says_how_to_return() -> None:
    engine = fake(1, "bad")
    report = up("s", engine=engine, rollback=False)
    assert not report.ok and not report.rolled_back
    assert "`vlaninfra rollback` returns to version 1" in report.final


@pytest.mark.parametrize("rollback_", [True, False])
def test_a_failed_apply_is_recorded_without_a_rollback(rollback_: bool) -> None:
    engine = fake(0, "fail")
    report = up("s", engine=engine, rollback=rollback_)
    assert not report.ok and len(engine.controls) == 1
    assert [(r["version"], r["status"]) for r in engine.records] == [(1, "apply-failed")]
    if rollback_:
        assert "no verified version is recorded yet" in report.final
    engine = fake(1, "fail")
    report = up("s", engine=engine, rollback=False)
    assert [(r["version"], r["status"]) for r in engine.records] == [
        (1, "verified"), (2, "apply-failed")]


def test_a_backend_lost_after_the_apply_is_a_clear_report() -> None:
    engine = dataclasses.replace(fake(1, "ok"), lost_after_apply=True)
    report = up("s", engine=engine)
    assert not report.ok and not report.rolled_back
    text = report.text()
    assert "version 2 stays unverified" in text and "backend timeout" in text
    assert "not rolled back: the records could not be read" in text
    assert "vlaninfra rollback --stack s --to 1" in text
    assert engine.records[-1]["status"] == "applied"


def test_not_confirmed_changes_nothing() -> None:
    engine = fake(1)
    with pytest.raises(RolloutError, match="not confirmed"):
        up("s", engine=engine, confirm=lambda preview: False)
    assert "up" not in engine.calls


def test_rollback_defaults_to_the_last_verified_before_the_current() -> None:
    engine = fake(3, "ok")
    report = rollback("s", engine=engine)
    assert report.ok and engine.controls[0]["rollback_to"] == 2
    # right after that rollback (to 2) the hosts hold version 2: the next goes to 1
    engine.outcomes.append("ok")
    report = rollback("s", engine=engine)
    assert report.ok and engine.controls[-2]["rollback_to"] == 1


@pytest.mark.parametrize(("records", "to", "message"), [
    (0, None, "no recorded versions yet"),
    (1, None, "no verified version before the one on the hosts"),
    (2, 9, r"no version 9 \(known: 1, 2\)"),
])
def test_rollback_refuses_bad_input_before_running_anything(
        records: int, to: int | None, message: str) -> None:
    engine = fake(records)
    with pytest.raises(RolloutError, match=message):
        rollback("s", to=to, engine=engine)
    assert engine.calls == ["stack output"]


def test_rollback_refuses_a_version_without_its_layout() -> None:
    engine = fake(2)
    engine.records[0]["layout"] = None
    with pytest.raises(RolloutError, match="version 1 keeps no layout"):
        rollback("s", to=1, engine=engine)



def test_an_apply_whose_program_did_not_verify_is_not_a_verified_version() -> None:
    engine = fake(1, "silent", "ok")
    report = up("s", engine=engine)
    assert not report.steps[0].ok and report.rolled_back
    assert "the program did not verify" in report.text()
    assert "is on the hosts, verified" not in report.final


@pytest.mark.parametrize("error", [EOFError, KeyboardInterrupt])
def test_end_of_input_at_the_prompt_is_not_confirmed(
        monkeypatch: pytest.MonkeyPatch, error: type[BaseException]) -> None:
    import argparse

    from vlaninfra import cli_rollout

    def stop(prompt: str) -> str:
        raise error

    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", stop)
    ask = cli_rollout._confirm(argparse.Namespace(yes=False))
    assert ask is not None and ask("preview") is False


def test_rollback_refuses_a_version_without_its_allocations() -> None:
    engine = fake(2)
    engine.records[0]["allocations"] = None
    with pytest.raises(RolloutError, match="version 1 keeps no allocations"):
        rollback("s", to=1, engine=engine)
    assert engine.calls == ["stack output"]


@pytest.mark.parametrize(("outcomes", "held"), [
    (("fail", "locked"), "whatever its failed apply left"),
    (("bad", "refused"), "version 2 (apply, verification FAILED)"),
])
def test_a_rollback_refused_after_a_change_is_a_failure_not_nothing_changed(
        outcomes: tuple[str, ...], held: str) -> None:
    """The change reached the hosts, then the rollback was refused (another run's lock, or
    the program stopped it): a report (exit 1) saying what the hosts hold and what to run."""
    engine = fake(1, *outcomes)
    report = up("s", engine=engine)
    assert not report.ok and report.rolled_back and not report.steps[1].started
    text = report.text()
    assert "rollback to version 1: NOT RUN (this step itself changed nothing)" in text
    assert f"NOT rolled back (the rollback was refused, see above): the hosts hold {held}" in (
        report.final)
    assert "`vlaninfra rollback --stack s --to 1`" in report.final
    assert "nothing was changed" not in report.final


@pytest.mark.parametrize(("errors", "recorded", "imports"), [
    ([EngineError(["stack", "import"], 255, "backend timeout")], True, 2),
    ([EngineError(["stack", "import"], 255, "timeout")] * 2, False, 2),
    ([StackLockedError(["stack", "import"], 255, "the stack is currently locked", "s")],
     False, 1),
])
def test_recording_a_failed_apply_is_tried_once_more_after_an_engine_error(
        errors: list[EngineError], recorded: bool, imports: int) -> None:
    """`stack export`/`import` once more after an engine error (not when another run holds
    the stack): recorded once, or a note saying the attempt could not be recorded."""
    engine = dataclasses.replace(fake(1, "fail"), import_errors=list(errors))
    report = up("s", engine=engine, rollback=False)
    assert engine.calls.count("stack import") == imports
    assert [r["status"] for r in engine.records] == (
        ["verified", "apply-failed"] if recorded else ["verified"])
    assert ("could not be recorded" in report.text()) is not recorded
