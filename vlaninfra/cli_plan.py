"""``vlaninfra plan [--stack NAME | FILE]``: the layout's plan as tables, or every error."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from vlaninfra.engine import stack_file
from vlaninfra.errors import LayoutError
from vlaninfra.layout import config_schema, plan, render_plan
from vlaninfra.loader import load_stack_file

__all__ = ["SCHEMA_PATH", "add_parser", "find_project_root", "main_plan", "run", "schema_text"]

SCHEMA_PATH = Path(__file__).parent / "schema" / "config.schema.json"
"""The published JSON Schema of stack files; stack files point editors at it."""


def schema_text() -> str:
    """The JSON Schema as committed, e.g. ``SCHEMA_PATH.read_text() == schema_text()``."""
    return json.dumps(config_schema(), indent=2) + "\n"


def find_project_root(start: Path | None = None) -> Path | None:
    """The nearest directory holding Pulumi.yaml, from ``start`` (cwd) upwards.

    Example: ``find_project_root() / "stacks"``
    """
    here = (start or Path.cwd()).resolve()
    return next((d for d in (here, *here.parents) if (d / "Pulumi.yaml").is_file()), None)


def add_parser(subparsers: Any) -> None:
    """Registers ``plan`` on the ``vlaninfra`` command's subparsers.

    Example: ``add_parser(parser.add_subparsers())``
    """
    parser = subparsers.add_parser(
        "plan", help="validate a stack config and print its plan",
        description=__doc__)
    _arguments(parser)
    parser.set_defaults(func=run)


def _arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--stack", metavar="NAME",
                       help="read the project's Pulumi.NAME.yaml (in its stackConfigDir)")
    which.add_argument("file", nargs="?", metavar="FILE", help="a stack file to read")
    which.add_argument("--write-schema", action="store_true",
                       help=f"regenerate {SCHEMA_PATH.name} from the code and exit")


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Prints the plan; returns 0, or 1 after listing every error.

    Example: ``run(argparse.Namespace(stack="static-pool", file=None))``
    """
    out, err = out or sys.stdout, err or sys.stderr
    if getattr(args, "write_schema", False):
        SCHEMA_PATH.write_text(schema_text(), encoding="utf-8")
        print(f"wrote {SCHEMA_PATH}", file=out)
        return 0
    if args.stack is not None:
        root = find_project_root()
        if root is None:
            print("vlaninfra plan: no Pulumi.yaml here or above; run it inside the project",
                  file=err)
            return 1
        path = stack_file(root, args.stack)  # the project's stackConfigDir
    else:
        path = Path(args.file)
    try:
        result = plan(load_stack_file(path))
    except OSError as e:
        print(f"vlaninfra plan: cannot read {path}: {e.strerror or e}", file=err)
        return 1
    except LayoutError as e:
        errors = [p for p in e.problems if p.severity == "error"]
        print(f"{path}: {len(errors)} error(s)", file=err)
        for problem in e.problems:
            print(f"  {problem.severity}: {problem}", file=err)
        return 1
    out.write(render_plan(result))
    return 0


def main_plan(argv: Sequence[str] | None = None) -> int:
    """``vlaninfra plan`` on its own, e.g. ``main_plan(["--stack", "static-pool"])``."""
    parser = argparse.ArgumentParser(prog="vlaninfra plan", description=__doc__)
    _arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main_plan())
