"""The dynamic-provider server reports vlaninfra's errors as their message, bugs in full."""

from __future__ import annotations

import types

from vlaninfra.providers import ProviderError, _quiet


def _server() -> types.ModuleType:
    """A stand-in for ``pulumi.dynamic.__main__``: what it does with an exception."""
    main = types.ModuleType("__main__")
    exec(
        "import traceback\n"
        "def _abort_with_traceback(fn):\n"
        "    def wrapper():\n"
        "        try:\n"
        "            return fn()\n"
        "        except Exception:\n"
        "            return traceback.format_exc()\n"
        "    return wrapper\n",
        main.__dict__,
    )
    return main


def test_a_vlaninfra_error_is_its_message_and_a_bug_keeps_its_traceback() -> None:
    main = _server()
    assert _quiet.install(main)
    assert _quiet.install(main)  # twice is harmless

    def expected() -> None:
        raise ProviderError("container 'web1' on host h1: outcome unknown; run `pulumi up`")

    def bug() -> None:
        raise KeyError("x")

    wrap = main._abort_with_traceback
    assert wrap(expected)() == (
        "ProviderError: container 'web1' on host h1: outcome unknown; run `pulumi up`")
    assert wrap(bug)().startswith("Traceback (most recent call last)")
    assert main.traceback.format_list is not None  # the rest of the module is untouched


def test_nothing_happens_outside_the_provider_server() -> None:
    assert not _quiet.install(types.ModuleType("__main__"))
