"""The `vlaninfra` command reports an error no subcommand reported itself as one message."""

from __future__ import annotations

import argparse

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
