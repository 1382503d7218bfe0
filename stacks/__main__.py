"""The Pulumi program of every stack in this directory; see `vlaninfra.program`."""

from vlaninfra.program import run

run()
