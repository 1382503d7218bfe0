"""`vlaninfra.__all__` is the public API: every name resolves to its home module's object, the
static imports for type checkers list the same names, and `import vlaninfra` alone loads none
of them (so the pure layout package stays free of Pulumi)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import vlaninfra

INIT = Path(vlaninfra.__file__)


def test_every_public_name_resolves_to_its_home() -> None:
    assert vlaninfra.__all__ == sorted(vlaninfra._HOME_OF)
    for name in vlaninfra.__all__:
        home = vlaninfra._HOME_OF[name]
        assert getattr(vlaninfra, name) is getattr(sys.modules[home], name), name
        assert name in sys.modules[home].__all__, f"{home} does not export {name}"


def test_the_type_checking_imports_list_exactly_the_public_names() -> None:
    tree = ast.parse(INIT.read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If))
    imported = sorted(a.name for n in block.body if isinstance(n, ast.ImportFrom)
                      for a in n.names)
    assert imported == vlaninfra.__all__


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        vlaninfra.Nope  # noqa: B018
    except AttributeError as err:
        assert "Nope" in str(err)
    else:
        raise AssertionError("vlaninfra.Nope resolved")


def test_importing_the_package_loads_no_pulumi() -> None:
    code = "import sys, vlaninfra; print('pulumi' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
