"""`vlaninfra up | rollback | history | confirm --stack S`: verified apply, rollback, known-good
records (see `vlaninfra.rollout`), commit confirmed (`up --confirm-within`, `vlaninfra.confirm`).
They act on the Pulumi project of the current directory (the checkout's `stacks/` by default),
with the engine and backend `tools/pulumi` uses."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from vlaninfra import confirm
from vlaninfra.cli_plan import find_project_root
from vlaninfra.errors import VlanInfraError
from vlaninfra.rollout import Confirm, Report, history, render_history

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("up", help="preview, apply, verify, record; roll back on failure")
    p.add_argument("--stack", required=True)
    p.add_argument("--yes", action="store_true", help="apply without asking")
    p.add_argument("--no-rollback", action="store_true",
                   help="leave a failed change on the hosts for inspection")
    p.add_argument("--confirm-within", metavar="DURATION",
                   help="keep the change only if `vlaninfra confirm` follows within DURATION "
                        "(60s, 5m, 1m30s); otherwise the hosts and vlaninfra undo it")
    p.set_defaults(func=_up)
    p = sub.add_parser("confirm", help="keep a change applied with --confirm-within")
    p.add_argument("--stack", required=True)
    p.set_defaults(func=_confirm_pending)
    p = sub.add_parser("rollback", help="apply a recorded version again, verified")
    p.add_argument("--stack", required=True)
    p.add_argument("--to", type=int, metavar="VERSION",
                   help="default: the last verified version before the one on the hosts")
    p.add_argument("--yes", action="store_true", help="apply without asking")
    p.set_defaults(func=_rollback)
    p = sub.add_parser("history", help="the stack's recorded versions")
    p.add_argument("--stack", required=True)
    p.set_defaults(func=_history)


def _confirm(args: argparse.Namespace) -> Confirm | None:
    if args.yes:
        return None
    if not sys.stdin.isatty():
        raise VlanInfraError("no terminal to confirm on: pass --yes to apply without asking")

    def ask(preview: str) -> bool:
        print(preview, flush=True)
        try:
            answer = input("apply this change? [y/N] ")
        except (EOFError, KeyboardInterrupt):  # end of input or Ctrl-C: not confirmed
            print(flush=True)
            return False
        return answer.strip().lower() in ("y", "yes")

    return ask


def _report(command: str, act: Callable[[], Report]) -> int:
    """Run `act`; 0 when its report is ok, 1 when the change failed, 2 when it was refused."""
    try:
        report = act()
    except VlanInfraError as err:
        print(f"vlaninfra {command}: {err}", file=sys.stderr)
        return 2
    print(report.text())
    return 0 if report.ok else 1


def _up(args: argparse.Namespace) -> int:
    def act() -> Report:
        within = args.confirm_within
        if within is not None:
            confirm.parse_duration(within)  # a bad duration is reported before anything else
        return confirm.up(args.stack, within, confirm=_confirm(args),
                          rollback=not args.no_rollback, cwd=find_project_root())

    return _report("up", act)


def _rollback(args: argparse.Namespace) -> int:
    return _report("rollback", lambda: confirm.rollback(
        args.stack, to=args.to, confirm=_confirm(args), cwd=find_project_root()))


def _confirm_pending(args: argparse.Namespace) -> int:
    return _report("confirm", lambda: confirm.confirm(args.stack, cwd=find_project_root()))


def _history(args: argparse.Namespace) -> int:
    try:
        records = history(args.stack, cwd=find_project_root())
    except VlanInfraError as err:
        print(f"vlaninfra history: {err}", file=sys.stderr)
        return 2
    if not records:
        print(f"stack {args.stack}: no versions recorded yet (`vlaninfra up --stack "
              f"{args.stack}` records them)")
        return 0
    print(render_history(records))
    for line in confirm.notes(args.stack, records, cwd=find_project_root()):
        print(line)
    return 0
