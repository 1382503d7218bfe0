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
        return 130


if __name__ == "__main__":
    sys.exit(main())
