"""`vlaninfra diff --stack S [--format text|markdown|json]` and `vlaninfra graph --stack S -o
FILE.svg|.png|.dot`: review a change without contacting any host (see `vlaninfra.review`)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from vlaninfra.cli_plan import find_project_root
from vlaninfra.errors import LayoutError, VlanInfraError
from vlaninfra.review import (
    compare,
    load_change,
    render_dot,
    render_json,
    render_markdown,
    render_text,
)

__all__ = ["add_parser", "write_graph"]

GRAPH_FORMATS = ("svg", "png", "dot")


def add_parser(sub: Any) -> None:
    """Registers ``diff`` and ``graph`` on the ``vlaninfra`` command's subparsers.

    Example: ``add_parser(parser.add_subparsers())``
    """
    p = sub.add_parser("diff", help="the change between the deployed layout and the stack "
                       "config, in network terms (no host is contacted)")
    p.add_argument("--stack", required=True)
    p.add_argument("--format", choices=("text", "markdown", "json"), default="text",
                   help="markdown: a pull-request comment; json: see diff.schema.json")
    p.set_defaults(func=_diff)
    p = sub.add_parser("graph", help="the stack config's topology as a picture (Graphviz)")
    p.add_argument("--stack", required=True)
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="FILE.svg, FILE.png or FILE.dot")
    p.add_argument("--no-state", action="store_true",
                   help="plan the config alone (addresses not pinned by the deployed version)")
    p.set_defaults(func=_graph)


def _fail(command: str, err: VlanInfraError) -> int:
    if isinstance(err, LayoutError):
        errors = [p for p in err.problems if p.severity == "error"]
        print(f"vlaninfra {command}: the stack config is not a valid layout "
              f"({len(errors)} error(s)); nothing to compare:", file=sys.stderr)
        for problem in err.problems:
            print(f"  {problem.severity}: {problem}", file=sys.stderr)
        return 1
    print(f"vlaninfra {command}: {err}", file=sys.stderr)
    return 2


def _diff(args: argparse.Namespace) -> int:
    try:
        change = load_change(args.stack, cwd=find_project_root())
    except VlanInfraError as err:
        return _fail("diff", err)
    d = compare(change.old, change.new, stack=args.stack, base=change.base,
                base_version=change.base_version)
    if args.format == "json":
        sys.stdout.write(render_json(d))
    elif args.format == "markdown":
        sys.stdout.write(render_markdown(d, change.new))
    else:
        sys.stdout.write(render_text(d))
    return 0


def _graph(args: argparse.Namespace) -> int:
    try:
        change = load_change(args.stack, cwd=find_project_root(), with_state=not args.no_state)
        write_graph(render_dot(change.new, f"stack {args.stack}"), Path(args.output))
    except VlanInfraError as err:
        return _fail("graph", err)
    print(f"wrote {args.output}")
    return 0


def write_graph(dot: str, path: Path) -> None:
    """Writes `dot` to `path` as DOT, or laid out by Graphviz as SVG or PNG (by its suffix).

    Example: ``write_graph(render_dot(plan, "stack lab"), Path("lab.svg"))``
    """
    kind = path.suffix.lstrip(".").lower()
    if kind not in GRAPH_FORMATS:
        raise VlanInfraError(f"-o {path}: give a file ending in .svg, .png or .dot")
    if not path.parent.is_dir():
        raise VlanInfraError(f"-o {path}: the directory {path.parent} does not exist: create "
                             "it first, or give a path in an existing one")
    if kind == "dot":
        try:
            path.write_text(dot, encoding="utf-8")
        except OSError as err:
            raise VlanInfraError(f"-o {path}: cannot write it: {err.strerror}") from None
        return
    exe = shutil.which("dot")
    if exe is None:
        raise VlanInfraError("Graphviz's `dot` is not installed: `apt-get install graphviz` "
                             "(tools/setup.sh does), or write .dot and lay it out elsewhere")
    done = subprocess.run([exe, f"-T{kind}", "-o", str(path)], input=dot, text=True,
                          capture_output=True, check=False)
    if done.returncode != 0:
        raise VlanInfraError(f"Graphviz could not draw {path}: {done.stderr.strip()}")
