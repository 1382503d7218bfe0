"""The Pulumi program: see typed_lab.py."""

from typed_lab import main

main()
