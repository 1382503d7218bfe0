"""The `vlaninfra` command reports an error no subcommand reported itself as one message."""

from __future__ import annotations

import argparse
import json

import pytest

from vlaninfra import cli, cli_plan
from vlaninfra.errors import VlanInfraError


def test_an_unreported_error_is_one_message_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuses(args: argparse.Namespace) -> int:
        raise VlanInfraError("Pulumi.yaml: runtime.options.virtualenv names 'venv', but ...")

    monkeypatch.setattr(cli_plan, "run", refuses)
    assert cli.main(["plan", "--stack", "lab"]) == 1
    err = capsys.readouterr().err
    assert err == "vlaninfra plan: Pulumi.yaml: runtime.options.virtualenv names 'venv', but ...\n"


def test_an_interrupted_run_says_what_pulumi_did_and_said_before_it_stopped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vlaninfra.engine import Interrupted

    events = [
        {"diagnosticEvent": {"severity": "error", "message": "update canceled"}},
        {"diagnosticEvent": {"severity": "error",
                             "message": "Resource monitor has terminated, shutting down"}},
        {"summaryEvent": {"resourceChanges": {"create": 2, "same": 9, "delete": 1}}},
    ]
    output = "\n".join(json.dumps(e) for e in events)

    def interrupted(args: argparse.Namespace) -> int:
        raise Interrupted(True, output)

    monkeypatch.setattr(cli_plan, "run", interrupted)
    assert cli.main(["plan", "--stack", "lab"]) == 130
    assert capsys.readouterr().err.splitlines()[1:] == [
        "pulumi: before it stopped: 2 created, 1 deleted", "pulumi: update canceled"]


def test_an_interrupted_run_whose_output_is_of_another_shape_says_only_that(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from vlaninfra.engine import Interrupted

    def interrupted(args: argparse.Namespace) -> int:
        raise Interrupted(True, '{"diagnosticEvent": "x"}\n{"changeSummary": [1]}\nplain {')

    monkeypatch.setattr(cli_plan, "run", interrupted)
    assert cli.main(["plan", "--stack", "lab"]) == 130
    assert len(capsys.readouterr().err.splitlines()) == 1
