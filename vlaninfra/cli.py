"""The `vlaninfra` command: `vlaninfra lab up|down|status`, `vlaninfra plan`, `vlaninfra demo`,
`vlaninfra up|rollback|history`, `vlaninfra diff|graph`, `vlaninfra doctor`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code.

    Example: ``vlaninfra plan --stack lab``
    """
    from vlaninfra import cli_demo, cli_doctor, cli_plan, cli_review, cli_rollout
    from vlaninfra.errors import VlanInfraError
    from vlaninfra.lab import cli as lab_cli

    parser = argparse.ArgumentParser(prog="vlaninfra", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    lab_cli.add_parser(sub)
    cli_plan.add_parser(sub)
    cli_demo.add_parser(sub)
    cli_rollout.add_parser(sub)
    cli_review.add_parser(sub)
    cli_doctor.add_parser(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except VlanInfraError as err:  # what a command did not report itself: one message
        print(f"vlaninfra {args.command}: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:  # Ctrl-C; how pulumi ended, from Engine.run
        from vlaninfra.engine import Interrupted

        if not isinstance(err, Interrupted):
            what = ""
        elif err.saved:
            what = ("; pulumi finished the steps under way and saved the stack's state first: "
                    "run the command again to go on")
        else:
            what = ("; pulumi stopped at once: the next `vlaninfra up` clears its lock and "
                    "adopts what it made")
        print(f"vlaninfra {args.command}: interrupted{what}", file=sys.stderr)
        if isinstance(err, Interrupted) and (said := _pulumi_said(err.output)):
            print(said, file=sys.stderr)
        return 130


def _pulumi_said(output: str) -> str:
    """What an interrupted pulumi run did and said before it stopped (from its ``--json``
    output): its changes and error messages, e.g. ``pulumi: before it stopped: 2 created`` and
    ``pulumi: update canceled`` (not its "Resource monitor has terminated" that follows)."""
    from vlaninfra.engine._output import diagnostics, summary_of

    try:
        done = [f"{n} {_DONE.get(k, k)}" for k, n in sorted(summary_of(output).items())
                if k != "same" and n]
        said = [m for m in diagnostics(output)
                if not m.startswith("Resource monitor has terminated")]
    except Exception:  # output of another shape: the "interrupted" line says enough
        return ""
    return "\n".join([*([f"pulumi: before it stopped: {', '.join(done)}"] if done else []),
                      *(f"pulumi: {m}" for m in said)])


_DONE = {"create": "created", "update": "updated", "delete": "deleted", "replace": "replaced"}


if __name__ == "__main__":
    sys.exit(main())
