"""``vlaninfra doctor [--stack NAME | FILE]``: check every host of a stack before a change,
read-only; one line per finding (severity, config key or host fact, what to do). Exits 1
when a finding is an error, 2 when the stack cannot be read."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, TextIO

import yaml

from vlaninfra.cli_plan import find_project_root
from vlaninfra.errors import LayoutError, VlanInfraError

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Registers ``doctor`` on the ``vlaninfra`` command's subparsers."""
    parser = subparsers.add_parser("doctor", help="check every host of a stack, read-only",
                                   description=__doc__)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--stack", metavar="NAME", help="read stacks/Pulumi.NAME.yaml")
    which.add_argument("file", nargs="?", metavar="FILE", help="a stack file to read")
    parser.set_defaults(func=run)


def _project(root: Path | None) -> str:
    """The Pulumi project's name (the owner marks' first half), ``vlaninfra`` by default."""
    try:
        data = yaml.safe_load((root / "Pulumi.yaml").read_text()) if root else None
    except (OSError, yaml.YAMLError):
        data = None
    name = data.get("name") if isinstance(data, dict) else None
    return str(name) if name else "vlaninfra"


def run(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Prints the findings; returns 0 (no error), 1 (errors found) or 2 (bad input).

    Example: ``run(argparse.Namespace(stack="lab", file=None))``
    """
    from vlaninfra.doctor import doctor
    from vlaninfra.loader import load_stack_file
    from vlaninfra.program import hosts_of

    out, err = out or sys.stdout, err or sys.stderr
    root = find_project_root()
    if args.stack is not None:
        if root is None:
            print("vlaninfra doctor: no Pulumi.yaml here or above; run it inside the project",
                  file=err)
            return 2
        path, stack = root / "stacks" / f"Pulumi.{args.stack}.yaml", str(args.stack)
    else:
        path = Path(args.file)
        m = re.fullmatch(r"Pulumi\.(.+)\.yaml", path.name)
        stack = m.group(1) if m else path.stem
    try:
        layout = load_stack_file(path)
        hosts = hosts_of(layout)
    except OSError as e:
        print(f"vlaninfra doctor: cannot read {path}: {e.strerror or e}", file=err)
        return 2
    except LayoutError as e:
        print(f"{path}: not a valid layout (run `vlaninfra plan`):\n{e}", file=err)
        return 2
    except VlanInfraError as e:
        print(f"vlaninfra doctor: {e}", file=err)
        return 2
    report = doctor(layout, hosts, owner=f"{_project(root)}/{stack}")
    out.write(report.text())
    return 0 if report.ok else 1
